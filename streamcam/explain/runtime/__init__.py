"""Which runtime runs the model: the Keras engine (any model, any device) or OpenVINO (a CPU, and
a head of global average pooling then linear layers: explain/runtime/openvino_engine.py).

build_engine makes the choice for every command and for the library; each engine carries it in
`runtime_info` (name, what was asked, why), which the summary JSON and `doctor` report.
"""

from __future__ import annotations

import importlib.util

from streamcam.core.errors import UsageError

from ..engine import CamEngine

RUNTIMES = ("auto", "keras", "openvino")


def check_runtime(runtime: str) -> str:
    name = (runtime or "auto").strip().lower()
    if name not in RUNTIMES:
        raise UsageError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    return name


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def openvino_unavailable(device: str) -> str | None:
    """Why OpenVINO cannot run here whatever the model (None when it can)."""
    from streamcam.backends import active, uses_gpu

    if not openvino_installed():
        return "OpenVINO is not installed (pip install 'streamcam[openvino]')"
    if active().NAME != "tensorflow":
        return f"Keras runs on {active().NAME}; the model is converted for OpenVINO through TensorFlow (--backend tensorflow)"
    if uses_gpu(device):
        return "the model runs on a GPU (OpenVINO serves the CPU here; --device cpu to use it)"
    return None


def openvino_unsupported(classifier, device: str) -> str | None:
    """Why OpenVINO cannot explain this classifier here (None when it can)."""
    from streamcam.models.linear_head import why_not_linear

    reason = openvino_unavailable(device)
    if reason is None:
        head = why_not_linear(classifier)
        reason = None if head is None else f"model {classifier.name!r}: {head}"
    return reason


def build_engine(
    model: str = "efficientnet-lite0",
    weights=None,
    layer=None,
    method: str = "gradcam",
    device: str = "auto",
    precision: str = "auto",
    preprocess=None,
    backend: str | None = None,
    runtime: str = "auto",
):
    """An engine from the command line's model options (also what each Ray actor builds).

    backend: tensorflow, jax or auto; None keeps Keras's (KERAS_BACKEND, else tensorflow).
    runtime: keras, openvino (a UsageError, exit 2, where it cannot run: says why), or auto
    (OpenVINO where it can run, Keras otherwise; runtime_info says which and why).
    """
    from streamcam.backends import use_backend
    from streamcam.models import load_classifier

    from .openvino_engine import OpenVinoEngine

    asked = check_runtime(runtime)
    use_backend(backend)
    why_keras = "asked for (--runtime keras)"
    engine = None
    if asked != "keras":
        why_keras = openvino_unavailable(device)
        classifier = None
        if why_keras is None:
            # float32 Keras layers: OpenVINO's precision is its own setting (OpenVinoEngine).
            classifier = load_classifier(model, weights, layer, "float32", "cpu", preprocess)
            why_keras = openvino_unsupported(classifier, device)
            if why_keras is None:
                engine = OpenVinoEngine(classifier, method, precision)
                why = (
                    "asked for (--runtime openvino)"
                    if asked == "openvino"
                    else "auto: a CPU, OpenVINO installed, and a pooling-linear head"
                )
                engine.runtime_info = {
                    "name": "openvino",
                    "requested": asked,
                    "reason": why,
                    "precision": engine.precision,
                    "openvino": engine.openvino_version,
                    "cache": engine.cache,
                }
                return engine
        if asked == "openvino":
            raise UsageError(f"--runtime openvino cannot run here: {why_keras}")
        if classifier is not None and precision != "mixed":  # the float32 classifier loaded above serves Keras on this CPU as it is
            engine = CamEngine(classifier, method, device)
    if engine is None:
        engine = CamEngine(load_classifier(model, weights, layer, precision, device, preprocess), method, device)
    reason = why_keras if asked == "keras" else f"auto fell back to keras: {why_keras}"
    engine.runtime_info = {"name": "keras", "requested": asked, "reason": reason}
    return engine


__all__ = ["RUNTIMES", "build_engine", "check_runtime", "openvino_installed", "openvino_unavailable", "openvino_unsupported"]
