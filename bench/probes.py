"""Observation points in the bench process: when Marketo wrote, and how often the limiter touched DynamoDB.

Both sit where the calls arrive (the Marketo sandbox and moto's DynamoDB backend run in this process),
so they see every writer process alike and change nothing about the answers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from moto.dynamodb.models import DynamoDBBackend

from sandbox.marketo import MarketoSandbox

LIMITER_KEY_PREFIX = "LIMIT#"  # ml_connector.marketo.shared_limiter keys its items LIMIT#<munchkin>


class WriteClock:
    """Completion time and record count of every Marketo sync (createOrUpdate) call."""

    def __init__(self, marketo: MarketoSandbox) -> None:
        self.events: list[tuple[float, int]] = []
        self._lock = threading.Lock()
        original = marketo.stats.records

        def records(results: list[dict[str, Any]], api_name: str) -> None:
            original(results, api_name)
            with self._lock:
                self.events.append((time.monotonic(), len(results)))

        # An instance attribute: the sandbox's REST handlers call stats.records on this same object.
        marketo.stats.records = records  # type: ignore[method-assign]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def window(self) -> tuple[int, int, float]:
        """(calls, records, seconds from the first call's completion to the last one's)."""
        with self._lock:
            events = list(self.events)
        if not events:
            return 0, 0, 0.0
        return len(events), sum(n for _, n in events), events[-1][0] - events[0][0]

    def completions(self) -> list[float]:
        """Each call's completion, seconds after the first one's."""
        with self._lock:
            times = [t for t, _ in self.events]
        return [round(t - times[0], 4) for t in times] if times else []

    def rate(self) -> float:
        """Records per second between the first and last completion; the first call's records are not counted,
        since N calls span N-1 intervals."""
        with self._lock:
            events = list(self.events)
        if len(events) < 2:
            return 0.0
        seconds = events[-1][0] - events[0][0]
        return sum(n for _, n in events[1:]) / seconds if seconds > 0 else 0.0


class DynamoCounter:
    """Counts DynamoDB item calls at moto's backend, split into the shared limiter's and the rest."""

    _METHODS = ("get_item", "put_item", "delete_item", "update_item")

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._originals: dict[str, Callable[..., Any]] = {}

    def install(self) -> DynamoCounter:
        for name in self._METHODS:
            original = getattr(DynamoDBBackend, name)
            self._originals[name] = original
            setattr(DynamoDBBackend, name, self._counted(name, original))
        return self

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(DynamoDBBackend, name, original)
        self._originals.clear()

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.counts)

    def _counted(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        counter = self

        def counted(backend: Any, table_name: str, attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            kind = "limiter" if _partition_key(attrs).startswith(LIMITER_KEY_PREFIX) else "other"
            with counter._lock:
                counter.counts[f"{kind}:{name}"] += 1
                counter.counts[kind] += 1
            return original(backend, table_name, attrs, *args, **kwargs)

        return counted


def _partition_key(attrs: dict[str, Any]) -> str:
    value = attrs.get("pk")
    if isinstance(value, dict):
        return str(value.get("S", ""))
    return str(getattr(value, "value", "") or "")
