"""Turning images into explanations: the CAM engine and its methods, tiling, guided backprop,
input sizes, the null engine (and, later, runtimes and trust measures).

May import streamcam.models, streamcam.backends and streamcam.core; never outputs, video or apps.
"""
