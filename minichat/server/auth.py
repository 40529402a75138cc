"""Who is asking, and may they ask now: Bearer API keys checked in constant time, and per-key rate limits.

    Authorization: Bearer mc-...      (RFC 6750; what OpenAI's client sends from its api_key)

`Authenticator.check(header)` hashes the presented key and compares the digest with *every* stored one using
`hmac.compare_digest`, without stopping at a match, so the time taken says nothing about which key (or how much of
one) matched. A missing header, a malformed one, an unknown key and a revoked key all give the same 401 answer.
The keys file is re-read when its modification time changes, so `minichat keys revoke` takes effect on a running
server at the next request.

`RateLimiter` is a token bucket per key: `rpm` tokens of capacity, refilled at rpm per minute; an empty bucket means
429 with `Retry-After` (whole seconds until the next token), which OpenAI's client honours when it retries.

What it leaves out: OAuth/JWT, per-user quotas on tokens rather than requests, limits shared across processes.
"""
from __future__ import annotations

import hmac
import math
import os
import threading
import time
from pathlib import Path

from minichat.server.keys import KeyRecord, digest, load
from minichat.server.openai_api import ApiError


def unauthorized(message: str = "Incorrect or missing API key: send it as 'Authorization: Bearer KEY' "
                                "(`minichat keys add` makes one).") -> ApiError:
    return ApiError(401, message, type="invalid_request_error", code="invalid_api_key",
                    headers={"WWW-Authenticate": 'Bearer realm="minichat"'})


class Authenticator:
    """Keys given directly (`records`) and/or read from a keys file (re-read when it changes)."""

    def __init__(self, records: list[KeyRecord] = (), keys_file: str | os.PathLike | None = None):
        self.fixed = list(records)
        self.keys_file = Path(keys_file) if keys_file else None
        self._from_file: list[KeyRecord] = []
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self._refresh()

    def _refresh(self) -> None:
        if self.keys_file is None:
            return
        try:
            mtime = self.keys_file.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        with self._lock:
            if mtime != self._mtime:
                self._from_file = load(self.keys_file) if mtime is not None else []
                self._mtime = mtime

    @property
    def records(self) -> list[KeyRecord]:
        return self.fixed + self._from_file

    def has_keys(self) -> bool:
        return any(not r.revoked for r in self.records)

    def check(self, header: str | None) -> KeyRecord:
        """The record of the key in an `Authorization: Bearer KEY` header, or ApiError(401)."""
        self._refresh()
        scheme, _, key = (header or "").partition(" ")
        presented = digest(key.strip()) if scheme.lower() == "bearer" and key.strip() else "0" * 64
        found = None
        for r in self.records:  # no early exit: every stored digest is compared
            if hmac.compare_digest(presented, r.sha256) and not r.revoked:
                found = r
        if found is None:
            raise unauthorized()
        return found


class RateLimiter:
    """A token bucket per key id: capacity rpm, refilled continuously at rpm / 60 per second."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, last refill time)
        self._lock = threading.Lock()

    def take(self, key: KeyRecord) -> None:
        """Spend one request of the key's budget, or raise ApiError(429) with Retry-After."""
        now, rate = self.clock(), key.rpm / 60.0
        with self._lock:
            tokens, last = self._buckets.get(key.id, (float(key.rpm), now))
            tokens = min(float(key.rpm), tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[key.id] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / rate))
                raise ApiError(429, f"Rate limit reached for key {key.id}: {key.rpm} requests per minute. Try again "
                                    f"in {wait} s.", type="requests", code="rate_limit_exceeded",
                               headers={"Retry-After": str(wait)})
            self._buckets[key.id] = (tokens - 1.0, now)
