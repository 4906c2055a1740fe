"""What a run writes: drawing (RGB and I420), CSV and JSON files, per-class pictures, the review
page, and the shared run sinks that analyze, review, live --record and batch runs write through.

May import streamcam.explain, streamcam.video, streamcam.models, streamcam.backends and streamcam.core; never apps.
"""
