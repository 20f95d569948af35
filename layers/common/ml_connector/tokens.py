"""Bearer tokens cached per container (module-level, so warm invocations reuse them), shared by the
Visma and Marketo clients: one cache per API, keyed by whatever identifies a credential set."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

REFRESH_AHEAD_SECONDS = 60.0


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() after which the token is not used any more

    @classmethod
    def issued(cls, value: str, lifetime: float) -> Token:
        """A token used until shortly before it expires (a minute, or half its life if that is shorter)."""
        return cls(value, time.monotonic() + lifetime - min(REFRESH_AHEAD_SECONDS, lifetime / 2))

    def fresh(self) -> bool:
        return time.monotonic() < self.expires_at


class TokenCache:
    def __init__(self) -> None:
        self._tokens: dict[Hashable, Token] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fetch: Callable[[], Token]) -> str:
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None and cached.fresh():
            return cached.value
        token = fetch()
        with self._lock:
            self._tokens[key] = token
        return token.value

    def drop(self, key: Hashable) -> None:
        with self._lock:
            self._tokens.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()
