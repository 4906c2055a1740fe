"""How far to trust what a video's explanations show: steady labels and maps across frames
(smoothing.py, motion.py), the figures that say how steady they are (stability.py), and whether a
map shows what the model used (faithfulness.py).

Part of streamcam.explain: may import streamcam.explain.results and streamcam.core only.
"""

from .faithfulness import FaithfulnessRun, FaithfulnessScorer
from .motion import MotionCompensator
from .smoothing import SmoothingOptions, TemporalSmoother
from .stability import StabilityFigures

__all__ = ["FaithfulnessRun", "FaithfulnessScorer", "MotionCompensator", "SmoothingOptions", "StabilityFigures", "TemporalSmoother"]
