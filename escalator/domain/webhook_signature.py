"""Signed webhooks: `X-Escalator-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`.

The MAC is over `f"{t}.".encode() + body` with the shared secret (ESCALATOR_WEBHOOK_SECRET),
as Stripe signs its webhooks: the receiver recomputes it over the raw body it read,
compares in constant time, and refuses a timestamp older than its tolerance (5 minutes),
so a captured request cannot be replayed later. docs/webhooks.md has the recipe.
Pure: the caller passes the time.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Escalator-Signature"
SCHEME = "v1"
TOLERANCE_SECONDS = 300


def signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of `{timestamp}.{body}` under `secret`."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The header value: `t=<timestamp>,v1=<signature>`."""
    return f"t={timestamp},{SCHEME}={signature(secret, timestamp, body)}"


def verify(
    secret: bytes, header: str, body: bytes, *, now: float, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """True if `header` signs `body` under `secret` and its time is within `tolerance`
    seconds of `now`. Several v1 entries may be present (during a secret rotation)."""
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
