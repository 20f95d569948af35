"""Forced answers for the next matching REST calls (after the token check):

- a Marketo response-level code (``"606"``, ``"611"``...): HTTP 200 ``success: false``, nothing runs;
- an HTTP status (``500``, ``502``, ``503``): that status with a short body, nothing runs;
- ``"timeout_after_apply"``: the call runs (a write is stored), then the connection drops unanswered.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

TIMEOUT_AFTER_APPLY = "timeout_after_apply"
Fault = str | int


@dataclass
class _Pending:
    kind: Fault
    remaining: int
    path_contains: str | None


class Faults:
    def __init__(self) -> None:
        self._pending: list[_Pending] = []
        self._lock = threading.Lock()

    def inject(self, code: Fault, times: int = 1, path_contains: str | None = None) -> None:
        _check(code)
        if times < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._pending.append(_Pending(code, times, path_contains))

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def take(self, path: str) -> Fault | None:
        """The fault for this call, if one is pending for its path (first injected, first used)."""
        with self._lock:
            for pending in self._pending:
                if pending.path_contains is None or pending.path_contains in path:
                    pending.remaining -= 1
                    if pending.remaining == 0:
                        self._pending.remove(pending)
                    return pending.kind
        return None


def _check(code: Fault) -> None:
    if isinstance(code, bool):
        raise TypeError("a fault is a Marketo code (str), an HTTP status (int) or 'timeout_after_apply'")
    if isinstance(code, int):
        if not 400 <= code <= 599:
            raise ValueError(f"HTTP fault must be a 4xx/5xx status, not {code}")
    elif code != TIMEOUT_AFTER_APPLY and not code.isdigit():
        raise ValueError(f"unknown fault {code!r}")
