"""Generate tiny test videos with PyAV whose pixels say which frame they are.

Every frame is a flat gray of brightness `level(i)` with a white block in its
top-left corner (so orientation is visible); `frame_number(rgb)` reads i back.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SHARED_VIDEOS = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "videos"
_BASE, _STEP = 16, 5  # 40 frames fit in 16..211, and 5 levels survive lossy codecs


def level(i: int) -> int:
    return _BASE + _STEP * (i % 40)


def frame_image(i: int, width: int, height: int) -> np.ndarray:
    img = np.full((height, width, 3), level(i), np.uint8)
    img[: max(1, height // 4), : max(1, width // 4)] = 255  # orientation marker
    return img


def frame_number(rgb: np.ndarray) -> int:
    """Index (mod 40) of a frame made by frame_image, from its background brightness."""
    return round((float(np.median(rgb)) - _BASE) / _STEP)


def marker_corner(rgb: np.ndarray) -> str:
    """Which corner holds the white marker: 'tl', 'tr', 'bl' or 'br'."""
    h, w = rgb.shape[:2]
    corners = {
        "tl": rgb[: h // 8, : w // 8],
        "tr": rgb[: h // 8, -(w // 8) :],
        "bl": rgb[-(h // 8) :, : w // 8],
        "br": rgb[-(h // 8) :, -(w // 8) :],
    }
    return max(corners, key=lambda k: corners[k].mean())


def make_video(
    path: Path | str,
    n_frames: int,
    size: tuple[int, int] = (64, 48),
    fps: int = 25,
    codec: str = "libx264",
    rotation: int | None = None,
    vfr_durations: list[float] | None = None,
    with_audio: bool = False,
    faststart: bool = False,
    audio_codec: str = "aac",
    gop: int | None = None,
    audio_first: bool = False,
) -> list[float]:
    """Write a video; returns the presentation time (s) of each frame.

    vfr_durations: per-frame durations in seconds (cycled), giving variable frame rate.
    rotation: counter-clockwise display rotation stored as the display matrix.
    faststart: put the mp4 index (moov) at the start instead of the end.
    audio_first: add the audio stream before the video one (audio is stream 0).
    """
    width, height = size
    time_base = Fraction(1, 90000) if vfr_durations else Fraction(1, fps)
    opts = {"movflags": "+faststart"} if faststart else {}
    times = _frame_times(n_frames, fps, vfr_durations)
    with av.open(str(path), "w", container_options=opts) as out:
        audio = out.add_stream(audio_codec, rate=48000, layout="mono") if with_audio and audio_first else None
        x264 = {"preset": "ultrafast", "crf": "18"} if codec == "libx264" else {}
        video = out.add_stream(codec, rate=fps, options=x264)
        video.width, video.height = width, height
        video.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        video.codec_context.time_base = time_base
        if gop:
            video.codec_context.gop_size = gop
        if rotation is not None:
            video.set_display_rotation(rotation)
        if with_audio and not audio_first:
            audio = out.add_stream(audio_codec, rate=48000, layout="mono")
        for i, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
            frame.pts, frame.time_base = round(t / time_base), time_base
            for packet in video.encode(frame):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if audio is not None:
            _write_tone(out, audio, seconds=times[-1] + 1 / fps)
    return times


def make_audio_only(path: Path | str, seconds: float = 1.0) -> None:
    with av.open(str(path), "w") as out:
        _write_tone(out, out.add_stream("aac", rate=48000, layout="mono"), seconds)


def _frame_times(n: int, fps: int, durations: list[float] | None) -> list[float]:
    if not durations:
        return [i / fps for i in range(n)]
    times, t = [], 0.0
    for i in range(n):
        times.append(round(t, 6))
        t += durations[i % len(durations)]
    return times


def _write_tone(out, stream, seconds: float) -> None:
    rate, chunk = 48000, 1024
    total = int(seconds * rate)
    for start in range(0, total, chunk):
        n = min(chunk, total - start)
        samples = (0.2 * np.sin(2 * np.pi * 440 * (start + np.arange(n)) / rate)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(samples[None, :], format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        for packet in stream.encode(frame):
            out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)


# -- damaged and unusual files ------------------------------------------------------------


def flip_header_bytes(data: bytes, seed: int, span: int = 4096, max_flips: int = 16) -> bytes:
    """Overwrite 1..max_flips seeded-random bytes among the first `span` with random values."""
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    n = int(rng.integers(1, max_flips + 1))
    for pos in rng.integers(0, min(span, len(buf)), n):
        buf[int(pos)] = int(rng.integers(0, 256))
    return bytes(buf)


def packet_spans(path: Path | str) -> list[tuple[int, int]]:
    """(byte offset, size) of each video packet, in demux order (PyAV's packet.pos)."""
    with av.open(str(path)) as c:
        return [(p.pos, p.size) for p in c.demux(video=0) if p.size and p.pos is not None and p.pos >= 0]


def corrupt_packets(src: Path | str, dst: Path | str, indices: list[int], seed: int = 0) -> None:
    """Copy src to dst with the payload of these video packets replaced by seeded garbage."""
    spans = packet_spans(src)
    data = bytearray(Path(src).read_bytes())
    rng = np.random.default_rng(seed)
    for k in indices:
        pos, size = spans[k]
        data[pos : pos + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    Path(dst).write_bytes(bytes(data))


def make_size_change_ts(path: Path | str, sizes: list[tuple[int, int]], frames_each: int, fps: int = 10) -> None:
    """An H.264 MPEG-TS file whose resolution changes: one segment per size, bytes concatenated.

    Timestamps continue across segments; frame i shows frame_image(i) at its segment's size.
    """
    import io

    chunks, i = [], 0
    for width, height in sizes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as out:
            video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "crf": "18"})
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            video.codec_context.time_base = Fraction(1, fps)
            for _ in range(frames_each):
                frame = av.VideoFrame.from_ndarray(frame_image(i, width, height), format="rgb24")
                frame.pts, frame.time_base = i, Fraction(1, fps)
                for packet in video.encode(frame):
                    out.mux(packet)
                i += 1
            for packet in video.encode(None):
                out.mux(packet)
        chunks.append(buf.getvalue())
    Path(path).write_bytes(b"".join(chunks))
