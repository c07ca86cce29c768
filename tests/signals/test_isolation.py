"""Large images hashed in a child process (safehold.signals.isolation): same hash, a hard deadline, errors kept."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from safehold.errors import SafeholdError
from safehold.signals.isolation import Isolation
from safehold.signals.pdq import PdqHasher
from tests.media import encode, photo
from tests.signals.test_decode_limits import png_bomb

EVERY_IMAGE = Isolation(min_pixels=1, timeout=30)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_a_child_hashes_exactly_as_the_server_would(fmt):
    data = encode(photo(11), fmt)
    for dihedral in (False, True):
        assert PdqHasher(dihedral=dihedral, isolation=EVERY_IMAGE).hash_bytes(data) == PdqHasher(
            dihedral=dihedral
        ).hash_bytes(data)


def test_only_images_of_the_threshold_and_up_leave_the_process():
    assert not Isolation(16_000_000, 5).wanted(15_999_999)
    assert Isolation(16_000_000, 5).wanted(16_000_000)
    assert not Isolation(0, 5).wanted(10**9)  # 0: never


def test_a_decode_past_its_deadline_is_killed_and_refused_as_too_complex():
    with pytest.raises(SafeholdError) as err:
        PdqHasher(isolation=Isolation(min_pixels=1, timeout=0.01)).hash_bytes(png_bomb(7000, 7000))
    assert err.value.code == "media.too_complex" and err.value.status == 422
    assert err.value.detail == {"timeout_seconds": 0.01}
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def test_the_childs_refusal_is_the_same_error_as_in_process():
    truncated = encode(photo(12), "PNG")[:-200]
    with pytest.raises(SafeholdError) as inside:
        PdqHasher().hash_bytes(truncated)
    with pytest.raises(SafeholdError) as isolated:
        PdqHasher(isolation=EVERY_IMAGE).hash_bytes(truncated)
    assert (isolated.value.code, isolated.value.status) == (inside.value.code, inside.value.status)


def test_the_settings_reach_the_scan_service(settings):
    from safehold.services import Services

    settings.image_isolate_pixels, settings.image_decode_timeout = 1_000, 7.5
    svc = Services(settings)
    try:
        assert (svc.scans.isolation.min_pixels, svc.scans.isolation.timeout) == (1_000, 7.5)
        result = svc.scans.scan_bytes(encode(photo(13), "PNG"))
        assert result.verdict == "no_match" and any(s["type"] == "pdq" for s in result.signals)
    finally:
        svc.close()


def _killed() -> None:
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does


def _exits() -> None:
    os._exit(3)


def test_a_child_that_dies_is_an_error_that_says_how():
    with pytest.raises(SafeholdError) as killed:
        EVERY_IMAGE.run(_killed)
    assert (killed.value.code, killed.value.status) == ("media.too_large", 413)
    with pytest.raises(SafeholdError) as exited:
        EVERY_IMAGE.run(_exits)
    assert exited.value.code == "signal.hasher_failed" and "exit code 3" in exited.value.message
    assert not [p for p in multiprocessing.active_children() if p.is_alive()]


def _out_of_memory() -> None:
    raise MemoryError


def test_what_the_child_raises_is_raised_in_the_parent_for_the_hashers_caller_to_map():
    with pytest.raises(MemoryError):  # registry.hash_content turns it into media.too_large, as in process
        EVERY_IMAGE.run(_out_of_memory)
