"""`streamcam live --serve --record` flooded with idle and slow sockets, as a real process with a
low descriptor limit: the flood outnumbers the limit, yet a viewer gets frames, stderr stays a few
lines, and the recording and its summary are finished. The source is a real HTTP URL with a
password and a token in it, which appear nowhere: page, stderr, summary."""

from __future__ import annotations

import http.client
import json
import os
import selectors
import socket
import threading
import time

import pytest

from live_process import LiveProcess
from stall_server import StallingServer
from stream_sources import free_port, is_listening
from test_live_server import StreamClient
from videos import make_video

MAX_OPEN_FILES = 256  # the child's limit; the flood below holds more sockets than that
FLOOD_IDLE, FLOOD_SLOW = 300, 60
FLOOD_MAX_S = 180  # it stops by itself even if the test is stuck
_SLOW_REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "  # then 'a' after 'a', never the empty line


class Flood:
    """Keeps `idle` sockets that send nothing and `slow` ones that drip an endless header, a byte
    a second, open to a port; those the server closes are replaced every 2 s. Stops by itself."""

    def __init__(self, port: int, idle: int, slow: int, seconds: float = FLOOD_MAX_S):
        self.address, self.want = ("127.0.0.1", port), {"idle": idle, "slow": slow}
        self.deadline = time.monotonic() + seconds
        self.opened = self.closed_by_server = 0
        self._sent: dict[socket.socket, int] = {}  # bytes each slow socket has sent
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Flood:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        selector = selectors.DefaultSelector()  # epoll: more sockets than select() takes
        kinds: dict[socket.socket, str] = {}
        next_top_up = next_drip = 0.0
        try:
            while not self._stop.is_set() and time.monotonic() < self.deadline:
                now = time.monotonic()
                if now >= next_top_up:
                    next_top_up = now + 2.0
                    for kind, n in self.want.items():
                        for _ in range(n - sum(k == kind for k in kinds.values())):
                            sock = socket.socket()
                            sock.setblocking(False)
                            sock.connect_ex(self.address)  # in progress: no wait for a full backlog
                            kinds[sock] = kind
                            selector.register(sock, selectors.EVENT_READ)
                            self.opened += 1
                if now >= next_drip:
                    next_drip = now + 1.0
                    for sock in [s for s, k in kinds.items() if k == "slow"]:
                        sent = self._sent.get(sock, 0)
                        try:
                            self._sent[sock] = sent + sock.send(_SLOW_REQUEST[sent : sent + 1] or b"a")
                        except BlockingIOError:
                            pass
                        except OSError:
                            self._drop(sock, kinds, selector)
                for key, _ in selector.select(0.25):
                    try:
                        gone = not key.fileobj.recv(4096)
                    except BlockingIOError:
                        gone = False
                    except OSError:
                        gone = True
                    if gone:
                        self._drop(key.fileobj, kinds, selector)
        finally:
            for sock in list(kinds):
                selector.unregister(sock)
                sock.close()
            selector.close()

    def _drop(self, sock, kinds, selector) -> None:
        self.closed_by_server += 1
        selector.unregister(sock)
        del kinds[sock]
        self._sent.pop(sock, None)
        sock.close()


class DescriptorPeak:
    """The most descriptors a process held, sampled from /proc every 20 ms while the block runs."""

    def __init__(self, pid: int):
        self.folder, self.peak = f"/proc/{pid}/fd", 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, len(os.listdir(self.folder)))
            except OSError:  # the process has ended
                return

    def __enter__(self) -> DescriptorPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)


def _viewer(url: str, attempts: int = 20) -> StreamClient:
    """A stream client, retried the way a viewer reloads: during a flood a connect may be refused."""
    for _ in range(attempts):
        try:
            client = StreamClient(url)
            client.read_part()
            return client
        except (OSError, http.client.HTTPException, AssertionError):
            time.sleep(0.5)
    pytest.fail(f"no frame from {url} in {attempts} attempts")


@pytest.mark.slow
def test_a_flood_of_idle_and_slow_sockets_leaves_the_viewer_and_the_recording_working(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 200, size=(96, 64), fps=10, faststart=True)  # 20 s at its own pace
    out = tmp_path / "rec"
    port = free_port()
    with StallingServer(clip, clip.stat().st_size) as source:  # sends the whole file
        url = source.url.replace("http://", "http://admin:secret@") + "?token=abc"
        live = LiveProcess(url, "--no-window", "--serve", f"127.0.0.1:{port}", "--record", str(out), max_open_files=MAX_OPEN_FILES)
        try:
            deadline = time.monotonic() + 60
            while not is_listening(port) and time.monotonic() < deadline and live.proc.poll() is None:
                time.sleep(0.05)
            with DescriptorPeak(live.proc.pid) as descriptors, Flood(port, FLOOD_IDLE, FLOOD_SLOW) as flood:  # from before the model loads
                view_url = live.wait_for_url()
                viewer = _viewer(view_url)
                for _ in range(5):
                    viewer.read_part()
                viewer.close()
                page = ""  # the page, fetched the same retried way
                for _ in range(20):
                    try:
                        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                        conn.request("GET", "/")
                        page = conn.getresponse().read().decode()
                        conn.close()
                        break
                    except (OSError, http.client.HTTPException):
                        time.sleep(0.5)
                time.sleep(3)  # a few more seconds of flood while the recording runs
            code, stdout = live.finish(120)
        finally:
            live.kill()
    stderr = live.stderr
    assert code == 0, stderr
    # The flood was real (more sockets than the child may hold) and refused: by the server, or by
    # the kernel once the accept queue is full (those never reach the process).
    assert flood.opened > MAX_OPEN_FILES and flood.closed_by_server > FLOOD_SLOW, (flood.opened, flood.closed_by_server)
    # ... and the child's descriptors stayed well below its limit (at an accept batch of 128 they
    # reached it: accept() failed with EMFILE, and so could any file the recording opened then).
    assert descriptors.peak < MAX_OPEN_FILES * 3 // 4, descriptors.peak
    assert "Traceback" not in stderr and "Too many open files" not in stderr, stderr
    assert len(stderr) < 4000, f"{len(stderr)} characters on stderr"
    assert "refused or closed" in stderr  # said, once per interval
    assert "<title>streamcam live: http://***@127.0.0.1:" in page and "token=***" in page
    (summary_file,) = out.glob("clip-*.summary.json")  # a recording's names carry its start time
    summary = json.loads(summary_file.read_text())
    assert summary["status"] == "complete" and summary["frames_analysed"] >= 5
    for text in (page, stderr, stdout, summary_file.read_text()):
        assert "secret" not in text and "token=abc" not in text
