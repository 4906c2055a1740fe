"""A loopback HTTP server that sends the first part of a file, then stops sending.

It behaves like a camera or a stream that goes quiet: the connection stays open and the
headers promise the whole file, but no more bytes come until the server is closed. Every
connection (a second one too) gets the same treatment, so a client that opens the URL twice
stalls twice. `stalled` is set when the first connection has sent its part. With `drip_every_s`,
it goes on sending one more byte every so often instead of nothing: a read never times out, yet
no frame ever completes.
"""

from __future__ import annotations

import http.server
import threading
from pathlib import Path


class StallingServer:
    def __init__(self, path: Path, stall_at: int, drip_every_s: float | None = None):
        self.data = Path(path).read_bytes()
        self.stall_at = min(stall_at, len(self.data))
        self.drip_every_s = drip_every_s
        self.stalled = threading.Event()
        self.connections = 0
        self._release = threading.Event()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                owner.connections += 1
                self.send_response(200)
                self.send_header("Content-Type", "video/mp4")
                self.send_header("Content-Length", str(len(owner.data)))
                self.end_headers()
                try:
                    self.wfile.write(owner.data[: owner.stall_at])
                    self.wfile.flush()
                except OSError:
                    return  # the client went away
                owner.stalled.set()
                sent = owner.stall_at
                while not owner._release.wait(owner.drip_every_s) and owner.drip_every_s and sent < len(owner.data):
                    try:  # one byte at a time
                        self.wfile.write(owner.data[sent : sent + 1])
                        self.wfile.flush()
                    except OSError:
                        return
                    sent += 1

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        name = "clip.mp4"
        return f"http://127.0.0.1:{self._server.server_address[1]}/{name}"

    def __enter__(self) -> StallingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()


def packet_offset(path: Path, n: int) -> int:
    """Byte position in `path` just before the n-th video packet (to stall after n-1 frames' data)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        positions = [p.pos for p in container.demux(stream) if p.pos is not None and p.size]
    positions.sort()
    return positions[min(n, len(positions) - 1)]
