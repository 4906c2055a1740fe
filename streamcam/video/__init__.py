"""Video input/output: decode upright frames with timestamps (PyAV), encode them back, sample
and parse time codes.

May import only streamcam.core.
"""

from streamcam.video.sink import VideoSink
from streamcam.video.source import VideoInfo, VideoSource, open_source, probe, upright
from streamcam.video.timecode import format_timecode, parse_timecode

__all__ = [
    "VideoInfo",
    "VideoSink",
    "VideoSource",
    "format_timecode",
    "open_source",
    "parse_timecode",
    "probe",
    "upright",
]
