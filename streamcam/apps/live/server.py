"""The browser view of a live session: a page, an MJPEG stream of the overlay, and the stats.

    /             the page: the stream, the current top classes and the stats (polled)
    /stream.mjpg  multipart/x-mixed-replace JPEG frames of the overlay
    /stats.json   LiveStats.snapshot()

Starlette and uvicorn serve it from one background thread with its own event loop. Each shown
frame is JPEG-encoded once, whatever the number of clients (and not at all with none), and every
client is sent the newest frame when it is ready for one: a slow client skips frames instead of
building a queue. It binds to 127.0.0.1 unless another interface is named.

Every request passes the access check (access.py: the Host header, and a token when bound off
loopback), and every connection the limits (connections.py: a cap, a deadline for headers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import threading
import time
from importlib import resources

import cv2
import numpy as np

from streamcam.core.errors import UsageError

from .access import AccessCheck, HostRule, is_loopback, new_token
from .connections import ACCEPT_BATCH, HEADER_TIMEOUT_S, LOG_EVERY_S, MAX_CONNECTIONS, ConnectionGuard, RefusalLog, write_stderr
from .stats import LiveStats

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
JPEG_QUALITY = 80
BOUNDARY = "streamcam-frame"
SEND_BUFFER_BYTES = 128 * 1024  # per connection (Linux doubles it): a few overlay JPEGs
_WAKE_EVERY_S = 1.0  # a waiting client re-checks for shutdown this often


def parse_address(text: str) -> tuple[str, int]:
    """'8080' -> ('127.0.0.1', 8080); 'HOST:PORT'; '[::1]:8080' for IPv6. Port 0 picks a free one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"--serve needs [HOST:]PORT with a port from 0 to 65535, got {text!r}")
    return host, int(port)


class FrameBroadcast:
    """The newest overlay picture, JPEG-encoded once per frame, handed to every stream client; with
    it, what the picture shows (its top classes and time), so the page's side table is the
    picture's own, not the numbers of whichever frame was newest when a timer fired."""

    def __init__(self, quality: int = JPEG_QUALITY):
        self._lock = threading.Lock()
        self._quality = quality
        self._picture: np.ndarray | None = None
        self._info: dict | None = None  # the newest picture's top classes and time
        self._seq = 0  # number of the newest picture
        self._jpeg: bytes | None = None
        self._jpeg_seq = 0  # which picture _jpeg holds
        self._jpeg_info: dict | None = None  # and that picture's info
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._closed = False
        self.encodes = 0  # JPEG encodes so far: one per frame, not one per client
        self.clients = 0

    def publish(self, rgb: np.ndarray, info: dict | None = None) -> None:
        """A new picture (RGB) and what it shows; encoded now if anyone watches, later only if someone asks."""
        with self._lock:
            self._picture, self._info, self._seq = rgb, info, self._seq + 1
            waiters = list(self._waiters)
        if waiters:
            self._jpeg_of(self._seq)
        for loop, wake in waiters:
            loop.call_soon_threadsafe(wake.set)

    def _jpeg_of(self, seq: int) -> bytes | None:
        """The JPEG of picture `seq` or newer, encoding it if nobody has yet."""
        return self._encoded(seq)[1]

    def _encoded(self, seq: int) -> tuple[int, bytes | None, dict | None]:
        """(its number, the JPEG, its info) of picture `seq` or newer, encoding it if nobody has yet."""
        with self._lock:
            if self._jpeg_seq >= seq or self._picture is None:
                return self._jpeg_seq, self._jpeg, self._jpeg_info
            picture, info, seq = self._picture, self._info, self._seq
        _ok, data = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        with self._lock:
            if seq > self._jpeg_seq:  # two encoders raced: keep the newer
                self._jpeg, self._jpeg_seq, self._jpeg_info = data.tobytes(), seq, info
                self.encodes += 1
            return self._jpeg_seq, self._jpeg, self._jpeg_info

    async def next_frame(self, after: int, timeout: float = 5.0) -> tuple[int, bytes | None, dict | None]:
        """(number, JPEG, info) of the first picture newer than `after`, waiting up to `timeout`
        seconds for one; (after, None, None) when none came (or the broadcast closed)."""
        wake = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.add(waiter)
        deadline = time.monotonic() + timeout
        try:
            while not self._closed:
                wake.clear()
                if self._seq > after:
                    seq, jpeg, info = self._encoded(self._seq)
                    if jpeg is not None:
                        return seq, jpeg, info
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), min(left, _WAKE_EVERY_S))
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return after, None, None

    async def parts(self):
        """multipart/x-mixed-replace parts for one client, newest frame each time, until close()."""
        wake = asyncio.Event()
        waiter = (asyncio.get_running_loop(), wake)
        with self._lock:
            self._waiters.add(waiter)
            self.clients += 1
        sent = 0
        try:
            while not self._closed:
                wake.clear()
                if self._seq != sent:
                    sent = self._seq
                    jpeg = self._jpeg_of(sent)
                    if jpeg:
                        head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                        yield head.encode() + jpeg + b"\r\n"
                    continue
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), _WAKE_EVERY_S)
        finally:
            with self._lock:
                self._waiters.discard(waiter)
                self.clients -= 1

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiters = list(self._waiters)
        for loop, wake in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is already closed
                loop.call_soon_threadsafe(wake.set)


def _page() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def fill_page(title: str, token: str | None) -> str:
    """The page with its title and the token its stream and stats requests carry, in one pass."""
    values = {"title": title.replace("&", "&amp;").replace("<", "&lt;"), "auth": "" if token is None else f"?token={token}"}
    return re.sub(r"\{\{(title|auth)\}\}", lambda m: values[m.group(1)], _page())


def make_app(broadcast: FrameBroadcast, stats: LiveStats, title: str, hosts: HostRule, token: str | None = None):
    """The routes behind the access check (`token`: None serves without one): the page, the MJPEG
    stream (for players), the stats, and /frame.jpg?after=N, the next picture with its own top
    classes in an X-Frame-Info header (JSON), which the page shows together."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
    from starlette.routing import Route

    page = fill_page(title, token)
    no_cache = {"Cache-Control": "no-store"}

    async def index(request):
        return HTMLResponse(page, headers={**no_cache, "Referrer-Policy": "no-referrer"})

    async def stream(request):
        return StreamingResponse(broadcast.parts(), media_type=f"multipart/x-mixed-replace; boundary={BOUNDARY}", headers=no_cache)

    async def stats_json(request):
        return JSONResponse(stats.snapshot(), headers=no_cache)

    async def frame(request):
        after = request.query_params.get("after", "0")
        seq, jpeg, info = await broadcast.next_frame(int(after) if after.isdigit() else 0)
        if jpeg is None:
            return Response(status_code=204, headers=no_cache)
        described = json.dumps(info or {}, ensure_ascii=True)  # ASCII: a header value
        return Response(jpeg, media_type="image/jpeg", headers={**no_cache, "X-Frame-Seq": str(seq), "X-Frame-Info": described})

    return Starlette(
        routes=[Route("/", index), Route("/stream.mjpg", stream), Route("/stats.json", stats_json), Route("/frame.jpg", frame)],
        middleware=[Middleware(AccessCheck, hosts=hosts, token=token)],
    )


def _listen(host: str, port: int) -> socket.socket:
    """Bind here, in the caller's thread, so 'address in use' is one clear error before anything runs."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. A bounded send buffer keeps a slow client's backlog
        # to a few frames (the kernel would otherwise queue megabytes: seconds of old frames),
        # so it gets the newest frame when it can take one.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        sock.bind(address)
        sock.listen(ACCEPT_BATCH)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


class LiveServer:
    """Serves the live view from a background thread; a context manager. `url` is where (with the
    token, when there is one: the only place it is shown).

    token: required off loopback unless False; True requires one on loopback too.
    max_connections, header_timeout_s: the limits in connections.py.
    log: where the server's own lines go (refused connections, once per interval).
    """

    def __init__(
        self,
        stats: LiveStats,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        title: str = "streamcam live",
        token: bool | None = None,
        max_connections: int = MAX_CONNECTIONS,
        header_timeout_s: float = HEADER_TIMEOUT_S,
        log=write_stderr,
    ):
        import uvicorn
        from uvicorn.protocols.http.h11_impl import H11Protocol

        self.broadcast = FrameBroadcast()
        self._socket = _listen(host, port)
        bound_host, bound_port = self._socket.getsockname()[:2]
        self.loopback = is_loopback(bound_host)
        self.token = new_token() if (token is None and not self.loopback) or token is True else None
        shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown_host}:{bound_port}/" + ("" if self.token is None else f"?token={self.token}")
        self.guard = ConnectionGuard(max_connections, header_timeout_s, RefusalLog(log))
        config = uvicorn.Config(
            make_app(self.broadcast, stats, title, HostRule(host, bound_host), self.token),
            http=self.guard.protocol_factory(H11Protocol),
            backlog=ACCEPT_BATCH,  # also the most connections one accept round takes in
            loop="asyncio",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="error",  # its warnings (a malformed request, say) would be a line per connection under a flood
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="streamcam-live-serve", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        # Off the main thread, uvicorn leaves the signal handlers alone: Ctrl-C stays the CLI's.
        asyncio.run(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.guard.loop_exception)
        flushing = loop.create_task(self._flush_refusals())
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            flushing.cancel()
            self.guard.log.flush()

    async def _flush_refusals(self) -> None:
        while True:
            await asyncio.sleep(LOG_EVERY_S)
            self.guard.log.flush()

    def close(self, timeout: float = 3.0) -> None:
        self.broadcast.close()  # streams end at their next frame...
        # ...except those blocked on a client that stopped reading: uvicorn cancels them after its
        # graceful second, which is expected here, not an error worth a traceback on stderr.
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self._server.should_exit = True
        deadline = time.monotonic() + timeout
        while self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        self._socket.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class BrowserView:
    """A Viewer (see session.py) that hands each picture to the server's broadcast."""

    def __init__(self, server: LiveServer):
        self.server = server
        self._info: dict | None = None

    def caption(self, info: dict) -> None:
        """What the next picture shows (its top classes and time), sent with it."""
        self._info = info

    def show(self, rgb: np.ndarray) -> bool:
        self.server.broadcast.publish(rgb, self._info)
        return True

    def close(self) -> None:
        pass  # the server stays up until the session closes it
