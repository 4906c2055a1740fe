"""The live server's connection limits over real loopback sockets: the cap, the header deadline, a
viewer getting in past idle sockets, and refusals logged as one line per interval."""

from __future__ import annotations

import socket
import time

from streamcam.apps.live import LiveStats
from streamcam.apps.live.connections import EVICT_AFTER_S
from streamcam.apps.live.server import BrowserView, LiveServer

from test_live_server import StreamClient, _picture, _wait


def _port(server: LiveServer) -> int:
    return int(server.url.rsplit(":", 1)[1].strip("/"))


def _closed_by_server(sock: socket.socket, seconds: float) -> bool:
    """True once the server has closed `sock` (EOF or reset) within `seconds`."""
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass  # a response (400, say) before the close
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def test_idle_sockets_are_capped_and_a_viewer_still_gets_frames():
    lines: list[str] = []
    with LiveServer(LiveStats(), port=0, max_connections=8, log=lines.append) as server:
        BrowserView(server).show(_picture(5))
        idle = [socket.create_connection(("127.0.0.1", _port(server)), timeout=5) for _ in range(40)]
        try:
            assert _wait(lambda: server.guard.log.total >= 32), server.guard.log.total  # the rest refused at once
            assert len(server.guard.open) <= 8
            time.sleep(EVICT_AFTER_S + 0.2)  # the idle ones are now old enough to make room
            viewer = StreamClient(server.url)
            viewer.read_part()
            assert viewer.values == [5]
            assert len(server.guard.open) <= 8
            viewer.close()
        finally:
            for sock in idle:
                sock.close()
    assert 1 <= len(lines) <= 2, lines  # one line per interval, and the last at close
    assert "refused or closed" in lines[-1] and "over the cap of 8" in lines[-1]


def test_headers_must_be_complete_in_time_and_slow_ones_are_closed():
    lines: list[str] = []
    with LiveServer(LiveStats(), port=0, header_timeout_s=0.5, log=lines.append) as server:
        address = ("127.0.0.1", _port(server))
        silent = socket.create_connection(address, timeout=5)
        half = socket.create_connection(address, timeout=5)
        half.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never the empty line
        drip = socket.create_connection(address, timeout=5)
        for byte in b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 30:
            try:
                drip.send(bytes([byte]))
            except OSError:
                break  # closed by the server: the deadline passed
            time.sleep(0.05)
        for sock in (silent, half, drip):
            assert _closed_by_server(sock, 10), "a socket without complete headers stayed open"
            sock.close()
        # A request sent at once is answered, and the connection stays usable for the next.
        with socket.create_connection(address, timeout=5) as prompt:
            prompt.sendall(b"GET /stats.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert prompt.recv(4096).startswith(b"HTTP/1.1 200")
    assert "no complete request headers within 0.5 s: 3" in lines[-1], lines
