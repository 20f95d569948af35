"""The measured pipeline: poller -> SQS -> several concurrent writer processes -> Marketo, cycle by cycle."""

from __future__ import annotations

import json
import math
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.calltimer import merge
from bench.emulators import RemoteMeters, SplitAws
from bench.models import Budget, CycleResult, PipelineSettings
from bench.probes import DynamoCounter, WriteClock
from bench.remote import StackSpec
from bench.sqs_requests import SqsCounts, SqsRequests
from bench.units import DynamoUnits
from bench.writers import WorkerResult, run_writers
from localrun.environment import LocalEnvironment
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH

RECORD_PATHS = {"customer": "/v1/customer", "supplier": "/v1/supplier"}
SUPPLIER_SHARE = 0.2  # the full load's mix: four customers to one supplier
SYNCED_SECTIONS = ("description", "customer", "supplier", "reference")


def customers_and_suppliers_mapping(path: Path) -> Path:
    """The shipped mapping without sections for other entities (contacts -> leads): issue #8's load is
    customers and suppliers, so the figures stay comparable whatever else the mapping syncs."""
    shipped = json.loads(DEFAULT_MAPPING_PATH.read_text())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in shipped.items() if k in SYNCED_SECTIONS}, indent=1))
    return path


class BenchEnvironment(LocalEnvironment):
    """LocalEnvironment with the bench's sandboxes (latency, Marketo's real limits) and a writer budget."""

    def __init__(self, settings: PipelineSettings, budget: Budget, log_dir: Path) -> None:
        suppliers = round(settings.records * SUPPLIER_SHARE)
        super().__init__(
            seed=settings.seed, customers=settings.records - suppliers, suppliers=suppliers,
            visma_options={"latency": settings.visma_latency_s, "max_page_size": settings.visma_page_size},
            # Marketo's real instance limits (reference §4): 100 calls / 20 s, 10 concurrent, 300 records a call.
            marketo_options={"latency": settings.marketo_latency_s, "rate_limit": settings.marketo_rate_limit,
                              "max_concurrency": 10},
            log_path=log_dir / "lambda.log",
            extra_env={"MARKETO_CALLS_PER_20S": str(budget.calls_per_20s * settings.window_dilation),
                       "MARKETO_WINDOW_SECONDS": str(20.0 * settings.window_dilation),
                       "MARKETO_MAX_CONCURRENCY": str(budget.concurrency),
                       "MAPPING_FILE": str(customers_and_suppliers_mapping(log_dir / "mapping.json"))})
        self.settings = settings
        self.budget = budget
        self.log_dir = log_dir
        self.write_clock = WriteClock(self.marketo)
        self.customers, self.suppliers = settings.records - suppliers, suppliers
        if settings.split_emulators:
            self.aws = SplitAws(metered=settings.emulator_meters)

    def start(self) -> BenchEnvironment:
        super().start()
        if isinstance(self.aws, SplitAws):
            assert self.stack is not None
            self.aws.move_stack(self.stack)
        return self

    def __enter__(self) -> BenchEnvironment:
        self.start()
        return self

    def meters(self, in_process: Meters) -> Meters:
        """Where this environment's DynamoDB is metered: in this process, or in its emulator process."""
        if isinstance(self.aws, SplitAws):
            return Meters(RemoteMeters(self.aws, "calls"), RemoteMeters(self.aws, "units"))
        return in_process

    def sqs_requests(self) -> SqsCounts:
        """SQS requests by action so far (calls and billed), counted where SQS answers (its emulator process, or
        this one)."""
        return self.aws.sqs_requests() if isinstance(self.aws, SplitAws) else SqsRequests.installed().snapshot()

    def emulator_cpu(self) -> dict[str, float]:
        return self.aws.cpu_seconds() if isinstance(self.aws, SplitAws) else {}

    def spec(self) -> StackSpec:
        assert self.stack is not None
        return StackSpec.of(self.stack, self.env())

    def ideal_visma_pages(self) -> int:
        size = self.settings.visma_page_size
        return math.ceil(self.customers / size) + math.ceil(self.suppliers / size)

    def dead_letters(self) -> int:
        attributes = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=self.resource("SyncDeadLetterQueue"), AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes["Attributes"]["ApproximateNumberOfMessages"])

    def run_cycle(self, label: str, dynamo: Meters, *, profile: bool = False) -> CycleResult:
        """One schedule tick: the poller, then the writers draining everything it enqueued."""
        dynamo = self.meters(dynamo)
        before = _Snapshot.take(self, dynamo)
        started = time.monotonic()
        poll = self._poll_until_complete()
        poller_s = time.monotonic() - started
        self.write_clock.clear()  # the write phase: only the writers' Marketo calls from here on
        cpu_before, busy = self.emulator_cpu(), MachineBusy()
        workers = run_writers(self.spec(), self.settings.writers, self.log_dir / label.replace(" ", "-"),
                              profile=profile, timeout_s=self.settings.writer_timeout_s,
                              cpu_share=self.settings.writer_cpu_share,
                              batch_size=self.settings.writer_batch_size)
        cpu_after = self.emulator_cpu()
        elapsed = time.monotonic() - started
        after = _Snapshot.take(self, dynamo)
        result = _cycle_result(self, label, poll, poller_s, elapsed, workers, before, after)
        result.writer_calls = merge([w.calls for w in workers])
        result.emulator_cpu_seconds = {s: round(cpu_after[s] - cpu_before.get(s, 0.0), 2) for s in cpu_after}
        result.write_completions_s = self.write_clock.completions()
        result.writer_processes = [(round(w.drain_cpu_s, 2), round(w.drain_wall_s, 2), w.stopped_s, w.batches)
                                   for w in workers]
        result.writer_invocation_cpu_s = [[round(c, 3) for c in w.cpu_s] for w in workers]
        result.machine_busy, result.load_average = busy.share(), os.getloadavg()[0]
        return result


    def _poll_until_complete(self, max_runs: int = 3) -> dict[str, Any]:
        """Poller invocations until every entity's window is complete, as the schedule would repeat them (an
        invocation short of time stops cleanly and the next re-reads the window); figures summed."""
        entities: list[dict[str, Any]] = []
        runs = 0
        for runs in range(1, max_runs + 1):  # noqa: B007 - the count is reported
            poll = self.run_poller()
            entities.extend(poll["entities"])
            if all(e["complete"] for e in poll["entities"]):
                break
        return {"entities": entities, "runs": runs}


class MachineBusy:
    """Share of all the machine's cores busy since it was made (/proc/stat: every process, ours or not)."""

    def __init__(self) -> None:
        self._start = _cpu_times()

    def share(self) -> float:
        idle_then, total_then = self._start
        idle, total = _cpu_times()
        return round(1 - (idle - idle_then) / (total - total_then), 3) if total > total_then else 0.0


def _cpu_times() -> tuple[int, int]:
    """(idle + iowait, all) jiffies over every core."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    return fields[3] + fields[4], sum(fields[:8])


@dataclass(frozen=True)
class Meters:
    """DynamoDB as seen in the bench process: item calls (the limiter's apart) and request units as billed."""

    calls: DynamoCounter | RemoteMeters
    units: DynamoUnits | RemoteMeters


class _Snapshot:
    """Counters before and after a cycle."""

    def __init__(self, marketo: dict[str, int], stats: dict[str, Any], visma: dict[str, Any],
                 dynamo: Counter[str], units: dict[str, dict[str, float]], sqs: SqsCounts) -> None:
        self.marketo, self.stats, self.visma, self.dynamo, self.units = marketo, stats, visma, dynamo, units
        self.sqs = sqs

    @classmethod
    def take(cls, env: BenchEnvironment, dynamo: Meters) -> _Snapshot:
        return cls(env._marketo_counts(), env.marketo.stats.snapshot(), env.visma.stats.snapshot(),
                   dynamo.calls.snapshot(), dynamo.units.snapshot(), env.sqs_requests())

    def units_since(self, before: _Snapshot) -> dict[str, dict[str, float]]:
        return {kind: {family: round(value - before.units[kind].get(family, 0.0), 1)
                       for family, value in self.units[kind].items() if value > before.units[kind].get(family, 0.0)}
                for kind in ("read", "write")}

    def errors(self, code: str) -> int:
        return int(self.stats["errors_by_code"].get(code, 0))

    def visma_path(self, path: str) -> int:
        return sum(n for p, n in self.visma["by_path"].items() if p.lower() == path)


def _cycle_result(env: BenchEnvironment, label: str, poll: dict[str, Any], poller_s: float, elapsed: float,
                  workers: list[WorkerResult], before: _Snapshot, after: _Snapshot) -> CycleResult:
    calls, records, seconds = env.write_clock.window()
    entities = poll["entities"]
    dynamo, sqs = after.dynamo - before.dynamo, after.sqs - before.sqs
    return CycleResult(
        label=label, budget=env.budget, records_in_visma=env.settings.records,
        records_read=sum(e["records_read"] for e in entities),
        messages_sent=sum(e["messages_sent"] for e in entities),
        marketo_sync_calls=after.marketo["marketo_calls"] - before.marketo["marketo_calls"],
        marketo_calls_total=after.stats["calls_total"] - before.stats["calls_total"],
        records_created=after.marketo["created"] - before.marketo["created"],
        records_updated=after.marketo["updated"] - before.marketo["updated"],
        records_skipped=after.marketo["skipped"] - before.marketo["skipped"],
        write_calls=calls, write_records=records, write_seconds=seconds, records_per_second=env.write_clock.rate(),
        errors_606=after.errors("606") - before.errors("606"), errors_615=after.errors("615") - before.errors("615"),
        max_concurrency_seen=int(after.stats["max_concurrency_seen"]),
        visma_calls=after.visma["erp_calls"] - before.visma["erp_calls"],
        visma_record_pages=sum(after.visma_path(p) - before.visma_path(p) for p in RECORD_PATHS.values()),
        visma_ideal_pages=env.ideal_visma_pages(),
        limiter_dynamo_calls=dynamo["limiter"], other_dynamo_item_calls=dynamo["other"],
        dynamo_units=after.units_since(before), sqs_requests=dict(sqs.calls),
        sqs_billed=dict(sqs.billed),
        messages_failed=sum(w.failed for w in workers), handler_errors=sum(w.handler_errors for w in workers),
        worker_errors=[e for w in workers for e in w.errors][:5], dead_letters=env.dead_letters(),
        poller_seconds=poller_s, poller_invocations=int(poll["runs"]),
        writer_invocations=sum(len(w.durations_s) for w in workers),
        writer_seconds=sum(sum(w.durations_s) for w in workers),
        writer_cpu_seconds=sum(sum(w.cpu_s) for w in workers), cycle_seconds=elapsed)
