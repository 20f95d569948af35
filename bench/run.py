"""The whole benchmark, in order: cold imports, the pipeline at the default budget (full load, no-op cycle,
1 % edits), the full load at the full instance limit, the baseline script, poller memory; then the report."""

from __future__ import annotations

import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from bench import coldstart, fast_dispatch, memory
from bench.baseline import run_baseline
from bench.cost import Cost, cost_of
from bench.latency import LatencySweep, run_sweep
from bench.models import (
    DEFAULT_BUDGET,
    FULL_BUDGET,
    BaselineResult,
    Budget,
    ColdImport,
    CycleResult,
    MemoryResult,
    PipelineSettings,
)
from bench.pipeline import BenchEnvironment, Meters
from bench.probes import DynamoCounter
from bench.units import DynamoUnits
from bench.writers import WriterCpu, measure_writer_cpu
from localrun import fast_sqs


class Options(BaseModel):
    records: int = 100_000
    full_limit_records: int = 100_000
    writers: int = 4
    baseline_records: int = 1000
    memory_sizes: list[int] = Field(default_factory=lambda: [10_000, 100_000, 1_000_000])
    marketo_latency_s: tuple[float, float] = (0.1, 0.3)
    visma_latency_s: tuple[float, float] = (0.1, 0.3)
    cold_import_runs: int = 7
    log_dir: Path = Path(".bench")
    split_emulators: bool = False  # DynamoDB and SQS on moto processes of their own (bench.emulators)
    latency_sweep: bool = False  # after the rest, bench.latency's sweep (L = 0.5, 1, 2 s at both budgets)
    latency_chunks: int = 30
    writer_cpu_chunks: int = 6  # one warm writer's CPU per 300 records (bench.writers); 0 skips it


class BenchReport(BaseModel):
    date: str
    machine: dict[str, str]
    options: Options
    wall_seconds: float = 0.0
    cold_imports: list[ColdImport] = Field(default_factory=list)
    cycles: list[CycleResult] = Field(default_factory=list)  # default budget: full load, no-op, edits
    full_limit: CycleResult | None = None
    verification: str = ""
    verified: bool = False
    baseline: BaselineResult | None = None
    memory: list[MemoryResult] = Field(default_factory=list)
    cost: Cost | None = None
    memory_mb: int = 0
    latency: LatencySweep | None = None
    writer_cpu: WriterCpu | None = None


def machine() -> dict[str, str]:
    return {"arch": platform.machine(), "cores": str(os.cpu_count()), "python": platform.python_version(),
            "system": f"{platform.system()} {platform.release()}"}


def run(options: Options, progress: bool = True) -> BenchReport:
    say = print if progress else (lambda *_: None)
    fast_sqs.install()  # emulator speed-ups, this process only (moto's server runs here)
    fast_dispatch.install()
    dynamo = Meters(DynamoCounter().install(), DynamoUnits().install())
    started = time.monotonic()
    report = BenchReport(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(), options=options)
    say("cold imports ...")
    report.cold_imports = coldstart.measure_all(options.cold_import_runs)
    baseline_records = _default_budget_cycles(options, report, dynamo, say)
    if options.full_limit_records:  # 0 skips a part (the smoke test runs every part, small)
        say(f"full load at the {FULL_BUDGET.name} ({options.full_limit_records} records) ...")
        with BenchEnvironment(_settings(options, options.full_limit_records), FULL_BUDGET,
                              options.log_dir / "full-limit") as env:
            report.full_limit = env.run_cycle("full load", dynamo)
    if baseline_records:
        say(f"baseline script ({len(baseline_records)} records) ...")
        report.baseline = run_baseline(baseline_records, latency=options.marketo_latency_s)
    for size in options.memory_sizes:
        say(f"poller memory at {size} records ...")
        report.memory.append(memory.measure(size, options.log_dir / "memory"))
    if options.writer_cpu_chunks:
        say(f"writer CPU, one warm writer, {options.writer_cpu_chunks * 300} records ...")
        report.writer_cpu = measure_writer_cpu(options.writer_cpu_chunks, 1, options.log_dir / "writer-cpu")
    if options.latency_sweep:
        say("throughput at Marketo latency (time-scaled sweep) ...")
        report.latency = run_sweep([DEFAULT_BUDGET, FULL_BUDGET], [0.5, 1.0, 2.0], options.latency_chunks,
                                   options.log_dir / "latency", say=say)
    report.wall_seconds = time.monotonic() - started
    return report


def _settings(options: Options, records: int) -> PipelineSettings:
    return PipelineSettings(records=records, writers=options.writers, visma_latency_s=options.visma_latency_s,
                            marketo_latency_s=options.marketo_latency_s, split_emulators=options.split_emulators)


def _default_budget_cycles(options: Options, report: BenchReport, dynamo: Meters,
                           say: object) -> list[dict[str, object]]:
    """Full load, no-op cycle and 1 % edits at the default budget; returns records for the baseline."""
    assert callable(say)
    settings = _settings(options, options.records)
    with BenchEnvironment(settings, DEFAULT_BUDGET, options.log_dir / "default-budget") as env:
        for label in ("full load", "no-op cycle", "1 % edits"):
            if label == "1 % edits":
                env.visma.store.edit_random(max(1, int(options.records * settings.edit_fraction)), rng_seed=8)
            say(f"{label} at the {DEFAULT_BUDGET.name} ({options.records} records) ...")
            report.cycles.append(env.run_cycle(label, dynamo))
        verification = env.verify()
        report.verification, report.verified = verification.summary(), verification.ok
        assert env.stack is not None
        report.memory_mb = env.stack.function_memory("WriterFunction")
        report.cost = cost_of(report.cycles[0], report.memory_mb)
        return list(env.expected_companies().values())[:options.baseline_records]


__all__ = ["Budget", "Options", "BenchReport", "run"]
