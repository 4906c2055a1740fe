"""Live video streams served on 127.0.0.1 by a child process, for tests of network inputs.

MjpegSource: HTTP multipart JPEG from the ffmpeg binary in the imageio-ffmpeg wheel.
RtspSource: RTSP (RTP/H.264, played over TCP) from the pure-Python `rtsp` package's server.

Both are context managers with the same interface: `url`, `start()` (returns once the port
listens), `stop()`, `pause()` / `resume()` (SIGSTOP / SIGCONT of the server: the connection stays
open but goes silent, like a stalled camera), `restart()` (a new server on the SAME port and URL)
and `wait_listening(timeout)`. POSIX only (signals), and Linux only for wait_listening.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import tempfile
import time

import imageio_ffmpeg

STOP_TIMEOUT_S = 5.0


def free_port() -> int:
    """A loopback TCP port that is free now (another process could take it before the server does)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


LISTEN, ESTABLISHED = "0A", "01"  # TCP states as /proc/net/tcp writes them


def is_listening(port: int, states: tuple[str, ...] = (LISTEN,)) -> bool:
    """Whether a socket on 127.0.0.1:port is in one of `states` (LISTEN by default), from /proc/net/tcp.

    Not by connecting: ffmpeg's `-listen 1` takes the first connection as its only client and
    exits when it closes, so a probe would use the stream up.
    """
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(cols[1] == local and cols[3] in states for cols in (line.split() for line in table.readlines()[1:]))


class _ServerProcess:
    """A child process that serves one stream on a fixed loopback port."""

    scheme = ""

    def __init__(self) -> None:
        self.port = free_port()
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - the child's stderr for its whole life, shown when it fails to start

    def _command(self) -> list[str]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self._log.seek(0)
        self._log.truncate()
        self._proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        self.wait_listening(timeout)

    def wait_listening(self, timeout: float = 10.0) -> None:
        """Return once the server listens, or already serves a client: a client that keeps retrying
        (a live session reconnecting) can take ffmpeg's only connection between two polls, and
        `-listen 1` then closes its listening socket, so LISTEN alone may never be seen."""
        deadline = time.monotonic() + timeout
        while not is_listening(self.port, (LISTEN, ESTABLISHED)):
            if not self.running:
                self._log.seek(0)
                err = self._log.read().decode(errors="replace").strip()
                raise RuntimeError(f"stream server for {self.url} is not running: {err or 'no output'}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"stream server for {self.url} not listening after {timeout:g}s")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()  # SIGKILL ends a SIGSTOPped process too
            self._proc.wait(STOP_TIMEOUT_S)
            self._proc = None

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    def pause(self) -> None:
        self._proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._proc.send_signal(signal.SIGCONT)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self._log.close()


class MjpegSource(_ServerProcess):
    """HTTP multipart JPEG (ffmpeg's mpjpeg muxer) of ffmpeg's moving `testsrc` pattern.

    ONE CLIENT PER START. `-listen 1` makes ffmpeg wait for a single connection before it reads
    its input; when that client disconnects ffmpeg fails the next write ("Connection reset by
    peer" or "Broken pipe"), exits with status 152 or 224 and its port refuses connections: call
    restart() before each new client. A bare TCP connect counts as the client too. A second
    client while the first is connected is refused. (`-listen 2`, FFmpeg's multi-client mode,
    does not work from the ffmpeg CLI: connections are accepted but never answered, and the
    client's open times out.)

    What PyAV 18 (FFmpeg 8) reports for it: format "mpjpeg", codec mjpeg, duration None,
    average_rate None and guessed_rate 25 (FFmpeg's default, whatever `rate` is), time_base 1/25
    and pts 0, 1, 2, ... per frame: so time_s counts frames at 25 fps, not the real rate.
    """

    scheme = "http"

    def __init__(self, size: tuple[int, int] = (640, 360), rate: int = 15) -> None:
        super().__init__()
        self.size, self.rate = size, rate

    def _command(self) -> list[str]:
        w, h = self.size
        return [
            imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
            "-re", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={self.rate}",
            "-f", "mpjpeg", "-listen", "1", self.url,
        ]  # fmt: skip


# Run in the child: rtsp.Source encodes with PyAV's libx264 and serves RTP/H.264 from an asyncio
# server that answers OPTIONS/DESCRIBE/SETUP/PLAY, several clients at once, UDP or TCP.
_RTSP_SERVER = """
import sys, threading
import numpy as np
import rtsp.source

port, w, h, rate = map(int, sys.argv[1:])

class Loopback(rtsp.source._RTSPServer):  # rtsp.Source listens on 0.0.0.0; tests stay on 127.0.0.1
    def __init__(self, host, port, sdp):
        super().__init__("127.0.0.1", port, sdp)

rtsp.source._RTSPServer = Loopback
frames = []  # one second of a white bar moving across a gray picture, looped
for i in range(rate):
    rgb = np.full((h, w, 3), 96, np.uint8)
    x = i * w // rate
    rgb[:, x : x + max(1, w // 16)] = 255
    frames.append(rgb)
rtsp.source.Source(f"rtsp://127.0.0.1:{port}/", fps=rate, size=(w, h), frame_buffer=frames)
threading.Event().wait()  # serve until killed
"""


class RtspSource(_ServerProcess):
    """RTSP of a moving bar, served by the `rtsp` package (pure Python, PyAV's libx264) in a child.

    Serves any number of clients, one after the other or at once: a client disconnecting ends
    only its session, so restart() is needed only after stop().

    What PyAV 18 (FFmpeg 8) reports for it, played over TCP: format "rtsp", codec h264, duration
    None, average_rate 15 (the real rate), time_base 1/90000 (RTP's clock) and pts from the RTP
    timestamps, 6000 apart at 15 fps, starting anywhere (0, 6000 and 84000 seen); the first
    frame's pts is sometimes None. Opening takes about 2 s (FFmpeg probes the stream).
    """

    scheme = "rtsp"

    def __init__(self, size: tuple[int, int] = (640, 360), rate: int = 15) -> None:
        super().__init__()
        self.size, self.rate = size, rate

    def _command(self) -> list[str]:
        w, h = self.size
        return [sys.executable, "-c", _RTSP_SERVER, str(self.port), str(w), str(h), str(self.rate)]
