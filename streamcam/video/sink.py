"""Encode RGB frames to a video file, keeping their timestamps, written atomically.

Timestamps: every frame keeps its own pts (variable frame rate stays variable), but
the whole track is shifted so the first written frame is at 0. Without that shift a
clip cut from 0:31 would start with 31 s of nothing in most players; with it, output
time = input time - first frame's time, exactly, in the input time base. Copied audio
is shifted by the same amount. Exceptions: codecs/containers that cannot store the
input time base (MPEG-4 Part 2 needs a denominator <= 65535) get a 1/1000 s
encoder time base and pts are rounded to it; muxers with a fixed time base
(Matroska/WebM: 1 ms) round too.

Odd sizes: with chroma-subsampled pixel formats (yuv420p...) the frame is padded to
even width/height by repeating its last column/row (libx264 refuses odd sizes;
scaling would blur every pixel). `out_width`/`out_height` give the encoded size.
A frame of another size (HLS and other adaptive streams switch resolution) is scaled
to the output size, with one warning in `warnings` the first time.

The file is written as `.<stem>.partial<suffix>` next to the target and renamed on
close(), so a failed run never leaves a file under the final name.
"""

from __future__ import annotations

import contextlib
import io
import math
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from streamcam.core.errors import StreamcamError, UsageError
from streamcam.core.paths import replace_durably

_FAST_PRESETS = {"ultrafast", "superfast", "veryfast", "faster", "fast"}
# x264's and x265's presets; other encoders take the fast ones as a hint (see _encoder_options).
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
_NEEDS_SHORT_TIME_BASE = {"mpeg4", "msmpeg4", "msmpeg4v2", "msmpeg4v3", "h263", "h263p", "flv"}
_QSCALE_CODECS = {"mpeg4", "mjpeg", "mpeg1video", "mpeg2video", "msmpeg4", "msmpeg4v2", "msmpeg4v3"}


class VideoSink:
    """Context manager that encodes frames in order; see the module docstring for guarantees.

    `warnings` collects non-fatal problems (audio that could not be copied).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        width: int,
        height: int,
        time_base: Fraction,
        fps: float | None,
        codec: str = "libx264",
        crf: int | None = 23,
        preset: str | None = "veryfast",
        audio_from: str | None = None,
        audio_start: float | None = None,
        audio_end: float | None = None,
        pix_fmt: str = "yuv420p",
    ):
        self.path = Path(path)
        self.temp_path = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.width, self.height = width, height
        self.time_base = Fraction(time_base)
        self.fps = fps
        self.warnings: list[str] = []
        self.frames_written = 0
        self._scaled = False  # a frame of another size came (and the warning was given)
        self._closed = False
        self._origin: int | None = None  # first frame's pts (input time base): the rebase amount
        self._t0 = 0.0
        self._last_pts: int | None = None
        self._last_time: float | None = None
        self._frame_dur = 1.0 / fps if fps else 0.0
        self._audio: _AudioCopy | None = None
        if not self.path.parent.is_dir():
            raise UsageError(f"output folder does not exist: {self.path.parent}")
        try:
            self._container = av.open(str(self.temp_path), "w")
        except ValueError as exc:  # PyAV: "Could not determine output format"
            raise UsageError(f"unknown output format for {self.path.name}: use e.g. .mp4, .mkv, .webm") from exc
        except av.FFmpegError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror}") from exc
        try:
            self._stream = self._add_video_stream(codec, crf, preset, pix_fmt)
            if audio_from is not None:
                self._audio = _AudioCopy.create(audio_from, self._container, audio_start, audio_end, self.warnings)
        except BaseException:
            self.abort()
            raise

    # -- setup ---------------------------------------------------------------------

    def _add_video_stream(self, codec: str, crf: int | None, preset: str | None, pix_fmt: str):
        if codec == "mjpeg" and pix_fmt == "yuv420p":
            pix_fmt = "yuvj420p"  # FFmpeg's MJPEG encoder wants full-range YUV
        sub_w, sub_h = _chroma_subsampling(pix_fmt)
        self.out_width = self.width + (self.width % 2 if sub_w else 0)
        self.out_height = self.height + (self.height % 2 if sub_h else 0)
        self._enc_tb = _encoder_time_base(codec, self.time_base)
        try:
            stream = self._container.add_stream(codec, options=_encoder_options(codec, crf, preset))
        except (ValueError, av.FFmpegError) as exc:  # unknown encoder name
            raise UsageError(f"cannot encode with {codec!r}: {exc}") from exc
        cc = stream.codec_context
        stream.width, stream.height, stream.pix_fmt = self.out_width, self.out_height, pix_fmt
        cc.time_base = self._enc_tb
        stream.time_base = self._enc_tb  # muxers that may (mp4, mov) keep it: exact timestamps
        if self.fps:
            cc.framerate = Fraction(self.fps).limit_denominator(1001)  # a hint only; pts decide
        cc.thread_count = 0  # auto
        cc.thread_type = "AUTO"  # libx264: frame threads (faster) instead of sliced threads
        # A bad option fails here, before any frame, not at the first encode.
        _open_encoder(cc, codec, catch_logs=False, options=_encoder_options(codec, crf, preset))
        return stream

    # -- writing -------------------------------------------------------------------

    @property
    def accepts_i420(self) -> bool:
        """Whether write() takes I420 pictures as they are (a 4:2:0 stream of even size)."""
        return self._stream.pix_fmt == "yuv420p" and (self.out_width, self.out_height) == (self.width, self.height)

    def write(self, picture: np.ndarray, pts: int | None, time_s: float) -> None:
        """Encode one frame; frames must come in presentation order.

        picture: H x W x 3 uint8 RGB, or I420 of the output's size (H * 3/2 x W uint8, see
        frames.py), which a 4:2:0 stream encodes without any conversion. An RGB frame of another
        size (streams that change resolution) is scaled to the output size.
        """
        if self._closed:
            raise RuntimeError("write() after close()/abort()")
        if (
            picture.ndim == 2
            and picture.dtype == np.uint8
            and picture.shape == (self.height * 3 // 2, self.width)
            and self.height % 2 == 0
            and self.width % 2 == 0
        ):
            if self.accepts_i420:
                self._encode(av.VideoFrame.from_ndarray(picture, format="yuv420p"), pts, time_s)
                return
            picture = cv2.cvtColor(picture, cv2.COLOR_YUV2RGB_I420)  # another pixel format: the RGB path
        rgb = picture
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or not rgb.size:
            raise ValueError(f"expected {self.height}x{self.width}x3 uint8, got {rgb.shape} {rgb.dtype}")
        if rgb.shape[:2] != (self.height, self.width):
            rgb = self._scale(rgb, time_s)
        self._encode(self._to_video_frame(self._pad(rgb)), pts, time_s)

    def _encode(self, frame: av.VideoFrame, pts: int | None, time_s: float) -> None:
        if pts is None:
            pts = round(time_s / self.time_base)
        if self._origin is None:
            self._origin, self._t0 = pts, time_s
        out_pts = _rescale(pts - self._origin, self.time_base, self._enc_tb)
        if self._last_pts is not None and out_pts <= self._last_pts:
            out_pts = self._last_pts + 1  # rounding to a coarser time base must not reorder/duplicate
        if self._last_time is not None and time_s > self._last_time:
            self._frame_dur = time_s - self._last_time
        frame.pts, frame.time_base = out_pts, self._enc_tb
        self._mux(self._stream.encode(frame))
        self._last_pts, self._last_time = out_pts, time_s
        self.frames_written += 1
        self._pump_audio(time_s - self._t0)  # interleave: audio up to the current video time

    def _scale(self, rgb: np.ndarray, time_s: float) -> np.ndarray:
        h, w = rgb.shape[:2]
        if not self._scaled:  # one warning, not one per frame
            self._scaled = True
            self.warnings.append(
                f"frame size changed to {w}x{h} at {time_s:.3f}s; frames of another size are scaled to {self.width}x{self.height}"
            )
        shrink = w * h > self.width * self.height  # INTER_AREA averages (no aliasing); LINEAR enlarges smoothly
        return cv2.resize(rgb, (self.width, self.height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)

    def _to_video_frame(self, rgb: np.ndarray) -> av.VideoFrame:
        if self._stream.pix_fmt == "yuv420p":
            # OpenCV's SIMD RGB->I420 (BT.601, limited range, as FFmpeg's default) costs 0.4 ms of
            # CPU per 720p frame where FFmpeg's swscale costs 3.9 ms: a tenth of the encoder's budget.
            return av.VideoFrame.from_ndarray(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420), format="yuv420p")
        return av.VideoFrame.from_ndarray(rgb, format="rgb24")  # the encoder converts

    def _pad(self, rgb: np.ndarray) -> np.ndarray:
        dw, dh = self.out_width - self.width, self.out_height - self.height
        if dw or dh:
            return cv2.copyMakeBorder(rgb, 0, dh, 0, dw, cv2.BORDER_REPLICATE)
        return rgb

    def _pump_audio(self, until_s: float) -> None:
        if self._audio is None:
            return
        try:
            self._audio.pump(self._container, until_s, self._t0)
        except av.FFmpegError as exc:  # an audio problem must never cost the video
            self.warnings.append(f"audio copy stopped at {until_s:.3f}s: {exc.strerror}")
            self._audio.close()
            self._audio = None

    def _mux(self, packets) -> None:
        for packet in packets:
            self._container.mux(packet)

    # -- finishing -----------------------------------------------------------------

    def close(self) -> Path:
        """Flush the encoder, copy the remaining audio, finish the file and move it into place."""
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise StreamcamError(f"no video frames to write to {self.path}")
        try:
            self._mux(self._stream.encode(None))
            # Audio never outlasts the video by more than one frame (also after Ctrl-C).
            self._pump_audio(self._last_time - self._t0 + self._frame_dur)
            if self._audio is not None:
                self._audio.close()
            self._container.close()
            replace_durably(self.temp_path, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; the final path is left untouched."""
        if self._closed:
            return
        self._closed = True
        if self._audio is not None:
            self._audio.close()
        container = getattr(self, "_container", None)
        if container is not None:
            with contextlib.suppress(av.FFmpegError):  # the file is deleted next: a trailer error is meaningless
                container.close()
        self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        # Ctrl-C: keep (and finalise) what was encoded so far; any other error: discard it.
        if self.frames_written and (exc_type is None or issubclass(exc_type, KeyboardInterrupt)):
            self.close()
        elif exc_type is None:
            self.close()  # raises: nothing was written
        else:
            self.abort()
        return False


class _AudioCopy:
    """Remuxes (no re-encode) the audio packets of another file into the output."""

    def __init__(self, source, in_stream, out_stream, start, end, packets, first):
        self._source, self._in_stream, self._out_stream = source, in_stream, out_stream
        self._start, self._end = start, end
        self._packets = packets
        self._pending = first  # read already, to try the muxer with
        self._done = False

    @classmethod
    def create(cls, path, output, start, end, warnings) -> _AudioCopy | None:
        try:
            source = av.open(str(path), metadata_errors="replace")  # damaged files: not valid UTF-8
        except (av.FFmpegError, UnicodeError, ValueError) as exc:
            warnings.append(f"no audio copied: cannot open {path}: {getattr(exc, 'strerror', None) or exc}")
            return None
        if not source.streams.audio:
            source.close()
            return None  # nothing to copy; not worth a warning
        in_stream = source.streams.audio[0]
        try:
            packets = source.demux(in_stream)
            first = _next_timed(packets)
            problem = _audio_fits(output.format.name, in_stream, first)
            if not problem and start:  # skip demuxing everything before the clip
                source.seek(math.floor(start / in_stream.time_base), stream=in_stream, backward=True)
                packets, first = source.demux(in_stream), None
        except (av.FFmpegError, ValueError) as exc:
            problem = f"cannot read the audio of {path}: {getattr(exc, 'strerror', None) or exc}"
        if problem:
            source.close()
            warnings.append(f"no audio copied: {problem}")
            return None
        out_stream = output.add_stream_from_template(in_stream)
        return cls(source, in_stream, out_stream, start, end, packets, first)

    def pump(self, output, until_s: float, t0: float) -> None:
        """Mux audio packets whose shifted time (input time - t0) is below until_s."""
        tb = self._in_stream.time_base
        start = t0 if self._start is None else max(self._start, t0)  # nothing before the first frame
        shift = round(t0 / tb)
        while not self._done:
            packet = self._pending if self._pending is not None else self._next_packet()
            self._pending = None
            if packet is None:
                self._done = True
                return
            t = float(packet.pts * tb)
            if self._end is not None and t >= self._end:
                self._done = True
                return
            if t - t0 >= until_s - 1e-9:
                self._pending = packet  # belongs after video still to come
                return
            if t < start - 1e-9:
                continue
            packet.pts -= shift
            packet.dts -= shift
            packet.stream = self._out_stream
            output.mux(packet)

    def _next_packet(self):
        return _next_timed(self._packets)

    def close(self) -> None:
        self._done = True
        self._source.close()


def _next_timed(packets):
    """The next packet with timestamps (skips the demuxer's final flush packet), or None."""
    for packet in packets:
        if packet.pts is not None and packet.dts is not None:
            return packet
    return None


def _audio_fits(format_name: str, in_stream, packet) -> str | None:
    """Why this audio cannot be stream-copied into `format_name` (None if it can).

    A trial file in memory gets the header, one packet and the trailer: muxers check codecs
    at each step (mp4 writes Opus's configuration only in the trailer), and a failure found
    only when the real file is closed would cost the whole video.
    """
    trial = av.open(io.BytesIO(), "w", format=format_name)
    try:
        stream = trial.add_stream_from_template(in_stream)
        trial.start_encoding()
        if packet is not None:
            probe = av.Packet(bytes(packet))  # a copy: muxing rebases the packet's timestamps
            probe.pts = probe.dts = 0
            probe.time_base, probe.stream = in_stream.time_base, stream
            trial.mux(probe)
        trial.close()
    except (ValueError, av.FFmpegError) as exc:
        return f"{in_stream.codec_context.name} audio cannot go into {format_name}: {exc}"
    finally:
        trial.close()
    return None


def _chroma_subsampling(pix_fmt: str) -> tuple[bool, bool]:
    """(horizontal, vertical) chroma subsampling of a pixel format."""
    fmt = av.VideoFormat(pix_fmt, 4, 4)
    return any(c.width < 4 for c in fmt.components), any(c.height < 4 for c in fmt.components)


def _encoder_time_base(codec: str, tb: Fraction) -> Fraction:
    if codec in _NEEDS_SHORT_TIME_BASE and tb.denominator > 65535:
        return Fraction(1, 1000)
    return tb


def check_encoder(codec: str, crf: int | None, preset: str | None) -> None:
    """UsageError, with the encoder's own reason, when `codec` cannot encode with these options:
    a trial encoder is opened in memory, so a bad option fails before any file is written."""
    if preset is not None and preset not in PRESETS:
        raise UsageError(f"--preset {preset!r} is not a preset: use one of {', '.join(PRESETS)}")
    trial = av.open(io.BytesIO(), "w", format="mp4")
    try:
        try:
            stream = trial.add_stream(codec, options=_encoder_options(codec, crf, preset))
        except (ValueError, av.FFmpegError) as exc:
            raise UsageError(f"cannot encode with {codec!r}: {exc}") from exc
        stream.width, stream.height = 64, 64
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.codec_context.time_base = Fraction(1, 25)
        _open_encoder(stream.codec_context, codec)
    finally:
        with contextlib.suppress(av.FFmpegError, ValueError):
            trial.close()


def _open_encoder(cc, codec: str, catch_logs: bool = True, options: dict | None = None) -> None:
    """Open the encoder now; a refused option becomes one UsageError line with FFmpeg's reason
    (its log lines are caught, not printed).

    catch_logs=False where other threads may be decoding (a sink opened mid-run): catching
    FFmpeg's lines switches PyAV's global log level and back, and a decoder logging meanwhile ran
    PyAV's callback with no level set (a TypeError traceback on stderr, seen on damaged inputs).
    check_encoder, which runs before anything is decoded, catches them; here the error's own text
    is the reason, with the options it was given."""
    if not catch_logs:
        try:
            cc.open()
        except (ValueError, av.FFmpegError) as exc:
            given = ", ".join(f"{key} {value}" for key, value in (options or {}).items())
            reason = getattr(exc, "strerror", None) or exc
            raise UsageError(f"the {codec} encoder refused its options ({given}): {reason}") from None
        return
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            try:
                cc.open()
            except (ValueError, av.FFmpegError) as exc:
                reasons = [message.strip() for _level, _name, message in logs if message.strip()]
                reason = reasons[-1] if reasons else getattr(exc, "strerror", None) or str(exc)
                raise UsageError(f"the {codec} encoder refused its options: {reason}") from None
    finally:
        av.logging.set_level(level)


def _encoder_options(codec: str, crf: int | None, preset: str | None) -> dict[str, str]:
    fast = preset is None or preset in _FAST_PRESETS
    opts: dict[str, str] = {}
    if codec in ("libx264", "libx265"):
        if crf is not None:
            opts["crf"] = str(crf)
        if preset:
            opts["preset"] = preset
    elif codec in ("libvpx", "libvpx-vp9"):
        if crf is not None:
            opts.update(crf=str(crf), b="0")  # b=0: pure constant quality
        opts.update(deadline="realtime" if fast else "good", **{"cpu-used": "8" if fast else "2", "row-mt": "1"})
    elif codec == "libsvtav1":
        if crf is not None:
            opts["crf"] = str(crf)
        opts["preset"] = "10" if fast else "6"
    elif codec in _QSCALE_CODECS and crf is not None:
        # Fixed quantizer instead of the 200 kb/s default; crf 23 -> q 3 (2 best .. 31 worst).
        q = str(max(2, min(31, round(crf / 8))))
        opts.update(qmin=q, qmax=q)
    return opts


def _rescale(ticks: int, src: Fraction, dst: Fraction) -> int:
    """ticks in `src` time base -> nearest tick in `dst` (exact when src == dst)."""
    if src == dst:
        return int(ticks)
    return round(Fraction(ticks) * src / dst)
