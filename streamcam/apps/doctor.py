"""Facts about this installation, for `streamcam doctor`."""

from __future__ import annotations

import platform
import sys


def report(runtime: str = "auto", device: str = "auto") -> list[str]:
    import av
    import cv2
    import numpy as np

    from streamcam.backends import active, keras_module
    from streamcam.core.version import __version__
    from streamcam.models.cache import ENV_VAR, cache_dir

    backend = active()
    keras = keras_module()

    encoders = [name for name in ("libx264", "libx265", "libvpx-vp9", "libsvtav1", "mpeg4", "mjpeg") if _has_encoder(av, name)]
    return [
        f"streamcam {__version__}",
        f"python {sys.version.split()[0]} on {platform.platform()}",
        f"backend {backend.NAME} {backend.version()} (--backend or KERAS_BACKEND), keras {keras.__version__}, numpy {np.__version__}, opencv {cv2.__version__}",
        f"av (PyAV) {av.__version__}, FFmpeg {_ffmpeg_version(av)}",
        f"devices: {', '.join(backend.devices())}" + ("" if backend.gpus() else " (no GPU: running on the CPU)"),
        runtime_line(runtime, device),
        f"video encoders: {', '.join(encoders)}",
        f"decoders available: {len(av.codecs_available)} codecs",
        f"weights cache: {cache_dir()} (override with {ENV_VAR}); converted OpenVINO models in {cache_dir() / 'openvino'}",
    ]


def runtime_line(runtime: str, device: str) -> str:
    """Which runtime `--runtime` picks for the default model here, and why (loads that model's weights)."""
    from streamcam.explain.runtime import check_runtime, openvino_installed, openvino_unavailable, openvino_unsupported
    from streamcam.models import DEFAULT_MODEL, load_classifier

    asked = check_runtime(runtime)
    version = ""
    if openvino_installed():
        import openvino

        version = f"; openvino {openvino.get_version().split('-')[0]} installed"
    if asked == "keras":
        return f"runtime: keras (asked for){version}"
    why = openvino_unavailable(device)
    if why is None:
        why = openvino_unsupported(load_classifier(DEFAULT_MODEL, precision="float32", device="cpu"), device)
    if why is None:
        from streamcam.explain.runtime.precision import PRECISION_TEXT, inference_precision

        precision = inference_precision(openvino.Core(), "auto")
        return f"runtime: openvino for {DEFAULT_MODEL} (--runtime {asked}: a CPU, and its head is global average pooling then linear layers; precision {PRECISION_TEXT[precision]}){version}"
    if asked == "openvino":
        return f"runtime: --runtime openvino cannot run here: {why}{version}"
    return f"runtime: keras for {DEFAULT_MODEL} (auto: {why}){version}"


def _has_encoder(av, name: str) -> bool:
    try:
        av.codec.Codec(name, "w")
        return True
    except Exception:  # PyAV raises UnknownCodecError / ValueError depending on version
        return False


def _ffmpeg_version(av) -> str:
    try:
        return ".".join(str(v) for v in av.library_versions["libavcodec"]) + " (libavcodec)"
    except (AttributeError, KeyError):
        return "unknown"
