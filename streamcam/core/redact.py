"""Credentials out of a source before it is shown or stored (pages, summaries, logs, manifests).

`rtsp://admin:secret@cam/main?token=abc` is shown as `rtsp://***@cam/main?token=***`: the whole
userinfo goes, and so does the value of every query parameter whose name looks secret. The URL is
cut the way FFmpeg cuts it (the authority ends at the first '/', '?' or '#'; the userinfo at the
last '@' inside it), so what FFmpeg would send as a password is what gets hidden. Paths and
camera numbers pass through unchanged.
"""

from __future__ import annotations

import re

MASK = "***"
# Parameter names that carry secrets in camera and cloud URLs: password, pwd, token,
# access_token, api_key, apikey, X-Amz-Signature, X-Amz-Credential, auth, sessionid, ...
_SECRET_NAME = re.compile(r"pass|pwd|secret|token|key|auth|sig|credential|session|cookie|ticket|sid$", re.IGNORECASE)


def redact_source(source: str | int) -> str:
    """`source` as text, safe to show: no userinfo, no secret-looking query values."""
    text = str(source)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    cut = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        authority = MASK + authority[authority.rindex("@") :]
    tail, hash_sign, fragment = tail.partition("#")
    path, question, query = tail.partition("?")
    if question:
        query = "&".join(_redact_param(p) for p in query.split("&"))
    return f"{scheme}{sep}{authority}{path}{question}{query}{hash_sign}{fragment}"


def _redact_param(param: str) -> str:
    name, eq, value = param.partition("=")
    return f"{name}={MASK}" if eq and value and _SECRET_NAME.search(name) else param
