"""What the harness measures, as data: settings, per-cycle results and the report's other figures."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field

MARKETO_BATCH = 300  # records per createOrUpdate call (Marketo's maximum)


class Budget(BaseModel):
    """The writers' Marketo call budget (template parameters MarketoCallsPer20Seconds / MarketoMaxConcurrentCalls)."""

    name: str
    calls_per_20s: int
    concurrency: int

    @property
    def api_bound_records_per_second(self) -> float:
        """300 records a call at the budget's calls per second: no writer can go faster."""
        return MARKETO_BATCH * self.calls_per_20s / 20.0


DEFAULT_BUDGET = Budget(name="default budget", calls_per_20s=50, concurrency=5)
FULL_BUDGET = Budget(name="full instance limit", calls_per_20s=100, concurrency=10)


class PipelineSettings(BaseModel):
    records: int = 100_000
    writers: int = 4
    seed: int = 7
    visma_page_size: int = 1000
    visma_latency_s: tuple[float, float] = (0.1, 0.3)
    marketo_latency_s: tuple[float, float] = (0.1, 0.3)
    edit_fraction: float = 0.01
    # DynamoDB and SQS on moto processes of their own (bench.emulators), not on the bench process's moto thread.
    split_emulators: bool = False
    emulator_meters: bool = True  # split emulators: count DynamoDB calls and units (costs emulator CPU)
    marketo_rate_limit: tuple[int, float] = (100, 20.0)  # the sandbox's instance limit (reference §4)
    # Time dilation k (bench.latency): the connector's budget counts its calls in k × 20 s, not calls / k in 20 s.
    window_dilation: int = 1
    writer_timeout_s: float | None = None  # None: the template's Timeout
    writer_cpu_share: float | None = None  # each writer process held to this share of a core (bench.cpucap)
    writer_batch_size: int | None = None  # None: the template's WriterBatchSize


def _no_units() -> dict[str, dict[str, float]]:
    return {"read": {}, "write": {}}


class CycleResult(BaseModel):
    label: str
    budget: Budget
    records_in_visma: int
    records_read: int
    messages_sent: int
    marketo_sync_calls: int  # createOrUpdate calls for customers/suppliers
    marketo_calls_total: int  # every REST call, refused ones included
    records_created: int
    records_updated: int
    records_skipped: int
    write_calls: int
    write_records: int
    write_seconds: float
    records_per_second: float
    errors_606: int
    errors_615: int
    max_concurrency_seen: int
    visma_calls: int
    visma_record_pages: int
    visma_ideal_pages: int
    limiter_dynamo_calls: int
    other_dynamo_item_calls: int
    # DynamoDB request units as billed, by kind ("read"/"write") and key family (REC, POLL, JOB, LIMIT ...)
    dynamo_units: dict[str, dict[str, float]] = Field(default_factory=_no_units)
    # SQS API calls by action (SendMessageBatch, ReceiveMessage, DeleteMessageBatch ...), as made during the cycle
    sqs_requests: dict[str, int] = Field(default_factory=dict)
    # The same calls as SQS bills them: each 64 KB chunk of a call's payload one request (bench/sqs_requests.py)
    sqs_billed: dict[str, int] = Field(default_factory=dict)
    messages_failed: int
    handler_errors: int
    worker_errors: list[str] = Field(default_factory=list)
    dead_letters: int
    poller_seconds: float
    poller_invocations: int = 1
    writer_invocations: int
    writer_seconds: float
    writer_cpu_seconds: float = 0.0  # the writer processes' own CPU (handler, boto3, the event-source loop)
    cycle_seconds: float
    # Writers' wall time inside AWS / HTTP calls (bench.calltimer summary, all writer processes added up).
    writer_calls: dict[str, Any] = Field(default_factory=dict)
    # CPU seconds of the emulator processes during the cycle (split emulators only), by service.
    emulator_cpu_seconds: dict[str, float] = Field(default_factory=dict)
    # Completion times of the write phase's Marketo sync calls, seconds after the first.
    write_completions_s: list[float] = Field(default_factory=list)
    # Each writer process over its drain: CPU seconds, wall seconds, seconds held stopped by the CPU cap, batches.
    writer_processes: list[tuple[float, float, float, int]] = Field(default_factory=list)
    # Each writer process's CPU seconds per invocation, in order (its first one pays the lazy set-up).
    writer_invocation_cpu_s: list[list[float]] = Field(default_factory=list)
    # The machine during the write phase: share of all cores busy (/proc/stat), load average at its end.
    machine_busy: float = 0.0
    load_average: float = 0.0

    @property
    def records_written(self) -> int:
        return self.records_created + self.records_updated

    @property
    def ideal_calls(self) -> int:
        return math.ceil(self.messages_sent / MARKETO_BATCH)

    @property
    def calls_ratio(self) -> float:
        """Marketo sync calls against the ideal ceil(N/300); 1.0 is ideal."""
        return self.marketo_sync_calls / self.ideal_calls if self.ideal_calls else 0.0

    @property
    def throughput_ratio(self) -> float:
        return self.records_per_second / self.budget.api_bound_records_per_second

    @property
    def surfaced_failures(self) -> int:
        """Messages a writer reported failed, failed invocations, and dead letters."""
        return self.messages_failed + self.handler_errors + self.dead_letters

    @property
    def dynamo_writes(self) -> float:
        return sum(self.dynamo_units["write"].values())

    @property
    def dynamo_reads(self) -> float:
        return sum(self.dynamo_units["read"].values())

    def units_per_record(self, kind: str) -> dict[str, float]:
        """Units of one kind per record sent, by key family."""
        records = max(self.messages_sent, 1)
        return {family: units / records for family, units in sorted(self.dynamo_units[kind].items())}

    @property
    def writer_cpu_per_300(self) -> float:
        """Writer CPU seconds per 300 records written (a full batch)."""
        return self.writer_cpu_seconds * 300 / self.records_written if self.records_written else 0.0

    @property
    def limiter_calls_per_marketo_call(self) -> float:
        return self.limiter_dynamo_calls / self.marketo_sync_calls if self.marketo_sync_calls else 0.0


class BaselineResult(BaseModel):
    records: int
    threads: int
    calls: int
    seconds: float
    records_per_second: float
    errors_606: int
    errors_615: int
    retries: int
    failed_records: int
    api_bound_records_per_second: float  # of the full instance limit, the script's only bound

    @property
    def ratio(self) -> float:
        return self.records_per_second / self.api_bound_records_per_second


class MemoryResult(BaseModel):
    records: int
    peak_rss_mb: float
    rss_before_mb: float
    seconds: float
    messages_sent: int
    # Peak of the Python heap (tracemalloc) during the invocation, when asked for: exact, but it slows the poller.
    python_peak_mb: float | None = None
    method: str = ("peak RSS (VmHWM, reset just before the invocation) of a process that runs only the poller "
                  "handler, minus its RSS before the invocation (the handler's cold import is inside the growth)")

    @property
    def delta_mb(self) -> float:
        return self.peak_rss_mb - self.rss_before_mb


class ColdImport(BaseModel):
    handler: str
    runs_s: list[float]

    @property
    def median_s(self) -> float:
        ordered = sorted(self.runs_s)
        middle = len(ordered) // 2
        return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
