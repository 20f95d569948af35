"""Poller peak memory at a given number of Visma records, measured apart from everything else.

Two processes: one holds the services (moto, the Visma sandbox with N records, the Marketo sandbox) and
purges the sync queue as messages arrive, so neither the sandbox's records nor moto's queue are counted;
the other runs only the poller handler, once, and reports its peak RSS (VmHWM) against its RSS
just before the invocation. The difference includes the handler's cold import (a constant), so flatness
in N is what it shows. SendMessageBatch calls are real; the queue is emptied behind the poller.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import resource
import sys
import threading
import time
import tracemalloc
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from moto.sqs.models import sqs_backends

from bench import fast_dispatch
from bench.models import MemoryResult
from bench.pipeline import SUPPLIER_SHARE, customers_and_suppliers_mapping
from bench.remote import StackSpec
from localrun import fast_sqs
from localrun.environment import SCHEDULE_EVENT, LocalEnvironment
from localrun.lambda_runtime import invoke

POLLER_TIMEOUT_S = 3600.0  # one invocation reads the whole window (Lambda's is 300 s; see docs/benchmarks.md)


def _rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def _reset_peak() -> None:
    # ru_maxrss survives fork+exec (a spawned child starts with its parent's peak); writing 5 to clear_refs
    # resets this process's VmHWM to its current RSS, so the peak read afterwards is the invocation's own.
    Path("/proc/self/clear_refs").write_text("5")


def _peak_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status")


def _services(records: int, log_dir: str, conn: Connection) -> None:
    fast_sqs.install()
    fast_dispatch.install()
    suppliers = round(records * SUPPLIER_SHARE)
    mapping = customers_and_suppliers_mapping(Path(log_dir) / "mapping.json")
    with LocalEnvironment(customers=records - suppliers, suppliers=suppliers,
                          extra_env={"MAPPING_FILE": str(mapping)}) as env:
        assert env.stack is not None
        conn.send(StackSpec.of(env.stack, env.env()).model_dump())
        stop = threading.Event()
        purger = threading.Thread(target=_purge_until, args=(env, stop), daemon=True)
        purger.start()
        conn.recv()  # the poller is done
        stop.set()
        purger.join()


def _purge_until(env: LocalEnvironment, stop: threading.Event) -> None:
    # PurgeQueue is allowed once a minute; this process hosts moto, so empty the queue in the backend itself.
    assert env.stack is not None
    queue = sqs_backends[env.stack.account_id][env.aws.region].get_queue(env.resource("SyncQueue").rsplit("/", 1)[1])
    while not stop.wait(1.0):
        queue._messages = []


def _poller(spec_data: dict[str, Any], log_path: str, trace_python: bool, conn: Connection) -> None:
    sys.stdout = Path(log_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    spec = StackSpec.model_validate(spec_data)
    _reset_peak()
    before = _rss_mb()
    if trace_python:
        tracemalloc.start()
    started = time.monotonic()
    result = invoke(spec.stack(), "PollerFunction", json.loads(SCHEDULE_EVENT.read_text()), env=spec.handler_env,
                    template_path=spec.template_path, timeout_s=POLLER_TIMEOUT_S)
    seconds = time.monotonic() - started
    peak = _peak_mb()
    python_peak = tracemalloc.get_traced_memory()[1] / 2**20 if trace_python else None
    sent = sum(e["messages_sent"] for e in result["entities"])
    conn.send({"peak_rss_mb": peak, "rss_before_mb": before, "seconds": seconds, "messages_sent": sent,
               "python_peak_mb": python_peak})


def measure(records: int, log_dir: Path, *, trace_python: bool = False) -> MemoryResult:
    log_dir.mkdir(parents=True, exist_ok=True)
    context = multiprocessing.get_context("spawn")
    services_end, services_conn = context.Pipe()
    poller_end, poller_conn = context.Pipe()
    services = context.Process(target=_services, args=(records, str(log_dir), services_conn))
    services.start()
    try:
        spec = services_end.recv()
        poller = context.Process(target=_poller, args=(spec, str(log_dir / f"poller-{records}.log"), trace_python,
                                                            poller_conn))
        poller.start()
        figures = poller_end.recv()
        poller.join()
    finally:
        with contextlib.suppress(OSError):
            services_end.send("done")
        services.join(timeout=60)
    return MemoryResult(records=records, **figures)
