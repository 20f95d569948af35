"""Counters a test or the demo reads to see what the sandbox was asked and what it answered."""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any

from sandbox.marketo.schema import COMPANY

COUNTERS = ("sync_calls", "query_calls", "delete_calls", "records_deleted", "describe_calls",
            "records_created", "records_updated", "records_skipped",
            "leads_created", "leads_updated", "leads_skipped",
            "calls_total", "calls_counted", "token_requests", "token_in_url_refused")
LEADS = "leads"  # by_object name of the Lead object, as the client names the target
RECENT_BODIES = 1000  # body sizes kept for tests; bounded so a benchmark's many calls do not grow it


class Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._http_errors: Counter[str] = Counter()
        self._skipped: Counter[str] = Counter()
        self._by_object: dict[str, Counter[str]] = {}
        self._max_concurrency = 0
        self._body_bytes: deque[int] = deque(maxlen=RECENT_BODIES)

    def reset(self) -> None:
        with self._lock:
            for counter in (self._counts, self._errors, self._http_errors, self._skipped):
                counter.clear()
            self._by_object.clear()
            self._max_concurrency = 0
            self._body_bytes.clear()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def error(self, code: str) -> None:
        """A response-level code answered (``success: false``)."""
        with self._lock:
            self._errors[code] += 1

    def http_error(self, status: int) -> None:
        with self._lock:
            self._http_errors[str(status)] += 1

    def records(self, results: list[dict[str, Any]], api_name: str) -> None:
        """Tally a sync call's per-record results, in all and per object (companies, leads or a custom
        object); lead results are also counted as ``leads_<status>``."""
        with self._lock:
            # Named as the client names targets: "companies" or a custom object's API name.
            per_object = self._by_object.setdefault("companies" if api_name == COMPANY else api_name, Counter())
            per_object["sync_calls"] += 1
            for result in results:
                self._counts[f"records_{result['status']}"] += 1
                per_object[f"records_{result['status']}"] += 1
                if api_name == LEADS:
                    self._counts[f"leads_{result['status']}"] += 1
                if result["status"] == "skipped":
                    self._skipped[result["reasons"][0]["code"]] += 1

    def deleted(self, results: list[dict[str, Any]], object_name: str) -> None:
        """Tally a delete call's per-record results (``records_deleted``; skips by code), in all and per object."""
        with self._lock:
            per_object = self._by_object.setdefault(object_name, Counter())
            per_object["delete_calls"] += 1
            for result in results:
                if result["status"] == "deleted":
                    self._counts["records_deleted"] += 1
                    per_object["records_deleted"] += 1
                else:
                    self._skipped[result["reasons"][0]["code"]] += 1

    def body(self, size: int) -> None:
        """A REST call's request body arrived with ``size`` bytes (what the 413 limit is judged on)."""
        with self._lock:
            self._body_bytes.append(size)

    def concurrency(self, in_flight: int) -> None:
        with self._lock:
            self._max_concurrency = max(self._max_concurrency, in_flight)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data: dict[str, Any] = {name: self._counts[name] for name in COUNTERS}
            data["errors_by_code"] = dict(self._errors)
            data["http_errors_by_status"] = dict(self._http_errors)
            data["skipped_by_code"] = dict(self._skipped)
            data["max_concurrency_seen"] = self._max_concurrency
            data["body_bytes"] = list(self._body_bytes)  # REST calls with a body, oldest first
            data["by_object"] = {name: dict(counts) for name, counts in self._by_object.items()}
        return data
