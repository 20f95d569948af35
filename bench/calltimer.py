"""Where a writer invocation's time goes: wall time inside AWS calls (by service) and HTTP calls (Marketo).

Installed in a writer worker process, it wraps botocore's one entry point for API calls and requests'
``Session.send``; a call's time is from the SDK call to its parsed answer, so it holds the emulator's
service time, the loopback round trip and the SDK's own (de)serialisation. What is left of an invocation
is our code (and the event source's receive/delete loop, timed apart since it runs outside the handler).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

# Upper bounds of the latency histogram, milliseconds.
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


def bucket(ms: float) -> str:
    for bound in BUCKETS_MS:
        if ms <= bound:
            return f"<={bound}ms"
    return f">{BUCKETS_MS[-1]}ms"


class CallTimer:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)  # "dynamodb:UpdateItem", "http:marketo" ...
        self.counts: Counter[str] = Counter()
        self.histograms: dict[str, Counter[str]] = defaultdict(Counter)  # service -> latency bucket -> calls
        self._lock = threading.Lock()
        self._installed = False

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self.seconds[key] += seconds
            self.counts[key] += 1
            self.histograms[key.split(":", 1)[0]][bucket(seconds * 1000)] += 1

    def install(self) -> CallTimer:
        if self._installed:
            return self
        import botocore.client
        import requests

        timer = self
        api_call: Callable[..., Any] = botocore.client.BaseClient._make_api_call
        send: Callable[..., Any] = requests.Session.send

        def timed_api_call(client: Any, operation: str, params: Any) -> Any:
            started = time.perf_counter()
            try:
                return api_call(client, operation, params)
            finally:
                timer.add(f"{client.meta.service_model.service_name}:{operation}", time.perf_counter() - started)

        def timed_send(session: Any, request: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return send(session, request, **kwargs)
            finally:
                timer.add(f"http:{_http_kind(str(request.url))}", time.perf_counter() - started)

        botocore.client.BaseClient._make_api_call = timed_api_call  # type: ignore[method-assign]
        requests.Session.send = timed_send  # type: ignore[method-assign,assignment]
        self._installed = True
        return self

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {"seconds": dict(self.seconds), "counts": dict(self.counts),
                    "histograms": {k: dict(v) for k, v in self.histograms.items()}}


def _http_kind(url: str) -> str:
    if "/identity/oauth/token" in url:
        return "marketo-token"
    if "/rest/" in url:
        return "marketo"
    return "other"


def merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Several processes' summaries added up."""
    seconds: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    histograms: dict[str, Counter[str]] = defaultdict(Counter)
    for summary in summaries:
        for key, value in summary.get("seconds", {}).items():
            seconds[key] += value
        counts.update(summary.get("counts", {}))
        for service, histogram in summary.get("histograms", {}).items():
            histograms[service].update(histogram)
    return {"seconds": dict(seconds), "counts": dict(counts), "histograms": {k: dict(v) for k, v in histograms.items()}}


def by_service(summary: dict[str, Any]) -> dict[str, tuple[int, float]]:
    """service -> (calls, seconds)."""
    out: dict[str, tuple[int, float]] = {}
    for key, value in summary.get("seconds", {}).items():
        service = key.split(":", 1)[0] if not key.startswith("http:") else key
        calls, seconds = out.get(service, (0, 0.0))
        out[service] = (calls + int(summary["counts"].get(key, 0)), seconds + float(value))
    return out
