"""The baseline: the same mapped records written as a hand-written script with a common Marketo client would.

One record per ``POST /rest/v1/companies.json`` (createOrUpdate), a few threads, no knowledge of the
100 calls / 20 s or 10-concurrent limits; a call answered 606/615 is retried after sleeping one second.
It runs against its own Marketo sandbox with the same latency and Marketo's real instance limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from queue import Empty, Queue
from typing import Any

import requests

from bench.models import FULL_BUDGET, BaselineResult
from sandbox.marketo import MarketoSandbox

RETRY_CODES = {"606", "615"}
MAX_TRIES = 60


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls = self.retries = self.failed = 0


def run_baseline(records: list[dict[str, Any]], *, threads: int = 4,
                 latency: tuple[float, float] = (0.1, 0.3)) -> BaselineResult:
    with MarketoSandbox(munchkin_id="999-BAS-001", latency=latency, rate_limit=(100, 20.0),
                        max_concurrency=10) as marketo:
        token = _token(marketo)
        todo: Queue[dict[str, Any]] = Queue()
        for record in records:
            todo.put(record)
        tally = _Tally()
        started = time.monotonic()
        workers = [threading.Thread(target=_write_all, args=(marketo.url, token, todo, tally)) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.monotonic() - started
        errors = marketo.stats.snapshot()["errors_by_code"]
    return BaselineResult(records=len(records), threads=threads, calls=tally.calls, seconds=seconds,
                          records_per_second=(len(records) - tally.failed) / seconds, errors_606=errors.get("606", 0),
                          errors_615=errors.get("615", 0), retries=tally.retries, failed_records=tally.failed,
                          api_bound_records_per_second=FULL_BUDGET.api_bound_records_per_second)


def _token(marketo: MarketoSandbox) -> str:
    params = {"grant_type": "client_credentials", **marketo.credentials}
    response = requests.get(f"{marketo.url}/identity/oauth/token", params=params, timeout=10)
    response.raise_for_status()
    return str(response.json()["access_token"])  # kept in memory only, never printed


def _drain(todo: Queue[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    while True:
        try:
            yield todo.get_nowait()
        except Empty:
            return


def _write_all(url: str, token: str, todo: Queue[dict[str, Any]], tally: _Tally) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    for record in _drain(todo):
        if not _write_one(session, url, record, tally):
            with tally.lock:
                tally.failed += 1


def _write_one(session: requests.Session, url: str, record: dict[str, Any], tally: _Tally) -> bool:
    body = {"action": "createOrUpdate", "dedupeBy": "dedupeFields", "input": [record]}
    for attempt in range(MAX_TRIES):
        answer = session.post(f"{url}/rest/v1/companies.json", json=body, timeout=30).json()
        with tally.lock:
            tally.calls += 1
            tally.retries += attempt > 0
        if answer.get("success"):
            return True
        if {e.get("code") for e in answer.get("errors", [])} & RETRY_CODES:
            time.sleep(1.0)  # the usual fix in such scripts: wait a second and try again
            continue
        return False
    return False
