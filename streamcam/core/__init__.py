"""The ground floor: frames, the staged pipeline, errors, labels, paths, preprocessing, progress.

May import only the standard library and third-party packages: every other part of streamcam builds on it.
"""
