"""Decode upright RGB frames, with their real timestamps, from any FFmpeg-readable input.

A VideoSource opens its input in __init__ and decodes the first frame right away, so
`info` (including the upright size, which needs a frame's rotation) is available as
soon as the object exists, and an input that cannot produce a single frame fails
early with InputError. Iterating yields Frame objects one at a time (nothing is
buffered beyond the decoder's own queue) and may be done once.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av

from streamcam.core.errors import InputError, UsageError
from streamcam.core.frames import Frame, has_fast_path, rotation_k, upright
from streamcam.core.paths import check_input_file
from streamcam.core.redact import redact_source
from streamcam.video.sampling import FrameNumbers, check_sampling, sampler, variable_rate

# Schemes handed to FFmpeg as network inputs (they get a timeout; no path checks).
NETWORK_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt", "rtp", "mms", "mmsh", "hls"})
NETWORK_TIMEOUT_S = 10.0
_EPS = 1e-6  # seconds; absorbs float error when comparing timestamps to instants
# Undecodable packets in a row before the rest of the input is taken as unreadable.
MAX_CONSECUTIVE_DECODE_ERRORS = 100
# What damaged input makes PyAV raise besides FFmpeg's own errors: metadata that is not
# UTF-8, impossible sizes, formats or time bases (None or 0) read from a broken header.
_DAMAGE_ERRORS = (av.FFmpegError, UnicodeError, ValueError, TypeError, OverflowError, ZeroDivisionError)


class StartPastEnd(UsageError):
    """A start time at or after the video's end; callers that took the time in other terms (review
    --around) can say so in those."""

    def __init__(self, start: float, duration_s: float, name: str):
        super().__init__(f"start {start:g}s is past the end of {name} ({duration_s:.3f}s)")
        self.start, self.duration_s, self.name = start, duration_s, name


def _duration_s(stream, container) -> float | None:
    """The stream's duration, else the container's, else None (some files have neither)."""
    if stream.duration:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None


@dataclass(frozen=True)
class VideoInfo:
    source: str
    container: str
    codec: str
    width: int  # upright, i.e. after rotation
    height: int
    fps: float | None
    frames: int | None
    duration_s: float | None
    rotation: int  # counter-clockwise degrees of the display matrix, as PyAV reports it
    has_audio: bool
    time_base: Fraction


def _camera_target(index: int) -> tuple[str, str]:
    """(file, format) FFmpeg needs to open camera number `index` on this OS."""
    if sys.platform.startswith("linux"):
        return f"/dev/video{index}", "v4l2"
    if sys.platform == "darwin":
        return f"{index}:none", "avfoundation"  # ":none" = no audio device
    if sys.platform == "win32":
        # dshow selects cameras by name, not number.
        raise InputError(f'camera {index}: on Windows pass the camera by name, e.g. "video=Integrated Camera"')
    raise InputError(f"camera {index}: no camera support on {sys.platform}")


def _is_network(source: str) -> bool:
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.lower() in NETWORK_SCHEMES


def is_camera(source: str | int) -> bool:
    """A camera number: 0, or '0' as typed on the command line."""
    return isinstance(source, int) or str(source).isdigit()


def is_local_file(source: str | int) -> bool:
    """Neither a camera nor a URL: a path to check before opening, and a file to play at its own speed."""
    return not is_camera(source) and "://" not in str(source)


def _open_container(
    source: str | int, options: dict | None, timeout: float = NETWORK_TIMEOUT_S
) -> tuple[av.container.InputContainer, str, bool]:
    """Open the input; returns (container, display name, is_live)."""
    opts = {str(k): str(v) for k, v in (options or {}).items()}
    kwargs: dict = {}
    if is_camera(source):
        file, fmt = _camera_target(int(source))
        name, live = str(source), True  # a live device: nothing to seek in
        kwargs["format"] = fmt
    elif sys.platform == "win32" and str(source).startswith("video="):
        file, name, live = str(source), str(source), True
        kwargs["format"] = "dshow"
    elif _is_network(str(source)):
        # The name goes into messages, summaries and pages: never with the URL's credentials.
        file, name, live = str(source), redact_source(source), False  # HTTP files can seek; failures are handled
        kwargs["timeout"] = timeout  # open and each read; a dead stream must not hang us
        if file.lower().startswith("rtsp"):
            opts = {"rtsp_transport": "tcp", **opts}  # UDP loses packets through NAT/firewalls
    else:
        file = name = os.fspath(source)
        live = False
        check_input_file(file, "a video file")
    try:
        # metadata_errors: PyAV decodes metadata strings as strict UTF-8, some at open time.
        container = av.open(file, "r", options=opts, metadata_errors="replace", **kwargs)
    except _DAMAGE_ERRORS as exc:
        raise InputError(f"cannot open {name}: {_reason(exc)}") from exc
    return container, name, live


def _reason(exc: BaseException) -> str:
    """FFmpeg's message without the errno prefix and file name PyAV adds."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())


def _float_or_none(value) -> float | None:
    return float(value) if value else None


class VideoSource:
    """Iterator of upright RGB Frames; also a context manager that closes the input.

    start/end: seconds on the frames' own time axis (time_s = pts * time_base);
    the source seeks to the keyframe before `start` instead of decoding from zero.
    every=N keeps every Nth frame in range; fps=F keeps a frame whenever its time
    reaches the next instant of an F-per-second grid that starts at `start` (or at
    the first frame). Decode errors do not raise: an undecodable packet is skipped and
    counted in `decode_errors` (one summarising line in `warnings`), and only
    MAX_CONSECUTIVE_DECODE_ERRORS in a row end the iteration early.

    Frame.index is the frame's number in the source, counted from the file's first
    frame (see FrameNumbers); `frame_index_estimated` says whether some were estimates.
    """

    def __init__(
        self,
        source: str | int,
        *,
        start: float | None = None,
        end: float | None = None,
        every: int = 1,
        fps: float | None = None,
        options: dict | None = None,
        timeout: float = NETWORK_TIMEOUT_S,
    ):
        check_sampling(start, end, every, fps)
        self.start, self.end, self.every, self.fps = start, end, every, fps
        self.warnings: list[str] = []
        self.decode_errors = 0
        self._iterated = False
        self._decoded = 0  # raw frames out of the decoder (before range/sampling)
        self._error: str | None = None  # last FFmpeg error while decoding
        self._warning_at: int | None = None  # the one decode-error line in `warnings`, updated in place
        self._skipped, self._first_error, self._stopped = 0, "", ""
        self.frame_index_estimated = False
        self._container, self._name, self._live = _open_container(source, options, timeout)
        try:
            self._stream = self._pick_stream()
            self._raw = self._raw_frames()
            self._first = next(self._raw, None)
            if self._first is None:
                why = self._error or "the video stream has no frames"
                raise InputError(f"could not decode any video frame from {self._name}: {why}")
            self.info = self._make_info(self._first)
            if start is not None and self.info.duration_s is not None and start >= self.info.duration_s:
                raise StartPastEnd(start, self.info.duration_s, self._name)
            self._t_first = self._first_time()
        except BaseException as exc:
            self.close()
            if isinstance(exc, _DAMAGE_ERRORS):  # a damaged header: one line, not a traceback
                raise InputError(f"cannot read {self._name}: {_reason(exc)}") from exc
            raise

    # -- opening -------------------------------------------------------------------

    def _pick_stream(self):
        # Explicitly the first video stream: audio is stream 0 in some files.
        if not self._container.streams.video:
            kinds = ", ".join(f"{s.type} {getattr(s.codec_context, 'name', '?')}" for s in self._container.streams)
            raise InputError(f"no video stream in {self._name} (streams: {kinds or 'none'})")
        stream = self._container.streams.video[0]
        if stream.codec_context is None:
            raise InputError(f"no decoder for the video stream of {self._name}")
        stream.thread_type = "AUTO"  # frame + slice threads
        return stream

    def _make_info(self, first: av.VideoFrame) -> VideoInfo:
        s, c = self._stream, self._container
        rotation = int(first.rotation or 0)
        w, h = first.width, first.height
        if rotation_k(rotation) % 2:
            w, h = h, w
        duration = _duration_s(s, c)
        return VideoInfo(
            source=self._name,
            container=c.format.name,
            codec=s.codec_context.name,
            width=w,
            height=h,
            fps=_float_or_none(s.average_rate or s.guessed_rate),
            frames=s.frames or None,
            duration_s=duration,
            rotation=rotation,
            # The first audio stream is the one copied; a damaged header can leave it without a codec.
            has_audio=bool(c.streams.audio) and c.streams.audio[0].codec_context is not None,
            time_base=Fraction(s.time_base),
        )

    # -- decoding ------------------------------------------------------------------

    def _raw_frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames in presentation order; undecodable packets are skipped and counted."""
        packets = self._container.demux(self._stream)
        failures = 0  # in a row
        while failures < MAX_CONSECUTIVE_DECODE_ERRORS:
            try:
                packet = next(packets, None)
            except av.FFmpegError as exc:
                failures += 1
                if not isinstance(exc, av.InvalidDataError):  # I/O error, timeout: no retry
                    self._note_error(exc, stopped=True)
                    break
                self._note_error(exc)
                packets = self._container.demux(self._stream)  # the demuxer goes on after the bad bytes
                continue
            if packet is None:
                return
            try:
                frames = packet.decode()  # the final empty packet flushes the decoder
            except _DAMAGE_ERRORS as exc:
                failures += 1
                self._note_error(exc)
                continue
            failures = 0
            for frame in frames:
                self._decoded += 1
                yield frame
        else:
            self._stopped = f"gave up after {MAX_CONSECUTIVE_DECODE_ERRORS} consecutive errors"
            self._update_warning()
        yield from self._drain()

    def _note_error(self, exc: BaseException, stopped: bool = False) -> None:
        """Count a skipped packet or frame (or the error that ended reading)."""
        self.decode_errors += 1
        self._error = _reason(exc)
        if stopped:
            self._stopped = f"reading stopped after frame {self._decoded}: {self._error}"
        else:
            self._skipped += 1
            self._first_error = self._first_error or f"first after frame {self._decoded}: {self._error}"
        self._update_warning()

    def _update_warning(self) -> None:
        """ONE warning line about decode errors, however many there are: kept current in place."""
        parts = [f"skipped {self._skipped} undecodable packet(s) ({self._first_error})"] if self._skipped else []
        parts += [f"{self._stopped} (stopped)"] if self._stopped else []
        if self._warning_at is None:
            self._warning_at = len(self.warnings)
            self.warnings.append("")
        self.warnings[self._warning_at] = "; ".join(parts)

    def _drain(self) -> Iterator[av.VideoFrame]:
        """Frames still queued in the decoder after reading stopped (best effort)."""
        try:
            frames = self._stream.codec_context.decode(None)
        except av.EOFError:
            return  # nothing was queued
        except _DAMAGE_ERRORS as exc:
            self.warnings.append(f"could not flush the decoder: {_reason(exc)}")
            return
        for frame in frames:
            self._decoded += 1
            yield frame

    def _time_of(self, frame: av.VideoFrame) -> float:
        if frame.pts is not None:
            return float(frame.pts * self._stream.time_base)
        # No timestamp: assume constant rate (FFmpeg's own default is 25 fps).
        return (self._decoded - 1) / (self.info.fps or 25.0)

    def _first_time(self) -> float:
        """Time of the file's first frame: the first decoded one, or the stream's start if packets were lost before it."""
        t, s = self._time_of(self._first), self._stream
        if self.decode_errors and s.start_time is not None:
            t = min(t, float(s.start_time * s.time_base))
        return t

    def _seek_to_start(self) -> bool:
        """Seek to the keyframe at or before `start`; False (and decoding on) if seeking fails."""
        try:
            target = math.floor(self.start / self._stream.time_base)
            self._container.seek(target, stream=self._stream, backward=True, any_frame=False)
        except _DAMAGE_ERRORS as exc:
            self.warnings.append(f"could not seek to {self.start:g}s ({_reason(exc)}); decoding from the start")
            return False
        self._raw.close()
        self._raw = self._raw_frames()
        return True

    def _in_range(self) -> Iterator[tuple[av.VideoFrame, float, int]]:
        """(frame, time_s, source frame number) within [start, end)."""
        first, self._first = self._first, None
        start = self.start
        seeked = start is not None and not self._live and self._time_of(first) < start - _EPS and self._seek_to_start()
        frames = self._raw if seeked else _prepend(first, self._raw)
        numbers = FrameNumbers(self._t_first, self.info.fps, variable_rate(self._stream))
        last = None
        for frame in frames:
            t = self._time_of(frame)
            index = numbers.number(t, by_time=seeked, lost=self.decode_errors > 0)
            self.frame_index_estimated = numbers.estimated
            if start is not None and t < start - _EPS:
                continue
            if self.end is not None and t >= self.end - _EPS:
                return
            last = t
            yield frame, t, index
        self._check_truncated(last)

    def _check_truncated(self, last: float | None) -> None:
        """Some truncated files just end (no error): compare the last time with the header."""
        dur = self.info.duration_s if self._stream.duration else None  # video stream's own duration only
        if dur is None or last is None or self._stopped:  # a stop was reported already
            return
        expected = dur if self.end is None else min(dur, self.end)
        frame_dur = 1.0 / self.info.fps if self.info.fps else 0.1
        if expected - last > max(0.5, 3 * frame_dur):
            self.decode_errors = max(1, self.decode_errors)  # a silent end counts once; skipped packets already did
            header = f"{dur:.3f}s" + (f", {self.info.frames} frames" if self.info.frames else "")
            self.warnings.append(
                f"video ended at {last:.3f}s after {self._decoded} decoded frames but the header says {header}: file truncated? (stopped)"
            )

    def __iter__(self) -> Iterator[Frame]:
        if self._iterated:
            raise RuntimeError("a VideoSource can be iterated only once")
        self._iterated = True
        return self._frames()

    def _frames(self) -> Iterator[Frame]:
        keep = sampler(self.every, self.fps, self.start)
        try:
            for frame, t, index in self._in_range():
                if not keep(t):
                    continue  # skipped frames are never converted to RGB
                if has_fast_path(frame):  # converted later, only to what a stage needs (see frames.py)
                    yield Frame(index, frame.pts, t, decoded=frame, rotation=frame.rotation or 0)
                    continue
                try:
                    rgb = upright(frame.to_ndarray(format="rgb24"), frame.rotation or 0)
                except _DAMAGE_ERRORS as exc:  # a damaged frame FFmpeg cannot convert: skip it
                    self._note_error(exc)
                    continue
                yield Frame(index=index, pts=frame.pts, time_s=t, rgb=rgb)
        except _DAMAGE_ERRORS as exc:  # anything else damaged input trips: end with a warning
            self._note_error(exc, stopped=True)

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        raw = getattr(self, "_raw", None)
        if raw is not None:
            raw.close()
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()

    def __enter__(self) -> VideoSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _prepend(first, rest: Iterator) -> Iterator:
    yield first
    yield from rest


def open_source(source: str | int, **kwargs) -> VideoSource:
    """Same as VideoSource(source, **kwargs)."""
    return VideoSource(source, **kwargs)


def probe(source: str | int, *, options: dict | None = None) -> VideoInfo:
    """Header facts (plus rotation from the first frame) without reading the whole input."""
    with VideoSource(source, options=options) as src:
        return src.info
