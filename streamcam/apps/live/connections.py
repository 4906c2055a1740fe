"""Connection limits for the live server: a cap, a deadline for request headers, refusals counted.

Without them, a thousand idle TCP connections used up the process's file descriptors: viewers
timed out, the recording and the model could no longer open files, and asyncio wrote an
'accept() out of system resource' traceback per failed accept.

- At most `cap` connections are open at once. When a new one would pass the cap, the oldest
  connection that has not finished its request headers for a while is closed to make room (an
  idle or dripping socket, not a viewer); when there is none, the newcomer is closed at once.
  Either way its descriptor is freed right away, so the count stays far below the process limit.
- A request's headers must be complete within `header_timeout_s` of the connection (or of the
  previous request): a socket that sends nothing, or a byte at a time, is closed then. Once a
  response is done, uvicorn's own keep-alive timeout closes a connection that sends nothing more.
- What was refused or closed is counted and written as one line per `log_every_s`, never one
  line per connection; failed accepts are counted the same way instead of logged with a traceback.

Each connection is uvicorn's own HTTP protocol wrapped by a GuardedConnection: the wrapper sees
every byte that arrives, so it finds the end of the headers itself (an empty line) and needs
nothing from uvicorn but its protocol class.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from collections.abc import Callable

MAX_CONNECTIONS = 64  # a viewer uses two (the stream and the stats polls): ~30 viewers
# asyncio accepts up to `backlog` sockets in one loop turn before any of them reaches admit(), and
# a refused one frees its descriptor a turn later; so the descriptors in use can peak near
# cap + 2 x batch. At 128 a flood pushed a 256-descriptor process into EMFILE; at 32 its sampled
# peak was 118 (tests/test_live_flood.py).
ACCEPT_BATCH = 32
HEADER_TIMEOUT_S = 10.0  # generous for a slow link; an attacker's socket is gone after this
EVICT_AFTER_S = 0.5  # a connection still without headers after this may make room; a prompt viewer never does
LOG_EVERY_S = 10.0
_HEADERS_END = (b"\n\r\n", b"\n\n")  # the empty line after the headers (bare LF too, as h11 allows)


def write_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class RefusalLog:
    """Counts refusals by reason; `flush` writes one line for them all (none if nothing happened)."""

    def __init__(self, log: Callable[[str], None] = write_stderr):
        self._log = log
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._since = time.monotonic()
        self.total = 0

    def add(self, reason: str) -> None:
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1
            self.total += 1

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, {}
            since, self._since = self._since, time.monotonic()
        if counts:
            n = sum(counts.values())
            reasons = ", ".join(f"{reason}: {k}" for reason, k in sorted(counts.items(), key=lambda kv: -kv[1]))
            self._log(f"live view: refused or closed {n} connection(s) in the last {time.monotonic() - since:.0f} s ({reasons})")


class ConnectionGuard:
    """The shared state of every connection of one server (used from its event loop only)."""

    def __init__(self, cap: int = MAX_CONNECTIONS, header_timeout_s: float = HEADER_TIMEOUT_S, log: RefusalLog | None = None):
        if cap < 1:
            raise ValueError("the connection cap must be at least 1")
        self.cap, self.header_timeout_s = cap, header_timeout_s
        self.log = log or RefusalLog()
        self.open: dict[GuardedConnection, None] = {}  # insertion-ordered: oldest first
        self.waiting: dict[GuardedConnection, float] = {}  # connections without complete headers -> since when

    def protocol_factory(self, inner_factory: Callable[..., asyncio.Protocol]) -> Callable[..., asyncio.Protocol]:
        """What uvicorn's Config(http=...) takes: builds uvicorn's protocol and wraps it."""

        def make(**kwargs) -> asyncio.Protocol:
            return GuardedConnection(self, inner_factory(**kwargs))

        return make

    def admit(self, connection: GuardedConnection) -> bool:
        """Room for one more? Makes room by closing an old header-less connection if it can."""
        if len(self.open) >= self.cap:
            now = time.monotonic()
            oldest = next(iter(self.waiting.items()), None)
            if oldest is None or now - oldest[1] < EVICT_AFTER_S:
                self.log.add(f"over the cap of {self.cap}")
                return False
            oldest[0].drop(f"no request headers, closed for a newer connection (cap {self.cap})")
        self.open[connection] = None
        return True

    def loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's error handler: failed accepts are counted, the rest go to the default handler."""
        exc = context.get("exception")
        if "accept" in str(context.get("message", "")) and isinstance(exc, OSError):
            self.log.add(f"accept failed: {exc.strerror or exc}")
            return
        loop.default_exception_handler(context)


class GuardedConnection(asyncio.Protocol):
    """uvicorn's HTTP protocol for one connection, behind the cap and the header deadline."""

    def __init__(self, guard: ConnectionGuard, inner: asyncio.Protocol):
        self.guard, self.inner = guard, inner
        self.transport: asyncio.Transport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, so an empty line split across reads is found

    def connection_made(self, transport) -> None:
        self.transport = transport
        if not self.guard.admit(self):
            transport.abort()  # never handed to uvicorn: connection_lost will not reach it either
            return
        self._await_headers()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        seen = self._tail + data
        ends = [seen.rfind(end) + len(end) for end in _HEADERS_END if end in seen]
        if ends:  # a request's headers are complete; any bytes after them begin the next request
            self._headers_done()
            if max(ends) < len(seen):
                self._await_headers()
        self._tail = seen[-2:]
        self.inner.data_received(data)

    def eof_received(self):
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def connection_lost(self, exc) -> None:
        self._headers_done()
        if self in self.guard.open:  # it was admitted, so uvicorn knows it
            del self.guard.open[self]
            self.inner.connection_lost(exc)

    def drop(self, reason: str) -> None:
        self.guard.log.add(reason)
        self._headers_done()
        if self.transport is not None:
            self.transport.abort()  # the descriptor is freed now, not after a FIN handshake

    def _await_headers(self) -> None:
        if self._deadline is None:
            self.guard.waiting[self] = time.monotonic()
            loop = asyncio.get_running_loop()
            timeout = self.guard.header_timeout_s
            self._deadline = loop.call_later(timeout, self.drop, f"no complete request headers within {timeout:g} s")

    def _headers_done(self) -> None:
        self.guard.waiting.pop(self, None)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
