"""Rate limits: a token bucket per token, and one per client address for requests
without a valid token (so that guessing tokens is slow).

The buckets are in process memory, so the limit is per API replica: behind a load
balancer with N replicas a token may reach N times the rate. A bucket holds `burst`
requests and refills at `per_second`; a request finding it empty is answered 429
with `Retry-After` (whole seconds). A bucket left idle until it is full again is the
same as a new one, so it is dropped; and at most `MAX_BUCKETS` are kept (the
longest idle go first), so memory stays bounded whatever the callers send.

Who has a valid token is charged to the token's bucket only, never to the address's:
people behind one proxy do not throttle each other. A failed token is charged to the
address's bucket; while that is empty, the address's requests are answered 429
before their token is looked up, so a guess costs a wait.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from escalator.adapters.token_store import TokenStore
from escalator.domain.errors import InvalidInput
from escalator.domain.tokens import TokenGrant, parse_token

RATE_ENV = "ESCALATOR_API_RATE"
MAX_BUCKETS = 100_000


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    def __str__(self) -> str:
        return f"{self.per_second:g} requests/s (burst {self.burst})"


DEFAULT_RATE = Rate(per_second=20, burst=40)


def parse_rate(text: str, source: str = RATE_ENV) -> Rate | None:
    """`20` (burst twice the rate), `20,40` (rate, burst) or `off` (None: no limit).
    Anything else is a one-line error naming `source`."""
    value = text.strip().lower()
    if value in ("off", "none", "0"):
        return None
    rate_text, _, burst_text = value.partition(",")
    try:
        per_second = float(rate_text)
        burst = int(burst_text) if burst_text.strip() else max(1, math.ceil(2 * per_second))
    except (ValueError, OverflowError):
        per_second, burst = -1.0, -1
    if not (math.isfinite(per_second) and per_second > 0 and 1 <= burst <= 1_000_000):
        raise InvalidInput(
            f"{source}: {text[:40]!r} is not a rate; use REQUESTS_PER_SECOND[,BURST] "
            "(e.g. 20,40) or off"
        )
    return Rate(per_second=per_second, burst=burst)


def rate_from_env(environ: Mapping[str, str]) -> Rate | None:
    text = environ.get(RATE_ENV)
    return DEFAULT_RATE if text is None or not text.strip() else parse_rate(text)


class RateLimited(Exception):
    """Answered 429 with `Retry-After: retry_after`."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Buckets:
    """Token buckets by key, thread-safe, with idle ones evicted."""

    def __init__(
        self,
        rate: Rate,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self.rate = rate
        self._clock = clock
        self._max = max_buckets
        self._full_after = rate.burst / rate.per_second  # seconds from empty to full
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # (level, at)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def _level(self, key: str, now: float) -> float:
        level, at = self._buckets.get(key, (float(self.rate.burst), now))
        return min(float(self.rate.burst), level + (now - at) * self.rate.per_second)

    def wait(self, key: str) -> float:
        """Seconds until `key` may make a request (0: now), without taking one."""
        with self._lock:
            level = self._level(key, self._clock())
        return 0.0 if level >= 1 else (1 - level) / self.rate.per_second

    def take(self, key: str) -> float:
        """Take one request from `key`'s bucket: 0 if there was one, else the seconds
        to wait (and nothing is taken)."""
        with self._lock:
            now = self._clock()
            level = self._level(key, now)
            if level < 1:
                return (1 - level) / self.rate.per_second
            self._buckets[key] = (level - 1, now)
            self._buckets.move_to_end(key)
            self._evict(now)
            return 0.0

    def _evict(self, now: float) -> None:
        # Least recently used first: drop those idle long enough to be full again.
        while self._buckets:
            key, (_, at) = next(iter(self._buckets.items()))
            if now - at < self._full_after and len(self._buckets) <= self._max:
                break
            del self._buckets[key]


class RateLimiter:
    """The API's limits: per token, and per address for requests without a valid one."""

    def __init__(self, rate: Rate, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.tokens = Buckets(rate, clock=clock)
        self.addresses = Buckets(rate, clock=clock)

    def charge_token(self, token_id: str) -> None:
        wait = self.tokens.take(token_id)
        if wait:
            raise RateLimited(self._message("per token", wait), _seconds(wait))

    def check_address(self, address: str) -> None:
        """Before a token is looked up: refused while the address's failures are over
        the rate."""
        wait = self.addresses.wait(address)
        if wait:
            raise RateLimited(self._message("per client without a valid token", wait),
                              _seconds(wait))  # fmt: skip

    def charge_failure(self, address: str) -> None:
        self.addresses.take(address)

    def _message(self, per: str, wait: float) -> str:
        return (
            f"rate limit: {self.rate.per_second:g} requests/s {per}; retry after {_seconds(wait)} s"
        )


def _seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


class Gate:
    """Who a bearer token says is asking, with the limits applied: the address is
    checked first, a valid token is charged to its own bucket, a failed one to the
    address's. Raises RateLimited."""

    def __init__(self, tokens: TokenStore, limiter: RateLimiter | None) -> None:
        self.tokens = tokens
        self.limiter = limiter

    async def grant(self, text: str | None, address: str) -> TokenGrant | None:
        limiter = self.limiter
        if limiter is not None:
            limiter.check_address(address)
        parsed = parse_token(text) if text else None
        grant = await asyncio.to_thread(self.tokens.grant_for, text) if parsed and text else None
        if limiter is not None:
            if grant is None:
                limiter.charge_failure(address)
            else:
                assert parsed is not None
                limiter.charge_token(parsed[0])
        return grant
