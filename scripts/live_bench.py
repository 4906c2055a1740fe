"""How `streamcam live` keeps up with a real 15 fps stream: frame age, rate, clients, reconnects.

    python scripts/live_bench.py [--seconds 20] [--size 640x360] [--clients 1,4] [--restarts 3] [--runtimes keras,auto]

A live MJPEG stream (ffmpeg from the imageio-ffmpeg wheel, `pip install -e ".[test]"`) is served
on 127.0.0.1; a live session with the default model reads it and serves its browser view, and
N HTTP clients read /stream.mjpg as fast as they can. Per client count it prints the session's
frame age (capture to shown) p50/p95, the shown and received rates, and the JPEG encodes per shown
frame, for each runtime asked (keras: the Keras engine; auto: what the CLI picks, OpenVINO on a CPU
where it is installed). Then it restarts the source a few times and prints how long until frames flow again.
Figures are from this one run on this machine; nothing is asserted.
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import sys
import threading
import time

from benchlib import REPO

sys.path.insert(0, str(REPO / "tests"))  # the stream sources the tests use

from streamcam.apps.live import LiveStats, live
from streamcam.apps.live.server import BrowserView, LiveServer
from streamcam.explain.runtime import build_engine

from stream_sources import MjpegSource


class Client(threading.Thread):
    """Reads /stream.mjpg and counts the JPEG parts it gets."""

    def __init__(self, url: str, stop: threading.Event):
        super().__init__(daemon=True)
        host, port = url.split("//")[1].strip("/").split(":")
        self.address, self.stop, self.parts = (host, int(port)), stop, 0

    def run(self) -> None:
        conn = http.client.HTTPConnection(*self.address, timeout=10)
        conn.request("GET", "/stream.mjpg")
        response = conn.getresponse()
        try:
            while not self.stop.is_set():
                line = response.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    response.readline()
                    response.read(int(line.split(b":")[1]))
                    self.parts += 1
        finally:
            conn.close()


class Session:
    """live() in a thread with the browser view; stop() ends it and returns its figures."""

    def __init__(self, url: str, engine, port: int = 0):
        self.stats = LiveStats()
        self.server = LiveServer(self.stats, port=port)
        self._quit = threading.Event()
        self.figures = None

        class QuitWhenAsked:
            def show(_, rgb):
                return not self._quit.is_set()

            def close(_):
                pass

        def run():
            self.figures = live(
                url, engine, [BrowserView(self.server), QuitWhenAsked()], stats=self.stats, timeout=3.0
            )  # the default backoff, as the CLI uses

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def wait_frames(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.stats.frames_shown < n:
            if time.monotonic() > deadline:
                raise SystemExit(f"no {n} frames within {timeout} s")
            time.sleep(0.05)

    def stop(self) -> dict:
        self._quit.set()
        deadline = time.monotonic() + 15
        while self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.server.close()
        return self.figures


def measure_clients(engine, n_clients: int, seconds: float, size, rate: int) -> None:
    with MjpegSource(size=size, rate=rate) as source:
        session = Session(source.url, engine)
        session.wait_frames(10)
        stop = threading.Event()
        clients = [Client(session.server.url, stop) for _ in range(n_clients)]
        for c in clients:
            c.start()
        time.sleep(1.0)  # clients connected and streaming
        shown0, parts0, encodes0 = session.stats.frames_shown, [c.parts for c in clients], session.server.broadcast.encodes
        received0 = session.stats.frames_shown + session.stats.frames_dropped
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        snap = session.stats.snapshot()  # frame ages over the last 150 shown frames (10 s at 15 fps)
        shown = session.stats.frames_shown - shown0
        received = session.stats.frames_shown + session.stats.frames_dropped - received0
        encodes = session.server.broadcast.encodes - encodes0
        client_fps = [(c.parts - p0) / wall for c, p0 in zip(clients, parts0)]
        stop.set()
        session.stop()
    print(
        f"{n_clients} client(s): frame age p50 {snap['frame_age_ms_p50']:.1f} ms, p95 {snap['frame_age_ms_p95']:.1f} ms; "
        f"shown {shown / wall:.2f} fps of {received / wall:.2f} fps received; "
        f"each client got {min(client_fps):.2f}-{max(client_fps):.2f} fps; JPEG encodes per shown frame {encodes / max(shown, 1):.2f}"
    )


def measure_reconnects(engine, restarts: int, size, rate: int) -> None:
    with MjpegSource(size=size, rate=rate) as source:
        session = Session(source.url, engine)
        session.wait_frames(10)
        for n in range(restarts):
            source.stop()
            time.sleep(2.0)  # the session notices, and retries against a refused port meanwhile
            shown = session.stats.frames_shown
            restarted = time.monotonic()
            source.restart()
            while session.stats.frames_shown == shown and time.monotonic() - restarted < 60:
                time.sleep(0.005)
            print(
                f"restart {n + 1}: first frame shown {time.monotonic() - restarted:.2f} s after the source restarted "
                f"(reconnects so far: {session.stats.reconnects})"
            )
        session.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time per client count")
    parser.add_argument("--size", default="640x360", help="source frame size WxH")
    parser.add_argument("--rate", type=int, default=15, help="source frame rate")
    parser.add_argument("--clients", default="1,4", help="client counts to measure, comma-separated")
    parser.add_argument("--restarts", type=int, default=3, help="source restarts to time (with the last runtime)")
    parser.add_argument("--runtimes", default="keras,auto", help="runtimes to measure in turn, comma-separated (keras, auto, openvino)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"source {args.size} at {args.rate} fps (ffmpeg testsrc, MJPEG over HTTP on 127.0.0.1); model efficientnet-lite0 at 224x224"
    )
    for runtime in args.runtimes.split(","):
        engine = build_engine(runtime=runtime)
        info = engine.runtime_info
        print(f"runtime {runtime}: {info['name']}{' ' + info['precision'] if 'precision' in info else ''} ({info['reason']})")
        for n in (int(v) for v in args.clients.split(",")):
            measure_clients(engine, n, args.seconds, size, args.rate)
    if args.restarts:
        measure_reconnects(engine, args.restarts, size, args.rate)


if __name__ == "__main__":
    main()
