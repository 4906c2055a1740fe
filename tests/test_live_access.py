"""Who the live server answers, over real sockets: the Host check against DNS rebinding, and the
token (required off loopback) in the query, a header, or carried on by the page."""

from __future__ import annotations

import http.client
import re
import time

import pytest

from streamcam.apps.live import LiveStats
from streamcam.apps.live.access import HostRule, host_of
from streamcam.apps.live.server import BrowserView, LiveServer

from live_process import URL_WAIT_S, LiveProcess
from test_live_server import StreamClient, _picture
from videos import make_video


def _get(port: int, path: str, host: str | None = None, headers: dict | None = None) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", f"127.0.0.1:{port}" if host is None else host)
    for key, value in (headers or {}).items():
        conn.putheader(key, value)
    conn.endheaders()
    response = conn.getresponse()
    body = response.read().decode() if response.status != 200 or not path.startswith("/stream") else ""
    conn.close()
    return response.status, body


def _port(server: LiveServer) -> int:
    return int(server.url.split("//")[1].split("/")[0].rsplit(":", 1)[1])


def test_host_of():
    assert host_of("Example.COM:8080") == "example.com"
    assert host_of("[::1]:8080") == "::1"
    assert host_of("127.0.0.1") == "127.0.0.1"


def test_only_the_bound_names_are_answered_on_loopback():
    with LiveServer(LiveStats(), port=0) as server:
        port = _port(server)
        assert server.token is None and server.loopback
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert _get(port, "/stats.json", host)[0] == 200, host
        # A rebound name (evil.example now resolving to 127.0.0.1) and other addresses get nothing.
        for host in (f"evil.example:{port}", "127.0.0.1.evil.example", f"192.168.1.5:{port}", ""):
            for path in ("/", "/stats.json", "/stream.mjpg"):
                status, body = _get(port, path, host)
                assert status == 400 and "Host" in body, (host, path, status)


def test_a_token_is_needed_in_the_query_or_a_header_and_the_page_carries_it():
    with LiveServer(LiveStats(), port=0, token=True) as server:
        port, token = _port(server), server.token
        assert token and server.url.endswith(f"/?token={token}")
        for path in ("/", "/stats.json", "/stream.mjpg", "/?token=wrong", f"/?token={token[:-1]}"):
            status, body = _get(port, path)
            assert status == 401 and "token" in body, (path, status)
        assert _get(port, "/stats.json", headers={"X-Streamcam-Token": token})[0] == 200
        assert _get(port, "/stats.json", headers={"Authorization": f"Bearer {token}"})[0] == 200
        assert _get(port, "/stats.json", f"evil.example:{port}", {"X-Streamcam-Token": token})[0] == 400  # both checks apply
        status, page = _get(port, f"/?token={token}")
        assert status == 200
        assert f'const auth = "?token={token}"' in page and f'"stats.json?token={token}"' in page  # the frame and stats requests carry it
        assert _get(port, "/frame.jpg?after=0")[0] == 401
        BrowserView(server).show(_picture(5))
        viewer = StreamClient(f"http://127.0.0.1:{port}/")
        with pytest.raises(AssertionError):  # refused: the 401 body holds no frame
            viewer.read_part()
        viewer.close()


def test_off_loopback_a_token_is_required_by_default_and_no_auth_drops_it():
    with LiveServer(LiveStats(), host="0.0.0.0", port=0) as server:
        port = _port(server)
        assert not server.loopback and server.token and f"?token={server.token}" in server.url
        assert _get(port, "/stats.json")[0] == 401
        assert _get(port, f"/stats.json?token={server.token}")[0] == 200
        # Every interface: any address is a fine Host (an address cannot be rebound), a foreign name is not.
        assert _get(port, f"/stats.json?token={server.token}", f"10.1.2.3:{port}")[0] == 200
        assert _get(port, f"/stats.json?token={server.token}", f"evil.example:{port}")[0] == 400
    with LiveServer(LiveStats(), host="0.0.0.0", port=0, token=False) as server:
        assert server.token is None and _get(_port(server), "/stats.json")[0] == 200


def test_host_rule_for_one_named_interface():
    rule = HostRule("cam-box.lan", "192.168.1.5")
    assert rule.allows("cam-box.lan:8080") and rule.allows("192.168.1.5:8080")
    assert not rule.allows("10.0.0.1:8080") and not rule.allows("evil.example") and not rule.allows(None)


def _wait_stderr(live, pattern: str, seconds: float = URL_WAIT_S) -> re.Match:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = re.search(pattern, live.stderr)
        if found:
            return found
        if live.proc.poll() is not None:
            pytest.fail(f"streamcam live ended early ({live.proc.returncode}): {live.stderr}")
        time.sleep(0.1)
    pytest.fail(f"{pattern!r} never on stderr: {live.stderr}")


@pytest.mark.slow
def test_cli_off_loopback_warns_and_prints_the_token_once(tmp_path):
    clip = tmp_path / "clip.mp4"
    make_video(clip, 750, size=(96, 64), fps=25)  # 30 s at its own pace
    live = LiveProcess(str(clip), "--no-window", "--serve", "0.0.0.0:0", "--no-auth")
    try:  # the warning comes as the server binds, before the model loads
        _wait_stderr(live, r"warning: serving on 0\.0\.0\.0, not loopback: .* without a token \(--no-auth\)")
    finally:
        live.kill()
    live = LiveProcess(str(clip), "--no-window", "--serve", "0.0.0.0:0")
    try:
        _wait_stderr(live, r"warning: serving on 0\.0\.0\.0, not loopback: .* a token is required")
        found = _wait_stderr(live, r"live view: http://0\.0\.0\.0:(\d+)/\?token=([\w-]+)")
        port, token = int(found.group(1)), found.group(2)
        assert live.stderr.count(token) == 1  # printed once
        assert _get(port, "/stats.json")[0] == 401
        assert _get(port, f"/stats.json?token={token}")[0] == 200
        code, _, _ = live.interrupt()
        assert code == 130, live.stderr
    finally:
        live.kill()
