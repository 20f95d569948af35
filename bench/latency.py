"""Throughput at production latency (issue #17, target 3): the default configuration at Marketo latencies L.

For each budget (default 50 calls / 20 s with 5 concurrent writers; full instance limit 100 / 20 s with 10)
and each L, one full load of ``chunks`` × 300 records: the poller fills the queue, then as many writer
processes as the template's writer MaximumConcurrency (2 × MarketoMaxConcurrentCalls, its WriterConcurrency
mapping) drain it against a Marketo sandbox that answers every call after L seconds.
The figure is the write phase's records per second (first to last Marketo completion) against
min(calls / 20 s, concurrency / L) × 300, the most any writer could do. DynamoDB and SQS run on moto
processes of their own (``bench.emulators``); the report says how much of the writers' time was spent
waiting for them and how much CPU the emulators burnt, so an emulator-bound figure is visible as such.

    python -m bench.latency [--chunks 30] [--latencies 0.5 1 2] [--budgets default full]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from bench.calltimer import by_service
from bench.models import DEFAULT_BUDGET, FULL_BUDGET, MARKETO_BATCH, Budget, CycleResult, PipelineSettings
from bench.pipeline import BenchEnvironment, Meters
from bench.probes import DynamoCounter
from bench.run import machine
from bench.template_defaults import writer_concurrency
from bench.units import DynamoUnits

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"default": DEFAULT_BUDGET, "full": FULL_BUDGET}
TARGETS = {DEFAULT_BUDGET.name: 0.95, FULL_BUDGET.name: 0.90}  # issue #17's ratios


def ideal_records_per_second(budget: Budget, latency_s: float) -> float:
    """min(budget calls per second, calls in flight / latency) × 300."""
    return min(budget.calls_per_20s / 20.0, budget.concurrency / latency_s) * MARKETO_BATCH


class LatencyPoint(BaseModel):
    budget: Budget
    latency_s: float
    chunks: int
    writers: int
    cycle: CycleResult

    @property
    def ideal(self) -> float:
        return ideal_records_per_second(self.budget, self.latency_s)

    @property
    def ratio(self) -> float:
        return self.cycle.records_per_second / self.ideal

    @property
    def met(self) -> bool:
        return self.ratio >= TARGETS[self.budget.name] and self.cycle.surfaced_failures == 0

    @property
    def overhead_s(self) -> float:
        """Mean wall seconds of a writer invocation outside its Marketo calls (W): state reads and writes,
        idempotency, the limiter, deleting the batch."""
        c = self.cycle
        marketo = float(c.writer_calls.get("seconds", {}).get("http:marketo", 0.0))
        return (c.writer_seconds - marketo) / c.writer_invocations if c.writer_invocations else 0.0

    @property
    def writers_bound(self) -> float:
        """Records/s that ``writers`` invocations in a row can reach when each spends L in Marketo plus W:
        writers / (L + W) × 300 calls' worth, capped by the budget."""
        calls = min(self.cycle.budget.calls_per_20s / 20.0, self.writers / (self.latency_s + self.overhead_s))
        return calls * MARKETO_BATCH

    def writer_wait_share(self, service: str) -> float:
        """Share of the writer invocations' wall time spent in calls to ``service`` (threads overlap: can be > 1)."""
        _, seconds = by_service(self.cycle.writer_calls).get(service, (0, 0.0))
        return seconds / self.cycle.writer_seconds if self.cycle.writer_seconds else 0.0


class LatencySweep(BaseModel):
    date: str
    machine: dict[str, str]
    points: list[LatencyPoint] = Field(default_factory=list)
    wall_seconds: float = 0.0


def run_point(budget: Budget, latency_s: float, chunks: int, log_dir: Path, meters: Meters,
              writers: int | None = None, profile: bool = False) -> LatencyPoint:
    writers = writers or budget.concurrency
    settings = PipelineSettings(records=chunks * MARKETO_BATCH, writers=writers,
                                visma_latency_s=(0.01, 0.02), marketo_latency_s=(latency_s, latency_s),
                                split_emulators=True, emulator_meters=False)
    with BenchEnvironment(settings, budget, log_dir / f"{budget.calls_per_20s}-{latency_s:g}s-{writers}w") as env:
        cycle = env.run_cycle("full load", meters, profile=profile)
    return LatencyPoint(budget=budget, latency_s=latency_s, chunks=chunks, writers=writers, cycle=cycle)


def run_sweep(budgets: list[Budget], latencies: list[float], chunks: int, log_dir: Path,
              say: object = print, writers_per_call: int = 0, profile: bool = False) -> LatencySweep:
    assert callable(say)
    meters = Meters(DynamoCounter(), DynamoUnits())  # unused: the emulator processes run unmetered here
    sweep = LatencySweep(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine())
    started = time.monotonic()
    for budget in budgets:
        for latency in latencies:
            say(f"{budget.name}, L = {latency:g} s, {chunks} chunks ...")
            per_call = writers_per_call or writer_concurrency(budget.concurrency) // budget.concurrency
            writers = budget.concurrency * per_call
            point = run_point(budget, latency, chunks, log_dir, meters, writers, profile)
            sweep.points.append(point)
            say(f"  {point.cycle.records_per_second:.0f} rec/s of {point.ideal:.0f} ({100 * point.ratio:.1f} %), "
                f"W = {point.overhead_s:.2f} s")
    sweep.wall_seconds = time.monotonic() - started
    return sweep


def render(sweep: LatencySweep) -> str:
    lines = ["## Throughput at production latency", "",
             f"Run {sweep.date} on {sweep.machine.get('cores')} cores ({sweep.machine.get('system')}, Python "
             f"{sweep.machine.get('python')}), {sweep.wall_seconds / 60:.1f} min, `python -m bench.latency`. "
             "DynamoDB and SQS on moto processes of their own; writer processes in the Writers column (the "
             "template deploys two per concurrent call).", "",
             "| Budget | L | Writers | Chunks | Records/s | Ideal min(budget, C/L)×300 | Ratio (target) "
             "| Max in flight (C) | W: invocation s outside Marketo | Writers' bound | Writer CPU s / 300 "
             "| Writer time in DynamoDB calls | DynamoDB emulator CPU s / 300 | Failures |",
             "|" + "---|" * 14]
    for p in sweep.points:
        c = p.cycle
        per_300 = 300 / c.records_written if c.records_written else 0.0
        emulator = c.emulator_cpu_seconds.get("dynamodb", 0.0) * per_300
        lines.append(
            f"| {c.budget.calls_per_20s}/20 s, {c.budget.concurrency} | {p.latency_s:g} s | {p.writers} | {p.chunks} | "
            f"{c.records_per_second:.0f} | {p.ideal:.0f} | {100 * p.ratio:.1f} % ({100 * TARGETS[c.budget.name]:.0f} %"
            f"{', met' if p.met else ', missed'}) | {c.max_concurrency_seen} ({c.budget.concurrency}) | "
            f"{p.overhead_s:.2f} s | {p.writers_bound:.0f} | "
            f"{c.writer_cpu_per_300:.2f} | {100 * p.writer_wait_share('dynamodb'):.0f} % | {emulator:.2f} | "
            f"{c.surfaced_failures} |")
    lines += ["", "W: a writer invocation's mean wall time outside its Marketo call; writers' bound: "
              "min(budget, writers / (L + W)) × 300, what that many writers one chunk at a time can reach.",
              "Writer time in DynamoDB calls: wall seconds inside DynamoDB calls over the writer invocations' "
              "wall seconds (the record-state writes run 16 at a time, so it can exceed 100 %)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=30, help="300-record chunks per run (30)")
    parser.add_argument("--latencies", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--budgets", nargs="+", choices=sorted(BUDGETS), default=["default", "full"])
    parser.add_argument("--writers-per-call", type=int, default=0,
                        help="writer processes per concurrent Marketo call (0, the default: as the template "
                             "deploys them, its WriterConcurrency mapping)")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile each writer process (threads included): writer-<i>.prof under --log-dir")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-latency.md")
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".bench" / "latency")
    args = parser.parse_args(argv)
    sweep = run_sweep([BUDGETS[b] for b in args.budgets], args.latencies, args.chunks, args.log_dir,
                      writers_per_call=args.writers_per_call, profile=args.profile)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    (args.log_dir / "sweep.json").write_text(sweep.model_dump_json(indent=1))
    args.output.write_text(render(sweep))
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
