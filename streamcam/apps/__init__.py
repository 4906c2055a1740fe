"""One module or package per command: analyze, review, image, live, batch (local and Ray), doctor;
frames: explain_video, the per-frame loop for library users.
Each is a library function the CLI wraps; they compose the layers below.

May import anything in streamcam except streamcam.cli and the top-level package.
"""
