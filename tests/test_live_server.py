"""The live browser view over real loopback sockets: addresses, one encode per frame, newest frame
to every client, and the three endpoints."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time

import cv2
import numpy as np
import pytest

from streamcam.apps.live import LiveStats
from streamcam.apps.live.server import BOUNDARY, BrowserView, LiveServer, parse_address
from streamcam.core.errors import UsageError


def test_parse_address():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    assert parse_address("[::1]:0") == ("::1", 0)
    assert parse_address(":7000") == ("127.0.0.1", 7000)
    for bad in ("", "host:", "127.0.0.1:http", "70000"):
        with pytest.raises(UsageError, match="--serve"):
            parse_address(bad)


def test_it_binds_to_loopback_by_default_and_a_taken_port_is_one_error():
    with LiveServer(LiveStats(), port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        with pytest.raises(UsageError, match=r"cannot serve on 127\.0\.0\.1"):
            LiveServer(LiveStats(), port=port)


_NOISE = np.random.default_rng(0).integers(0, 256, (360, 640, 3), dtype=np.uint8)


def _picture(value: int) -> np.ndarray:
    """The frame's number as the grey level of the top band (a multiple of 5: JPEG is lossy), over
    noise that makes each JPEG large (~150 KB, like a real 960x540 overlay), so socket buffers fill."""
    rgb = _NOISE.copy()
    rgb[:40] = value
    return rgb


class StreamClient:
    """Reads /stream.mjpg parts on a real connection, optionally slowly; records each part's value."""

    def __init__(self, url: str, delay_s: float = 0.0):
        host, port = url.split("//")[1].strip("/").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        if delay_s:  # a slow client: a small receive window, like a slow link, so it cannot hoard frames
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.settimeout(10)
            sock.connect((host, int(port)))
            self.conn.sock = sock
        self.conn.request("GET", "/stream.mjpg")
        self.response = self.conn.getresponse()
        self.delay_s, self.values = delay_s, []

    def read_part(self) -> np.ndarray:
        line = self.response.readline()
        while line.strip() != f"--{BOUNDARY}".encode():
            line = self.response.readline()
            assert line, "the stream ended"
        headers = {}
        while line := self.response.readline().strip():
            key, _, value = line.decode().partition(":")
            headers[key.lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        data = self.response.read(int(headers["content-length"]))
        picture = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert picture is not None, "a part is not a JPEG"
        self.values.append(5 * round(float(picture[5:35].mean()) / 5))
        return picture

    def close(self):
        self.conn.close()


def _wait(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def test_many_clients_cost_one_encode_per_frame_and_a_slow_client_skips_frames():
    stats = LiveStats()
    with LiveServer(stats, port=0) as server:
        view, broadcast = BrowserView(server), server.broadcast
        view.show(_picture(5))
        assert broadcast.encodes == 0  # nobody watching: nothing encoded
        clients = [StreamClient(server.url) for _ in range(4)]
        assert _wait(lambda: broadcast.clients == 4)
        for client in clients:  # a new client gets the newest picture at once
            client.read_part()
            assert client.values == [5]
        assert broadcast.encodes == 1  # one encode, shared by the four clients
        slow = StreamClient(server.url, delay_s=0.2)
        assert _wait(lambda: broadcast.clients == 5)
        slow.read_part()

        # 40 pictures at 100 per second. Fast clients read as they come; the slow one reads a part
        # every 0.2 s, so it must skip to the newest each time instead of queueing all 40.
        def fast_reader(client, stop):
            while not stop.is_set() and client.values[-1] < 205:
                client.read_part()

        stop = threading.Event()
        readers = [threading.Thread(target=fast_reader, args=(c, stop), daemon=True) for c in clients]
        for t in readers:
            t.start()
        for n in range(40):
            view.show(_picture(10 + 5 * n))  # values 10 .. 205
            time.sleep(0.01)
            if n % 20 == 0:
                time.sleep(slow.delay_s)
                slow.read_part()
        time.sleep(slow.delay_s)
        for _ in range(41):  # now it reads as fast as it can: what reaches it is what was kept for it
            if slow.read_part() is not None and slow.values[-1] == 205:
                break
        assert _wait(lambda: all(c.values[-1] == 205 for c in clients), 5), [c.values[-1] for c in clients]
        stop.set()
        assert broadcast.encodes <= 41  # at most once per picture, whatever the number of clients
        # The slow client ends on the newest picture, having been sent only a few of the 40 (the
        # ones its socket buffers held), not the whole backlog.
        assert slow.values[-1] == 205 and len(slow.values) <= 12, slow.values
        assert all(b > a for c in [*clients, slow] for a, b in zip(c.values, c.values[1:]))  # never an older one
        for client in [*clients, slow]:
            client.close()
        assert _wait(lambda: broadcast.clients == 0), "disconnected clients are still counted"


def test_the_page_and_the_stats_endpoint():
    stats = LiveStats()
    with LiveServer(stats, port=0, title="streamcam live: <cam>") as server:
        host, port = server.url.split("//")[1].strip("/").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", "/")
        response = conn.getresponse()
        page = response.read().decode()
        assert response.status == 200 and "frame.jpg" in page and "stats.json" in page
        assert "streamcam live: &lt;cam>" in page  # the title is escaped
        assert "http://" not in page and "https://" not in page  # nothing loaded from elsewhere

        stats.start()
        stats.frame_received(dropped_before=False)
        stats.frame_shown(time.monotonic() - 0.05, [{"name": "tabby", "p": 0.5}], 1.0)
        conn.request("GET", "/stats.json")
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.getheader("Cache-Control") == "no-store"
        for key in ("frames_shown", "frames_dropped", "reconnects", "frame_age_ms_p50", "frame_age_ms_p95", "source_state", "fps"):
            assert key in body, key
        assert body["frames_shown"] == 1 and body["source_state"] == "playing" and body["top"][0]["name"] == "tabby"
        assert 50 <= body["frame_age_ms_p50"] < 1000
        conn.close()


def test_closing_the_server_ends_open_streams():
    with LiveServer(LiveStats(), port=0) as server:
        BrowserView(server).show(_picture(1))
        client = StreamClient(server.url)
        client.read_part()
    began = time.monotonic()

    def read_three_parts():
        for _ in range(3):
            client.read_part()

    with pytest.raises((OSError, http.client.HTTPException, AssertionError)):
        read_three_parts()
    assert time.monotonic() - began < 5
    with pytest.raises(OSError, match=r"refused|timed out"):
        socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1].strip("/"))), timeout=1)


def test_a_frame_comes_with_its_own_numbers_and_the_next_one_is_waited_for():
    """/frame.jpg?after=N: the first picture newer than N, with that picture's top classes in
    X-Frame-Info, so the page's table never shows another frame's numbers."""
    with LiveServer(LiveStats(), port=0) as server:
        port = int(server.url.rsplit(":", 1)[1].strip("/"))
        view = BrowserView(server)
        view.caption({"top": [{"name": "tabby", "p": 0.7}], "time_s": 0.04, "frame": 1})
        view.show(_NOISE)

        def get(after):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", f"/frame.jpg?after={after}")
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()

        status, headers, body = get(0)
        assert status == 200 and headers["x-frame-seq"] == "1"
        assert json.loads(headers["x-frame-info"])["top"] == [{"name": "tabby", "p": 0.7}]
        assert cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR).shape == _NOISE.shape

        def later():
            time.sleep(0.3)
            view.caption({"top": [{"name": "tiger_cat", "p": 0.6}], "time_s": 0.08, "frame": 2})
            view.show(_NOISE[::-1].copy())

        threading.Thread(target=later).start()
        status, headers, _ = get(1)  # waits for the next picture instead of repeating this one
        assert status == 200 and headers["x-frame-seq"] == "2"
        assert json.loads(headers["x-frame-info"]) == {"top": [{"name": "tiger_cat", "p": 0.6}], "time_s": 0.08, "frame": 2}
