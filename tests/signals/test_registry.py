import io
import shutil
import subprocess
import sys
import types
from typing import ClassVar

import pytest
from PIL import Image

from safehold.errors import SafeholdError
from safehold.matching.vector_index import VectorIndex
from safehold.signals import plugins as plugins_mod
from safehold.signals import registry
from safehold.signals.base import ContentHasher, Signal, SignalType
from safehold.signals.crypto import CryptoHasher, crypto_hashes
from safehold.signals.plugins import SignalPlugin, load_plugins

BUILTINS = {"pdq", "md5", "sha1", "sha256", "vpdq", "url"}


class FakeEntryPoint:
    """Stands in for importlib.metadata.EntryPoint: name, value, load()."""

    def __init__(self, name, obj=None, *, error=None):
        self.name, self.value, self._obj, self._error = name, f"fake_{name}:PLUGIN", obj, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._obj


@pytest.fixture(autouse=True)
def clean_registry(monkeypatch):
    """No real installed plug-ins leak in; the registry cache is reset around every test."""
    monkeypatch.delenv(plugins_mod.ENV_SELECT, raising=False)
    monkeypatch.setattr(plugins_mod, "_entry_points", lambda: [])
    registry.reload()
    yield
    registry.reload()


def _use_entry_points(monkeypatch, eps):
    monkeypatch.setattr(plugins_mod, "_entry_points", lambda: list(eps))
    registry.reload()


# --- a fake licensed hash, the way a plug-in package would ship one ------------------------------------


class FakeDnaIndex(VectorIndex):
    dim = 4
    metric = "hamming"


class FakeDnaSignal(SignalType):
    name = "fakedna"
    description = "Fake licensed perceptual hash (test only)"
    matching = "hamming"
    default_threshold = 10
    max_threshold = 32

    @classmethod
    def index_cls(cls):
        return FakeDnaIndex

    @classmethod
    def normalize(cls, value: str) -> str:
        v = str(value).strip().lower()
        if len(v) != 8:
            raise SafeholdError("signal.invalid_value", "fakedna is 8 characters")
        return v


class FakeDnaHasher(ContentHasher):
    media: ClassVar[str] = "image"
    signal_types: ClassVar[tuple[str, ...]] = ("fakedna",)

    def hash_bytes(self, data: bytes) -> list[Signal]:
        return [Signal(type="fakedna", value=f"{len(data):08x}")]


FAKE_PLUGIN = SignalPlugin(name="fakedna", signal_types=(FakeDnaSignal,), hashers=(FakeDnaHasher,), version="1.0")


# --- a stub of safehold.signals.pdq, so these tests do not depend on the real PDQ code -------------------


class StubPdqHasher(ContentHasher):
    media: ClassVar[str] = "image"
    signal_types: ClassVar[tuple[str, ...]] = ("pdq",)
    made: ClassVar[list] = []
    fail_with: ClassVar[Exception | None] = None

    def __init__(self, mode="default", dihedral=False):
        StubPdqHasher.made.append((mode, dihedral))

    def hash_bytes(self, data):
        if StubPdqHasher.fail_with is not None:
            raise StubPdqHasher.fail_with
        return [Signal(type="pdq", value="f" * 64, quality=100)]


class StubPdqSignal(SignalType):
    name = "pdq"
    description = "stub"
    matching = "hamming"
    default_threshold = 31
    max_threshold = 70

    @classmethod
    def normalize(cls, value):
        return value.lower()


@pytest.fixture
def stub_pdq(monkeypatch):
    mod = types.ModuleType("safehold.signals.pdq")
    mod.PdqHasher, mod.PdqSignal = StubPdqHasher, StubPdqSignal
    StubPdqHasher.made, StubPdqHasher.fail_with = [], None
    monkeypatch.setitem(sys.modules, "safehold.signals.pdq", mod)
    registry.reload()
    return StubPdqHasher


def _png() -> bytes:
    buf = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(buf, format="PNG")
    return buf.getvalue()


# --- registry ---------------------------------------------------------------------------------------------


def test_builtin_signal_types(stub_pdq):
    types_ = registry.all_signal_types()
    assert set(types_) == BUILTINS
    assert registry.signal_type("sha256").matching == "exact"
    assert registry.signal_type("vpdq").matching == "custom"
    assert registry.normalize("md5", "900150983CD24FB0D6963F7D28E17F72") == "900150983cd24fb0d6963f7d28e17f72"
    assert registry.load_errors() == []


def test_real_pdq_module_is_registered():
    pdq = pytest.importorskip("safehold.signals.pdq")
    assert registry.signal_type("pdq") is pdq.PdqSignal


def test_unknown_type_lists_known_ones(stub_pdq):
    with pytest.raises(SafeholdError) as ei:
        registry.signal_type("photodna")
    assert ei.value.code == "signal.unknown_type"
    assert set(ei.value.detail["known"]) == BUILTINS
    assert "sha256" in ei.value.message
    with pytest.raises(SafeholdError) as ei:
        registry.normalize("nope", "x")
    assert ei.value.code == "signal.unknown_type"
    with pytest.raises(SafeholdError) as ei:
        registry.normalize("sha1", "xyz")
    assert ei.value.code == "signal.invalid_value"


def test_hashers_for_each_media(stub_pdq):
    assert [type(h).__name__ for h in registry.hashers_for("image")] == ["CryptoHasher", "StubPdqHasher"]
    assert [type(h).__name__ for h in registry.hashers_for("video")] == ["CryptoHasher", "VpdqHasher"]
    assert [type(h).__name__ for h in registry.hashers_for("other")] == ["CryptoHasher"]
    registry.hashers_for("image", pdq_mode="fast", dihedral=True)
    assert stub_pdq.made[-1] == ("fast", True)
    with pytest.raises(SafeholdError) as ei:
        registry.hashers_for("audio")
    assert ei.value.code == "signal.invalid_media"


# --- hash_content -----------------------------------------------------------------------------------------


def test_hash_content_image(stub_pdq):
    data = _png()
    res = registry.hash_content(data, pdq_mode="fast", dihedral=True)
    assert (res.media, res.format, res.size, res.errors) == ("image", "png", len(data), [])
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256", "pdq"]
    assert res.get("sha256").value == crypto_hashes(data)["sha256"]
    assert stub_pdq.made == [("fast", True)]
    assert res.to_dict()["signals"][3] == {"type": "pdq", "value": "f" * 64, "quality": 100}


def test_undecodable_image_keeps_crypto_hashes_and_reports(stub_pdq):
    stub_pdq.fail_with = SafeholdError("media.corrupt", "cannot decode")
    data = b"\x89PNG\r\n\x1a\n" + b"garbage" * 10
    res = registry.hash_content(data)
    assert res.media == "image"
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256"]
    assert [e.code for e in res.errors] == ["media.corrupt"]
    assert not res.ok


def test_hasher_bug_is_contained(stub_pdq):
    stub_pdq.fail_with = RuntimeError("boom")
    res = registry.hash_content(_png())
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256"]
    assert [e.code for e in res.errors] == ["signal.hasher_failed"]


def test_hash_content_with_real_pdq():
    pytest.importorskip("safehold.signals.pdq")
    res = registry.hash_content(_png())
    assert res.errors == [] and [s.type for s in res.signals] == ["md5", "sha1", "sha256", "pdq"]
    with pytest.raises(SafeholdError) as ei:
        registry.hash_content(_png(), pdq_mode="no-such-mode")
    assert ei.value.code.startswith("signal.")


def test_hash_content_other_and_limits(stub_pdq):
    res = registry.hash_content(b"just some text", filename="notes.txt")
    assert res.media == "other" and [s.type for s in res.signals] == ["md5", "sha1", "sha256"]
    assert stub_pdq.made == []  # PDQ is not even constructed for non-images
    with pytest.raises(SafeholdError) as ei:
        registry.hash_content(b"")
    assert ei.value.code == "media.empty"
    with pytest.raises(SafeholdError) as ei:
        registry.hash_content(b"x" * 101, max_bytes=100)
    assert ei.value.code == "media.too_large"


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed: cannot generate a test video")
def test_hash_content_video(tmp_path, stub_pdq):
    out = tmp_path / "v.mp4"
    src = "testsrc2=size=128x96:rate=5"
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        src,
        "-t",
        "2",
        "-pix_fmt",
        "yuv420p",
        str(out),
    ]
    subprocess.run(cmd, check=True, timeout=60)
    res = registry.hash_content(out.read_bytes(), vpdq_options={"tmp_dir": str(tmp_path)})
    assert res.media == "video" and res.errors == []
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256", "vpdq"]
    assert res.get("vpdq").extra["frames"] == 2
    # a damaged video still gets its crypto hashes, plus the error
    res = registry.hash_content(out.read_bytes()[:2000])
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256"]
    assert [e.code for e in res.errors] == ["media.corrupt"]


# --- plug-ins ---------------------------------------------------------------------------------------------


def test_plugin_registers_type_and_hasher(monkeypatch, stub_pdq):
    _use_entry_points(monkeypatch, [FakeEntryPoint("fakedna", FAKE_PLUGIN)])
    assert registry.signal_type("fakedna") is FakeDnaSignal
    assert set(registry.all_signal_types()) == BUILTINS | {"fakedna"}
    assert registry.normalize("fakedna", " ABCDEF01 ") == "abcdef01"
    assert [type(h).__name__ for h in registry.hashers_for("image")][-1] == "FakeDnaHasher"
    assert "FakeDnaHasher" not in [type(h).__name__ for h in registry.hashers_for("video")]
    res = registry.hash_content(_png())
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256", "pdq", "fakedna"]
    assert registry.plugins().plugins == [FAKE_PLUGIN]


def test_plugin_entry_point_forms(monkeypatch, stub_pdq):
    module = types.ModuleType("fake_module_plugin")
    module.SAFEHOLD_PLUGIN = FAKE_PLUGIN

    class Manifest:  # threatexchange-style manifest object
        signal_types = (FakeDnaSignal,)
        hashers = (FakeDnaHasher,)

    for obj in (module, lambda: FAKE_PLUGIN, Manifest(), FakeDnaSignal):
        _use_entry_points(monkeypatch, [FakeEntryPoint("x", obj)])
        assert "fakedna" in registry.all_signal_types(), obj
        assert registry.load_errors() == []


class AbstractSignal(SignalType):
    name = "abstract_one"
    description = "forgot normalize"


class BadNameSignal(FakeDnaSignal):
    name = "Bad Name!"


class BadMatchingSignal(FakeDnaSignal):
    name = "badmatching"
    matching = "fuzzy"


class Md5Again(FakeDnaSignal):
    name = "md5"


class NoIndexSignal(FakeDnaSignal):
    """Hamming matching but no index: its entries could never match."""

    name = "noindex"
    index_cls = classmethod(SignalType.index_cls.__func__)


class HalfIndex:
    def add(self, ids, values): ...


class HalfIndexSignal(FakeDnaSignal):
    name = "halfindex"

    @classmethod
    def index_cls(cls):
        return HalfIndex


class DefaultAboveMaxSignal(FakeDnaSignal):
    name = "abovemax"
    default_threshold = 50


class BadPerceptualSignal(FakeDnaSignal):
    name = "badperceptual"
    perceptual_for = ("audio",)


class BadMediaHasher(FakeDnaHasher):
    media = "audio"


class UnknownTypeHasher(FakeDnaHasher):
    signal_types = ("nosuchtype",)


@pytest.mark.parametrize(
    ("obj", "error", "code"),
    [
        (None, ImportError("no module named fake_photodna"), "plugin.load_failed"),
        (None, SyntaxError("bad plug-in code"), "plugin.load_failed"),
        (42, None, "plugin.invalid"),
        (int, None, "plugin.invalid"),
        (SignalPlugin(name="empty"), None, "plugin.invalid"),
        (SignalPlugin(name="a", signal_types=(AbstractSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="b", signal_types=(BadNameSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="c", signal_types=(BadMatchingSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="d", signal_types=(str,)), None, "plugin.invalid"),
        (SignalPlugin(name="e", signal_types=(Md5Again,)), None, "plugin.name_clash"),
        (SignalPlugin(name="e1", signal_types=(NoIndexSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="e2", signal_types=(HalfIndexSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="e3", signal_types=(DefaultAboveMaxSignal,)), None, "plugin.invalid"),
        (SignalPlugin(name="e4", signal_types=(BadPerceptualSignal,)), None, "plugin.invalid"),
        (
            SignalPlugin(name="f", signal_types=(FakeDnaSignal,), hashers=(BadMediaHasher,)),
            None,
            "plugin.invalid",
        ),
        (SignalPlugin(name="g", hashers=(UnknownTypeHasher,)), None, "plugin.invalid"),
        (SignalPlugin(name="h", hashers=(CryptoHasher, object)), None, "plugin.invalid"),
        (lambda: 1 / 0, None, "plugin.load_failed"),
    ],
)
def test_bad_plugins_are_reported_and_skipped(monkeypatch, stub_pdq, obj, error, code):
    # the good plug-in still loads, whatever the bad one does
    _use_entry_points(monkeypatch, [FakeEntryPoint("bad", obj, error=error), FakeEntryPoint("good", FAKE_PLUGIN)])
    types_ = registry.all_signal_types()
    assert set(types_) == BUILTINS | {"fakedna"}
    assert types_["md5"].__name__ == "Md5Signal"  # a clash never replaces a built-in
    errs = registry.load_errors()
    assert [e.code for e in errs] == [code]
    assert errs[0].detail["plugin"] == "bad"
    assert "'bad'" in errs[0].message


def test_second_plugin_with_same_name_clashes(monkeypatch, stub_pdq):
    _use_entry_points(monkeypatch, [FakeEntryPoint("a_first", FAKE_PLUGIN), FakeEntryPoint("b_second", FAKE_PLUGIN)])
    assert registry.signal_type("fakedna") is FakeDnaSignal
    (err,) = registry.load_errors()
    assert err.code == "plugin.name_clash" and "a_first" in err.message


def test_plugin_hasher_that_cannot_start_is_reported(monkeypatch, stub_pdq):
    class NeedsLicence(FakeDnaHasher):
        def __init__(self):
            raise RuntimeError("licence key not configured")

    _use_entry_points(monkeypatch, [FakeEntryPoint("lic", SignalPlugin("lic", (FakeDnaSignal,), (NeedsLicence,)))])
    res = registry.hash_content(_png())
    assert [s.type for s in res.signals] == ["md5", "sha1", "sha256", "pdq"]
    assert [e.code for e in res.errors] == ["plugin.hasher_failed"]
    assert "licence key" in res.errors[0].message


def test_plugin_hasher_returning_undeclared_signal(monkeypatch, stub_pdq):
    class Liar(FakeDnaHasher):
        def hash_bytes(self, data):
            return [Signal(type="md5", value="0" * 32), "not a signal"]

    _use_entry_points(monkeypatch, [FakeEntryPoint("liar", SignalPlugin("liar", (FakeDnaSignal,), (Liar,)))])
    res = registry.hash_content(_png())
    assert res.values("md5") == [crypto_hashes(_png())["md5"]]
    assert [e.code for e in res.errors] == ["signal.hasher_failed", "signal.hasher_failed"]


def test_listing_entry_points_failing_does_not_crash(monkeypatch, stub_pdq):
    def broken():
        raise RuntimeError("corrupt metadata")

    monkeypatch.setattr(plugins_mod, "_entry_points", broken)
    registry.reload()
    assert set(registry.all_signal_types()) == BUILTINS
    assert [e.code for e in registry.load_errors()] == ["plugin.load_failed"]


def test_plugin_selection_by_environment(monkeypatch, stub_pdq):
    _use_entry_points(monkeypatch, [FakeEntryPoint("fakedna", FAKE_PLUGIN)])
    monkeypatch.setenv(plugins_mod.ENV_SELECT, "none")
    registry.reload()
    assert "fakedna" not in registry.all_signal_types()
    monkeypatch.setenv(plugins_mod.ENV_SELECT, "other,fakedna")
    registry.reload()
    assert "fakedna" in registry.all_signal_types()


def test_load_plugins_directly():
    loaded = load_plugins({"md5": SignalType}, entry_points=[FakeEntryPoint("fakedna", FAKE_PLUGIN)])
    assert loaded.signal_types == {"fakedna": FakeDnaSignal}
    assert loaded.hashers == [FakeDnaHasher]
    assert loaded.origin[FakeDnaHasher] == "fakedna"
