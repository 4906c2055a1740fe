"""CAM methods, one file each, on the shared base in base.py (each overrides only its weights).

May import streamcam.backends (keras.ops) and streamcam.core.
"""

from __future__ import annotations

from streamcam.core.errors import UsageError

from .base import CamMethod, normalize_maps
from .eigencam import EigenCAM
from .gradcam import GradCAM
from .gradcam_plus_plus import GradCAMPlusPlus
from .hirescam import HiResCAM
from .layercam import LayerCAM
from .scorecam import ScoreCAM
from .xgradcam import XGradCAM

METHODS: dict[str, type[CamMethod]] = {
    cls.name: cls for cls in (GradCAM, GradCAMPlusPlus, HiResCAM, LayerCAM, XGradCAM, EigenCAM, ScoreCAM)
}


def get_method(method: str | CamMethod) -> CamMethod:
    if isinstance(method, CamMethod):
        return method
    key = method.lower().replace("_", "").replace("plusplus", "++").replace("pp", "++")
    if key not in METHODS:
        raise UsageError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")
    return METHODS[key]()


__all__ = ["METHODS", "CamMethod", "get_method", "normalize_maps"]
