"""Who may read the live view: a Host check against DNS rebinding, and a token off loopback.

DNS rebinding: a web page on evil.example re-points its own name to 127.0.0.1, and the browser
then lets it read this server as same-origin, but every such request says `Host: evil.example`.
So only the names the server is known by are answered: for a loopback bind, localhost and the
loopback addresses; for one named interface, that name and its address; for every interface
(0.0.0.0, ::), any IP address (an address cannot be rebound) and this machine's own names.

Off loopback, anyone on the network can reach the port, so a token is required by default: made
fresh for each run, shown once in the URL printed at start, and accepted as `?token=`, as an
`X-Streamcam-Token` header or as `Authorization: Bearer`. The page itself carries it on to the
stream and the stats it loads.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from urllib.parse import parse_qsl

TOKEN_HEADER = b"x-streamcam-token"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def new_token() -> str:
    return secrets.token_urlsafe(18)


def is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return address == "localhost"


def is_wildcard(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def host_of(header: str) -> str:
    """'Example.com:8080' -> 'example.com'; '[::1]:8080' -> '::1'."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostRule:
    """The Host names one server answers to (see the module's docstring)."""

    def __init__(self, named: str, bound_address: str):
        self.names = {host_of(named), host_of(bound_address)}
        self.any_ip = is_wildcard(bound_address)
        if is_loopback(bound_address) or self.any_ip:
            self.names |= LOOPBACK_NAMES
        if self.any_ip:
            for name in (socket.gethostname(), socket.getfqdn()):
                self.names |= {name.lower(), f"{name.lower()}.local"}
        self.names.discard("")

    def allows(self, header: str | None) -> bool:
        if not header:
            return False
        host = host_of(header)
        return host in self.names or (self.any_ip and _is_ip(host))


class AccessCheck:
    """ASGI middleware: 400 for a Host not in `hosts`, 401 without the token (when there is one)."""

    def __init__(self, app, hosts: HostRule, token: str | None):
        self.app, self.hosts, self.token = app, hosts, token

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if not self.hosts.allows(headers.get(b"host", b"").decode("latin-1")):
            return await _refuse(send, 400, "unknown Host header (this server answers only to the names it was started with)")
        if self.token is not None and not self._has_token(scope, headers):
            return await _refuse(send, 401, "a token is required: open the URL streamcam printed at start")
        return await self.app(scope, receive, send)

    def _has_token(self, scope, headers: dict) -> bool:
        offered = [value for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")) if key == "token"]
        offered.append(headers.get(TOKEN_HEADER, b"").decode("latin-1"))
        scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer":
            offered.append(value.strip())
        expected = self.token.encode()
        return any(hmac.compare_digest(candidate.encode(), expected) for candidate in offered if candidate)


async def _refuse(send, status: int, text: str) -> None:
    body = (text + "\n").encode()
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
