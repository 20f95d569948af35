"""Switchable faults and paging hazards for ERP calls; thread-safe, each optionally limited to paths
containing a substring.

One-shot faults (failures, throttles, delays) are consumed by the next matching calls in the order
they were armed; hazards (edits or inserts while a client pages, duplicated rows) stay on until
switched off or ``clear()``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from sandbox.http import Response
from sandbox.visma.errors import SHAPES, Shape, error_response, message_body


@dataclass
class _Armed:
    remaining: int
    path_contains: str | None

    def applies(self, path: str) -> bool:
        return self.remaining > 0 and (self.path_contains is None or self.path_contains in path)


@dataclass
class _Failure(_Armed):
    status: int
    shape: Shape

    def response(self) -> Response:
        return error_response(self.status, self.shape)


@dataclass
class _Throttle(_Armed):
    retry_after: int

    def response(self) -> Response:
        return Response(429, message_body(f"Rate limit is exceeded. Try again in {self.retry_after} seconds."),
                        {"Retry-After": str(self.retry_after)})


@dataclass
class _Delay(_Armed):
    seconds: float


@dataclass(frozen=True)
class PagingEdits:
    entity: str
    per_page: int
    path_contains: str | None


def _check_count(n: int) -> None:
    if n < 1:
        raise ValueError("n must be at least 1")


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._responses: list[_Failure | _Throttle] = []
        self._delays: list[_Delay] = []
        self._paging_edits: PagingEdits | None = None
        self._duplicates = False
        self._grow_total = False
        self._count_keeping_shifts: dict[str, int] = {}
        self._shuffled_ties: set[str] = set()

    # -- switches ---------------------------------------------------------------------------------
    def fail_next(self, n: int = 1, status: int = 500, shape: Shape = "message",
                  path_contains: str | None = None) -> None:
        """The next ``n`` ERP calls answer ``status`` with a body in ``shape`` (message, ipp or text)."""
        _check_count(n)
        if shape not in SHAPES:
            raise ValueError(f"shape must be one of {SHAPES}")
        with self._lock:
            self._responses.append(_Failure(n, path_contains, status, shape))

    def throttle_next(self, n: int = 1, retry_after: int = 1, path_contains: str | None = None) -> None:
        """The next ``n`` ERP calls answer 429 with ``Retry-After: retry_after``."""
        _check_count(n)
        with self._lock:
            self._responses.append(_Throttle(n, path_contains, int(retry_after)))

    def delay_next(self, n: int, seconds: float, path_contains: str | None = None) -> None:
        """The next ``n`` ERP calls sleep ``seconds`` before answering (client timeouts)."""
        _check_count(n)
        with self._lock:
            self._delays.append(_Delay(n, path_contains, float(seconds)))

    def edit_during_paging(self, entity: str, per_page: int = 1, path_contains: str | None = None) -> None:
        """After each page of ``entity``'s list, edit ``per_page`` records outside the request's filter
        window, so they enter it and shift later rows across page boundaries."""
        with self._lock:
            self._paging_edits = PagingEdits(entity, per_page, path_contains)

    def stop_editing(self) -> None:
        with self._lock:
            self._paging_edits = None

    def duplicate_across_pages(self, enabled: bool = True) -> None:
        """Page k+1 starts with the last record of page k again (one extra row; nothing is skipped)."""
        with self._lock:
            self._duplicates = enabled

    def change_total_mid_poll(self, enabled: bool = True) -> None:
        """After page 1 of a customer/supplier list, insert a record in the window (totalCount grows)."""
        with self._lock:
            self._grow_total = enabled

    def shift_keeping_count(self, entity: str, n: int = 1) -> None:
        """The next ``n`` reads of ``entity``'s list: after page 1, a row already served is deleted and an old
        row past the page boundary is edited into the window, so ``totalCount`` stays while the first row
        of page 2 moves onto page 1 and is never served."""
        _check_count(n)
        with self._lock:
            self._count_keeping_shifts[entity] = self._count_keeping_shifts.get(entity, 0) + n

    def shuffle_ties(self, entity: str, enabled: bool = True) -> None:
        """``entity``'s list comes ordered by ``lastModifiedDateTime``, rows sharing one in a random order drawn
        anew for every request (the reference leaves list order unconfirmed): offset pages across such ties
        overlap and skip rows although nothing changed."""
        with self._lock:
            (self._shuffled_ties.add if enabled else self._shuffled_ties.discard)(entity)

    def shuffles_ties(self, entity: str) -> bool:
        with self._lock:
            return entity in self._shuffled_ties

    def wants_count_keeping_shift(self, entity: str) -> bool:
        with self._lock:
            return self._count_keeping_shifts.get(entity, 0) > 0

    def count_keeping_shift_done(self, entity: str) -> None:
        """One shift happened (a read of a single page, where none can, leaves the fault armed)."""
        with self._lock:
            self._count_keeping_shifts[entity] -= 1

    def clear(self) -> None:
        with self._lock:
            self._count_keeping_shifts.clear()
            self._shuffled_ties.clear()
            self._responses.clear()
            self._delays.clear()
            self._paging_edits = None
            self._duplicates = False
            self._grow_total = False

    # -- used by the server ---------------------------------------------------------------------------
    def take_delay(self, path: str) -> float | None:
        with self._lock:
            delay = next((d for d in self._delays if d.applies(path)), None)
            if delay is None:
                return None
            self._consume(self._delays, delay)
            return delay.seconds

    def take_response(self, path: str) -> Response | None:
        with self._lock:
            armed = next((r for r in self._responses if r.applies(path)), None)
            if armed is None:
                return None
            self._consume(self._responses, armed)
            return armed.response()

    def paging_edits(self, entity: str, path: str) -> int:
        """How many records to edit after serving a page of ``entity`` at ``path`` (0: none)."""
        with self._lock:
            plan = self._paging_edits
        if plan is None or plan.entity != entity:
            return 0
        return plan.per_page if plan.path_contains is None or plan.path_contains in path else 0

    @property
    def duplicates(self) -> bool:
        with self._lock:
            return self._duplicates

    @property
    def grow_total(self) -> bool:
        with self._lock:
            return self._grow_total

    @staticmethod
    def _consume(queue: list[Any], armed: _Armed) -> None:
        armed.remaining -= 1
        if armed.remaining <= 0:
            queue.remove(armed)
