"""Marketo sandbox control: instance limits (rate, concurrency, daily quota), tokens, faults and counters."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

# Calls answering these codes do not count toward the rate limit or the daily quota (Marketo docs).
NOT_COUNTED = {"601", "602", "604", "605", "608", "611"}
MESSAGES = {
    "600": "Access token not specified", "601": "Access token invalid", "602": "Access token expired",
    "604": "Request timed out", "606": "Max rate limit '{calls}' exceeded with in '{window}' secs",
    "607": "Daily quota reached", "608": "API Temporarily Unavailable", "611": "System error",
    "615": "Concurrent access limit reached", "713": "Transient Error",
}


class Limits:
    """Per-instance limits: sliding window of calls, calls in flight, calls per day."""

    def __init__(self, rate_limit: tuple[int, float], max_concurrency: int, daily_quota: int) -> None:
        self.calls, self.window = rate_limit
        self.max_concurrency = max_concurrency
        self.daily_quota = daily_quota
        self.daily_used = 0
        self.in_flight = 0
        self.max_seen = 0
        self._starts: deque[float] = deque()
        self._lock = threading.Lock()

    def enter(self) -> str | None:
        """Admit a call (returns None) or name the limit it breaks (606 / 607 / 615)."""
        with self._lock:
            now = time.monotonic()
            while self._starts and now - self._starts[0] >= self.window:
                self._starts.popleft()
            if self.in_flight >= self.max_concurrency:
                return "615"
            if len(self._starts) >= self.calls:
                return "606"
            if self.daily_used >= self.daily_quota:
                return "607"
            self.in_flight += 1
            self.max_seen = max(self.max_seen, self.in_flight)
            self._starts.append(now)
            self.daily_used += 1
            return None

    def leave(self, code: str | None) -> None:
        with self._lock:
            self.in_flight -= 1
            if code in NOT_COUNTED:  # the call ran but does not count
                self.daily_used -= 1
                if self._starts:
                    self._starts.pop()


class Tokens:
    """Identity tokens: the current token is handed out again, with its remaining life, until it expires."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._issued: dict[str, float] = {}  # token -> expiry (monotonic)
        self._current: str | None = None
        self._lock = threading.Lock()

    def issue(self) -> tuple[str, int]:
        with self._lock:
            now = time.monotonic()
            if self._current is not None and self._issued.get(self._current, 0) > now:
                return self._current, int(self._issued[self._current] - now)
            token = f"{uuid.uuid4()}:ab"
            self._issued[token] = now + self.ttl
            self._current = token
            return token, int(self.ttl)

    def check(self, token: str | None) -> str | None:
        """None for a valid token, else the Marketo code (600 / 601 / 602)."""
        if not token:
            return "600"
        with self._lock:
            expiry = self._issued.get(token)
        if expiry is None:
            return "601"
        return "602" if expiry <= time.monotonic() else None

    def expire_all(self) -> None:
        with self._lock:
            self._issued = {t: 0.0 for t in self._issued}
            self._current = None

    def revoke_all(self) -> None:
        with self._lock:
            self._issued.clear()
            self._current = None


@dataclass
class _Fault:
    kind: str | int
    remaining: int
    path_contains: str | None


class Faults:
    """Forced answers for the next matching REST calls: a Marketo code, an HTTP status, or
    ``timeout_after_apply`` (the write happens, the answer never arrives)."""

    def __init__(self) -> None:
        self._queue: list[_Fault] = []
        self._lock = threading.Lock()

    def inject(self, kind: str | int, times: int = 1, path_contains: str | None = None) -> None:
        with self._lock:
            self._queue.append(_Fault(str(kind) if isinstance(kind, str) else kind, times, path_contains))

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()

    def take(self, path: str) -> str | int | None:
        with self._lock:
            for fault in self._queue:
                if fault.path_contains is None or fault.path_contains in path:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._queue.remove(fault)
                    return fault.kind
        return None


class Stats:
    def __init__(self, limits: Limits) -> None:
        self._limits = limits
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.counts: Counter[str] = Counter()
            self.errors_by_code: Counter[str] = Counter()
            self.skipped_by_code: Counter[str] = Counter()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def error(self, code: str) -> None:
        with self._lock:
            self.errors_by_code[code] += 1

    def skipped(self, code: str) -> None:
        with self._lock:
            self.skipped_by_code[code] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            names = ("sync_calls", "records_created", "records_updated", "records_skipped", "calls_total",
                     "calls_counted", "token_requests", "token_in_url_refused", "query_calls", "describe_calls")
            data: dict[str, Any] = {n: self.counts[n] for n in names}
            data["errors_by_code"] = dict(self.errors_by_code)
            data["skipped_by_code"] = dict(self.skipped_by_code)
        data["max_concurrency_seen"] = self._limits.max_seen
        return data
