"""Throughput at production latency (issue #17, targets 3 and 4): the default configuration at Marketo latencies L.

For each budget (default 50 calls / 20 s with 5 concurrent calls; full instance limit 100 / 20 s with 10)
and each L, one full load of ``chunks`` × 300 records: the poller fills the queue, then as many writer
processes as the template's writer MaximumConcurrency (2 × MarketoMaxConcurrentCalls) drain it against a
Marketo sandbox. DynamoDB and SQS run on moto processes of their own (``bench.emulators``).

Time scaling (``--time-scale k``): the whole pipeline needs ~6 ms of CPU per record here, so 2 cores cannot
do the 750–1,500 records/s the budgets allow (docs/benchmarks-bounds.md). The run is k times slower
instead: Marketo answers after k × L, the connector's budget and the sandbox's instance limit count their
calls in a window of k × 20 s (MARKETO_WINDOW_SECONDS; the limiter's 0.2 s grace and 606 back-off stretch with
it), the writer's timeout is k × the template's, concurrency unchanged. Every bound, min(calls / 20 s, C / L)
× 300, is then k times smaller and so is the CPU the run needs per second. (Until 2026-12-07 the window stayed
20 s with calls / k in it: the same rate, but a grace k times shorter than a Lambda writer's on the scaled
clock, so writers held off the CPU by the cap below gave starts up that Lambda would have used.)
So that the slower clock does not hand the writers k times the CPU Lambda gives them, each writer process
is held to (its memory's vCPU) / k of a core (``bench.cpucap``; 512 MB: 0.29 vCPU); ``--no-cpu-cap`` lifts
that and the report shows what each writer used per scaled second instead. With the cap, the writers start
warm (handler imported) and together.

Writer batches: a long load's backlog holds a full batch (WriterBatchSize 20 messages) for every writer; the
few chunks of one run would go to two or three writers. By default each invocation takes chunks / writers
messages so every writer works, as in that steady state (``--writer-batch-size 0``: the template's 20).
Smaller batches cost more calls (the partial 300-record pack of each Visma page is not merged with others),
which the ratio counts against the connector.

The ratio compares makespans, not a rate between completions (which counts a burst of first calls as
throughput): the measured first call start to last call end against an ideal that sends the same number
of full 300-record calls at the budget's steady rate (``bench.makespan``). A sliding-window ideal, which
may send a whole window at once, is shown beside it.

    python -m bench.latency [--time-scale 10] [--chunks 30] [--latencies 0.5 1 2] [--budgets default full]
"""

from __future__ import annotations

import argparse
import math
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

from bench.calltimer import by_service
from bench.makespan import measured_makespan, paced_makespan, sliding_window_makespan
from bench.models import DEFAULT_BUDGET, FULL_BUDGET, MARKETO_BATCH, Budget, CycleResult, PipelineSettings
from bench.pipeline import BenchEnvironment, Meters
from bench.probes import DynamoCounter
from bench.template_defaults import TEMPLATE, writer_concurrency
from bench.units import DynamoUnits
from localrun.sam_template import load_template

ROOT = Path(__file__).resolve().parent.parent
BUDGETS = {"default": DEFAULT_BUDGET, "full": FULL_BUDGET}
TARGETS = {DEFAULT_BUDGET.name: 0.95, FULL_BUDGET.name: 0.90}  # issue #17's ratios
WINDOW_S = 20.0
INSTANCE_LIMIT = (100, 10)  # Marketo's calls per 20 s and calls in flight per instance (reference §4)
LAMBDA_MB_PER_VCPU = 1769  # Lambda gives one vCPU at 1,769 MB, in proportion below it
DEFAULT_TIME_SCALE = 10


def writer_function() -> tuple[int, int]:
    """The template's writer (Timeout s, MemorySize MB)."""
    properties = load_template(TEMPLATE)["Resources"]["WriterFunction"]["Properties"]
    return int(properties["Timeout"]), int(properties["MemorySize"])


def lambda_vcpu(memory_mb: int) -> float:
    return memory_mb / LAMBDA_MB_PER_VCPU


def scaled(budget: Budget, k: int) -> Budget:
    """The budget with k times fewer calls per window (same window, same concurrency)."""
    if budget.calls_per_20s % k or INSTANCE_LIMIT[0] % k:
        raise ValueError(f"--time-scale {k} must divide {budget.calls_per_20s} and {INSTANCE_LIMIT[0]} (calls per "
                         f"20 s): 1, 2, 5, 10, 25 or 50")
    return Budget(name=budget.name, calls_per_20s=budget.calls_per_20s // k, concurrency=budget.concurrency)


def ideal_records_per_second(budget: Budget, latency_s: float) -> float:
    """min(budget calls per second, calls in flight / latency) × 300."""
    return min(budget.calls_per_20s / WINDOW_S, budget.concurrency / latency_s) * MARKETO_BATCH


class LatencyPoint(BaseModel):
    budget: Budget  # as issue #17 states it (unscaled)
    latency_s: float  # unscaled
    time_scale: int = 1
    chunks: int
    writers: int
    batch_size: int = 0  # messages per writer invocation (0: the template's WriterBatchSize)
    writer_vcpu: float  # the vCPU a Lambda writer has at the template's memory
    cpu_capped: bool = False
    cycle: CycleResult  # measured at the scaled budget and latency

    @property
    def scaled_latency_s(self) -> float:
        return self.latency_s * self.time_scale

    @property
    def ideal(self) -> float:
        return ideal_records_per_second(self.budget, self.latency_s)

    @property
    def calls(self) -> int:
        """Full 300-record calls the records written need (more calls than that is the connector's loss)."""
        return math.ceil(self.cycle.records_written / MARKETO_BATCH)

    @property
    def measured_s(self) -> float:
        return measured_makespan(self.cycle.write_completions_s, self.scaled_latency_s)

    def _ideal_s(self, makespan: object) -> float:
        assert callable(makespan)
        b = self.cycle.budget  # the scaled one the run used
        return float(makespan(self.calls, self.scaled_latency_s, b.calls_per_20s, WINDOW_S, b.concurrency))

    @property
    def ratio(self) -> float:
        """Ideal steady-rate makespan / measured makespan, for the same records."""
        return self._ideal_s(paced_makespan) / self.measured_s if self.measured_s else 0.0

    @property
    def burst_ratio(self) -> float:
        return self._ideal_s(sliding_window_makespan) / self.measured_s if self.measured_s else 0.0

    @property
    def per_call_ratio(self) -> float:
        """The ratio for the calls actually made: the ratio × calls made / calls needed. Where it is near 98 %
        and the ratio is not, the gap is calls of fewer than 300 records, not the pace of the calls."""
        made = len(self.cycle.write_completions_s)
        return self.ratio * made / self.calls if self.calls else 0.0

    @property
    def met(self) -> bool:
        return self.ratio >= TARGETS[self.budget.name] and self.cycle.surfaced_failures == 0

    @property
    def invocation_vcpu(self) -> float:
        """vCPU a writer used per scaled second while invoked: its CPU over its invocations' wall time × k."""
        c = self.cycle
        return c.writer_cpu_seconds / c.writer_seconds * self.time_scale if c.writer_seconds else 0.0

    @property
    def busiest_writer_vcpu(self) -> float:
        """The busiest writer process's CPU over its whole drain (polling included) per scaled second."""
        shares = [cpu / wall for cpu, wall, _, _ in self.cycle.writer_processes if wall > 0]
        return max(shares, default=0.0) * self.time_scale

    @property
    def writers_used(self) -> int:
        """Writer processes that got at least one batch."""
        return sum(1 for _, _, _, batches in self.cycle.writer_processes if batches)

    @property
    def stopped_share(self) -> float:
        """Of the writer processes' drain wall time, the share the CPU cap held them stopped."""
        wall = sum(w for _, w, _, _ in self.cycle.writer_processes)
        return sum(s for _, _, s, _ in self.cycle.writer_processes) / wall if wall else 0.0

    def writer_wait_share(self, service: str) -> float:
        """Share of the writer invocations' wall time spent in calls to ``service`` (threads overlap: can be > 1)."""
        _, seconds = by_service(self.cycle.writer_calls).get(service, (0, 0.0))
        return seconds / self.cycle.writer_seconds if self.cycle.writer_seconds else 0.0

    @property
    def bound(self) -> str:
        """What held the figure, from the evidence in the row."""
        c, b = self.cycle, self.cycle.budget
        if c.surfaced_failures:
            return "failures"
        if c.machine_busy >= 0.9 and self.per_call_ratio < 0.95:
            return "machine (cores busy)"
        if self.per_call_ratio >= 0.95:
            concurrency_bound = b.concurrency / self.scaled_latency_s < b.calls_per_20s / WINDOW_S
            pace = "concurrency (C / L)" if concurrency_bound else "budget (limiter pacing, 98 %)"
            return pace if self.ratio >= 0.95 else f"{pace}; calls under 300 records"
        if self.cpu_capped and self.stopped_share >= 0.05:
            return "writer CPU (Lambda vCPU)"
        if c.max_concurrency_seen < b.concurrency:
            return "writers (calls in flight < C)"
        return "writers"


class LatencySweep(BaseModel):
    date: str
    machine: dict[str, str]
    time_scale: int = 1
    points: list[LatencyPoint] = Field(default_factory=list)
    wall_seconds: float = 0.0


def spread_batch_size(chunks: int, writers: int) -> int:
    """Messages per invocation that give every writer work: a long load's steady state, where the backlog
    holds a full batch for each of them, with the few chunks a short run has."""
    return max(1, math.ceil(chunks / writers))


def run_point(budget: Budget, latency_s: float, chunks: int, log_dir: Path, meters: Meters,
              writers: int | None = None, profile: bool = False, time_scale: int = 1,
              cpu_cap: bool = True, batch_size: int | None = None) -> LatencyPoint:
    writers = writers or budget.concurrency
    batch = spread_batch_size(chunks, writers) if batch_size is None else batch_size
    timeout_s, memory_mb = writer_function()
    vcpu = lambda_vcpu(memory_mb)
    latency = latency_s * time_scale
    settings = PipelineSettings(records=chunks * MARKETO_BATCH, writers=writers,
                                visma_latency_s=(0.01, 0.02), marketo_latency_s=(latency, latency),
                                marketo_rate_limit=(INSTANCE_LIMIT[0], WINDOW_S * time_scale),
                                window_dilation=time_scale,
                                writer_timeout_s=timeout_s * time_scale,
                                writer_cpu_share=vcpu / time_scale if cpu_cap else None,
                                writer_batch_size=batch or None,
                                split_emulators=True, emulator_meters=False)
    run_budget = scaled(budget, time_scale)
    name = f"{budget.calls_per_20s}-{latency_s:g}s-{writers}w-x{time_scale}-b{batch}"
    with BenchEnvironment(settings, run_budget, log_dir / name) as env:
        cycle = env.run_cycle("full load", meters, profile=profile)
    return LatencyPoint(budget=budget, latency_s=latency_s, time_scale=time_scale, chunks=chunks, writers=writers,
                        batch_size=batch, writer_vcpu=vcpu, cpu_capped=cpu_cap, cycle=cycle)


def run_sweep(budgets: list[Budget], latencies: list[float], chunks: int, log_dir: Path,
              say: object = print, writers_per_call: int = 0, profile: bool = False,
              time_scale: int = DEFAULT_TIME_SCALE, cpu_cap: bool = True,
              batch_size: int | None = None) -> LatencySweep:
    assert callable(say)
    for budget in budgets:
        scaled(budget, time_scale)  # a scale that does not divide the budget fails before any run
    from bench.run import machine  # here: bench.run runs this sweep too (python -m bench --latency-sweep)

    meters = Meters(DynamoCounter(), DynamoUnits())  # unused: the emulator processes run unmetered here
    sweep = LatencySweep(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
                         time_scale=time_scale)
    started = time.monotonic()
    for budget in budgets:
        for latency in latencies:
            say(f"{budget.name}, L = {latency:g} s (x{time_scale}), {chunks} chunks ...")
            per_call = writers_per_call or writer_concurrency(budget.concurrency) // budget.concurrency
            writers = budget.concurrency * per_call
            point = run_point(budget, latency, chunks, log_dir, meters, writers, profile, time_scale, cpu_cap,
                              batch_size)
            sweep.points.append(point)
            say(f"  {100 * point.ratio:.1f} % of {point.ideal:.0f} rec/s "
                f"(burst ideal {100 * point.burst_ratio:.1f} %), "
                f"in flight {point.cycle.max_concurrency_seen}/{budget.concurrency}, writer vCPU/scaled s "
                f"{point.invocation_vcpu:.2f}, machine busy {100 * point.cycle.machine_busy:.0f} %, {point.bound}")
    sweep.wall_seconds = time.monotonic() - started
    return sweep


def command(sweep: LatencySweep) -> str:
    cap = "" if all(p.cpu_capped for p in sweep.points) else " --no-cpu-cap"
    chunks = sweep.points[0].chunks if sweep.points else 0
    batches = {p.batch_size for p in sweep.points}
    spread = all(p.batch_size == spread_batch_size(p.chunks, p.writers) for p in sweep.points)
    batch = "" if spread or len(batches) != 1 else f" --writer-batch-size {batches.pop()}"
    return f"python -m bench.latency --time-scale {sweep.time_scale} --chunks {chunks}{cap}{batch}"


def render(sweep: LatencySweep, heading: str = "## Throughput at production latency") -> str:
    k = sweep.time_scale
    vcpu = sweep.points[0].writer_vcpu if sweep.points else 0.0
    capped = bool(sweep.points) and all(p.cpu_capped for p in sweep.points)
    lines = [heading, "",
             f"Run {sweep.date} on {sweep.machine.get('cores')} cores ({sweep.machine.get('system')}, Python "
             f"{sweep.machine.get('python')}), {sweep.wall_seconds / 60:.1f} min, `{command(sweep)}`. "
             f"Time scale k = {k}: Marketo answered after k × L, the connector's budget and the sandbox's limit "
             f"counted their calls in k × 20 s, concurrency as stated; figures below are converted back (records/s "
             f"× k, seconds / k). " + (f"Each writer process was held to {vcpu:.2f} / k of a core, a {vcpu:.2f}-vCPU "
                                  "Lambda writer (the template's MemorySize) on the scaled clock. " if capped else
                                  "Writer CPU not capped. ") +
             "DynamoDB and SQS on moto processes of their own.", "",
             "| Budget | L | Writers (used) | Chunks (per invocation) "
             "| Ratio: paced ideal / measured makespan (target) "
             "| Records/s (ideal) | Burst-ideal ratio | Marketo calls (ideal) | Ratio per call made "
             "| Max in flight (C) | Writer invocations "
             "| Writer CPU s / 300 | Writer vCPU per scaled s: in invocations, busiest drain (Lambda) "
             "| Time stopped by the cap | Machine busy, load | Failures | Bound |",
             "|" + "---|" * 17]
    for p in sweep.points:
        c = p.cycle
        lines.append(
            f"| {p.budget.calls_per_20s}/20 s, {p.budget.concurrency} | {p.latency_s:g} s | {p.writers} "
            f"({p.writers_used}) | {p.chunks} ({p.batch_size or 'template'}) | "
            f"**{100 * p.ratio:.1f} %** ({100 * TARGETS[p.budget.name]:.0f} %"
            f"{', met' if p.met else ', missed'}) | {p.ratio * p.ideal:.0f} ({p.ideal:.0f}) | "
            f"{100 * p.burst_ratio:.1f} % | {len(c.write_completions_s)} ({p.calls}) | "
            f"{100 * p.per_call_ratio:.1f} % | "
            f"{c.max_concurrency_seen} ({p.budget.concurrency}) | "
            f"{c.writer_invocations} | {c.writer_cpu_per_300:.2f} | {p.invocation_vcpu:.2f}, "
            f"{p.busiest_writer_vcpu:.2f} ({p.writer_vcpu:.2f}) | {100 * p.stopped_share:.0f} % | "
            f"{100 * c.machine_busy:.0f} % of {sweep.machine.get('cores')} cores, {c.load_average:.1f} | "
            f"{c.surfaced_failures} | {p.bound} |")
    lines += ["",
              "Ratio: the makespan an ideal writer needs for the same records in full 300-record calls at "
              "min(budget, C / L), calls evenly spaced, over the measured one (first call start to last call end); "
              "the connector's limiter spaces calls 2 % wider than the budget, so 98 % is its ceiling. Burst-ideal "
              "ratio: against a writer that sends each window's calls at once (a few windows favour it). "
              "Marketo calls: the write phase's sync calls against ceil(records / 300); a call of fewer records "
              "than 300 lengthens the measured makespan; ratio per call made: the ratio × calls made / ideal calls, "
              "the pace of the calls alone. "
              "Writer vCPU per scaled second: CPU seconds over wall seconds × k, over the invocations and over the "
              "busiest writer's whole drain, beside a Lambda writer's vCPU. Machine busy: all cores, every "
              "process on the machine (other sessions included), during the write phase."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=30, help="300-record chunks per run (30)")
    parser.add_argument("--time-scale", type=int, default=DEFAULT_TIME_SCALE,
                        help=f"k: Marketo latency × k, the budgets' window × k ({DEFAULT_TIME_SCALE}; 1 runs unscaled)")
    parser.add_argument("--no-cpu-cap", action="store_true",
                        help="let writer processes use whole cores (by default each is held to its Lambda vCPU / k)")
    parser.add_argument("--writer-batch-size", type=int, default=None,
                        help="messages per writer invocation (default: chunks / writers, so every writer has work "
                             "as in a long load; 0: the template's WriterBatchSize)")
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
                      writers_per_call=args.writers_per_call, profile=args.profile, time_scale=args.time_scale,
                      cpu_cap=not args.no_cpu_cap, batch_size=args.writer_batch_size)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    (args.log_dir / "sweep.json").write_text(sweep.model_dump_json(indent=1))
    args.output.write_text(render(sweep))
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
