"""How far to trust what a video's explanations show: steady labels and maps across frames
(smoothing.py, motion.py) and the figures that say how steady they are (stability.py).

Part of streamcam.explain: may import streamcam.explain.results and streamcam.core only.
"""

from .motion import MotionCompensator
from .smoothing import SmoothingOptions, TemporalSmoother
from .stability import StabilityFigures

__all__ = ["MotionCompensator", "SmoothingOptions", "StabilityFigures", "TemporalSmoother"]
