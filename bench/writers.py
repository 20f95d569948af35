"""Several concurrent writers: worker processes, each running Lambda's SQS event-source loop on the queue.

Each worker is what one concurrent writer execution environment is in AWS: it polls the same queue,
invokes the writer handler (``localrun``'s event source and runtime, unchanged) and deletes or releases
the messages. Writers share the Marketo budget through the DynamoDB limiter in moto, as deployed ones do.
"""

from __future__ import annotations

import cProfile
import multiprocessing
import os
import pstats
import shutil
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bench.calltimer import CallTimer
from bench.cpucap import CpuCap
from bench.remote import StackSpec
from localrun.event_source import DrainStats, SqsEventSource
from localrun.lambda_runtime import invoke


class WorkerResult(DrainStats):
    """One writer's drain, without the handlers' return values (they cross a process boundary)."""

    durations_s: list[float] = Field(default_factory=list)  # one per handler invocation
    cpu_s: list[float] = Field(default_factory=list)  # this process's CPU time per invocation (no moto: it runs apart)
    empty_cpu_s: float = 0.0  # CPU of a warm invocation of one unreadable message (fixed cost, harness included)
    calls: dict[str, Any] = Field(default_factory=dict)  # bench.calltimer summary: AWS and HTTP call times
    drain_cpu_s: float = 0.0  # the process's CPU over its whole drain (invocations and the polling between)
    drain_wall_s: float = 0.0
    stopped_s: float = 0.0  # time the CPU cap held the process stopped (bench.cpucap)
    pid: int = 0


class TimedEventSource(SqsEventSource):
    """The event source, timing each handler invocation (what Lambda bills)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.durations: list[float] = []
        self.cpu: list[float] = []
        self.empty_cpu = 0.0  # CPU of a warm invocation of one unreadable message: the fixed cost per invocation

    def warm_up(self) -> None:
        """The cold start (imports, clients) in an invocation of one unreadable message (Lambda refuses an empty
        batch), so that the timed ones are warm, as most invocations of a busy writer are; then a warm one, timed:
        the fixed cost of an invocation (one quarantine write and the local harness's own work included)."""
        event = {"Records": [self._record({"MessageId": "warm-up", "ReceiptHandle": "-", "Body": "not json",
                                           "MD5OfBody": ""})]}
        for _ in range(2):
            cpu = time.process_time()
            invoke(self.stack, self.function_logical_id, event, env=self.env, template_path=self.template_path)
            self.empty_cpu = time.process_time() - cpu

    def _deliver(self, messages: list[dict[str, Any]], stats: DrainStats) -> None:
        # Includes the batch's DeleteMessageBatch calls (a few ms), which Lambda's poller makes outside the
        # function: a slight overestimate of billed time.
        started, cpu = time.monotonic(), time.process_time()
        super()._deliver(messages, stats)
        self.durations.append(time.monotonic() - started)
        self.cpu.append(time.process_time() - cpu)


def _worker(spec_data: dict[str, Any], log_path: str, batching_window_s: float, idle_polls: int,
            profile_path: str | None = None, warm_up: bool = False, timeout_s: float | None = None,
            gate: str | None = None, batch_size: int | None = None) -> WorkerResult:
    # Handler logs and EMF lines go to a file, as they would go to CloudWatch.
    sys.stdout = Path(log_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    timer = CallTimer().install()
    spec = StackSpec.model_validate(spec_data)
    source = TimedEventSource(spec.stack(), "WriterFunction", env=spec.handler_env,
                              batching_window_s=batching_window_s, template_path=spec.template_path,
                              timeout_s=timeout_s, batch_size=batch_size)
    if warm_up or gate is not None:  # a gated start is a warm one
        source.warm_up()
    if gate is not None:
        _StartGate(Path(gate)).ready_and_wait()
    started, cpu = time.monotonic(), time.process_time()
    if profile_path is None:
        stats = source.drain(idle_polls=idle_polls)
    else:  # the writer's own CPU, function by function (moto runs in other processes)
        stats = _profiled(lambda: source.drain(idle_polls=idle_polls), profile_path)
    drain_wall, drain_cpu = time.monotonic() - started, time.process_time() - cpu
    sys.stdout.flush()
    return WorkerResult(**stats.model_dump(exclude={"results", "errors"}), errors=stats.errors[:5],
                        durations_s=source.durations, cpu_s=source.cpu, calls=timer.summary(),
                        empty_cpu_s=source.empty_cpu, drain_cpu_s=drain_cpu, drain_wall_s=drain_wall,
                        pid=os.getpid())


class _StartGate:
    """Workers start draining together once all are warm: each leaves ready-<pid>, then waits for ``go``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def ready_and_wait(self, timeout_s: float = 300.0) -> None:
        (self.folder / f"ready-{os.getpid()}").touch()
        ends = time.monotonic() + timeout_s
        while not (self.folder / "go").exists() and time.monotonic() < ends:
            time.sleep(0.01)

    def open_when_ready(self, count: int, timeout_s: float = 300.0) -> None:
        ends = time.monotonic() + timeout_s
        while len(list(self.folder.glob("ready-*"))) < count and time.monotonic() < ends:
            time.sleep(0.05)
        (self.folder / "go").touch()


def _profiled(run: Callable[[], DrainStats], path: str) -> DrainStats:
    """``run()`` under cProfile, the threads it starts included (the writer writes record states from a
    thread pool; cProfile alone sees only the calling thread); one stats file for all."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profile_this_thread(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)  # CPU, not wall: threads mostly wait on sockets
        with lock:
            profiles.append(profile)
        sys.setprofile(None)
        profile.enable()  # replaces this hook for the rest of the thread

    main = cProfile.Profile(time.thread_time)
    threading.setprofile(profile_this_thread)
    try:
        result = main.runcall(run)
    finally:
        threading.setprofile(None)  # type: ignore[arg-type]
    with lock:
        combined = pstats.Stats(main)
        for profile in profiles:
            profile.create_stats()
            combined.add(profile)
    combined.dump_stats(path)
    return result


def run_writers(spec: StackSpec, count: int, log_dir: Path, *, batching_window_s: float = 0.5,
                idle_polls: int = 3, profile: bool = False, warm_up: bool = False, timeout_s: float | None = None,
                cpu_share: float | None = None, batch_size: int | None = None) -> list[WorkerResult]:
    """Drain the queue with ``count`` concurrent writer processes; returns when all found it empty for a while.

    A worker stops after ``idle_polls`` polls in a row found nothing (each waits up to the batching window).
    ``profile``: each worker runs under cProfile and leaves ``writer-<i>.prof`` in ``log_dir``.
    ``warm_up``: each worker's cold start happens in an untimed invocation (of one unreadable message).
    ``timeout_s``: the writer's timeout instead of the template's; ``cpu_share``: each worker held to that
    share of one core (bench.cpucap), as Lambda holds a function to its memory's vCPU; the workers then
    start warm (handler imported) and together, so the first to start does not take the whole queue.
    ``batch_size``: messages per invocation instead of the template's BatchSize.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    # spawn, not fork: the bench process runs moto's and the sandboxes' server threads.
    context = multiprocessing.get_context("spawn")
    gate = _StartGate(log_dir / "start-gate") if cpu_share else None
    if gate is not None:
        shutil.rmtree(gate.folder, ignore_errors=True)
        gate.folder.mkdir()
    with ProcessPoolExecutor(max_workers=count, mp_context=context) as pool:
        futures = [pool.submit(_worker, spec.model_dump(), str(log_dir / f"writer-{i}.log"), batching_window_s,
                               idle_polls, str(log_dir / f"writer-{i}.prof") if profile else None, warm_up,
                               timeout_s, str(gate.folder) if gate else None, batch_size)
                   for i in range(count)]
        cap = None
        if gate is not None:  # warm workers, then held to their share from the first poll on
            gate.open_when_ready(count)
            cap = CpuCap(cpu_share).start(list(pool._processes))  # type: ignore[arg-type]
        try:
            results = [f.result() for f in futures]
        finally:
            stopped = cap.stop() if cap is not None else {}
    for result in results:
        result.stopped_s = stopped.get(result.pid, 0.0)
    return results


def _by_package(prof_paths: list[Path], top: int = 25) -> str:
    """A writer profile summed by package (own time), then its top functions by own time."""
    stats = pstats.Stats(*[str(p) for p in prof_paths])
    packages: dict[str, float] = {}
    rows = []
    for (filename, line, name), (_cc, _nc, own, cumulative, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        package = _package_of(filename)
        packages[package] = packages.get(package, 0.0) + own
        rows.append((own, cumulative, f"{package}:{Path(filename).name}:{line}:{name}"))
    total = sum(packages.values()) or 1.0
    lines = [f"{p:<28} {s:7.2f} s {100 * s / total:5.1f} %" for p, s in sorted(packages.items(), key=lambda x: -x[1])]
    lines.append("-- top functions by own time (own, cumulative)")
    lines += [f"{own:7.3f} {cum:7.3f} {where}" for own, cum, where in sorted(rows, reverse=True)[:top]]
    return "\n".join(lines)


def _package_of(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/"):
        if marker in filename:
            rest = filename.split(marker, 1)[1]
            return rest.split("/", 1)[0].removesuffix(".py") if marker == "site-packages/" else \
                "stdlib:" + rest.split("/", 1)[0].removesuffix(".py")
    if "ml_connector" in filename:
        return "ml_connector"
    return filename if filename.startswith("~") or filename.startswith("<") else "other:" + Path(filename).name


# What Lambda gives a function with active tracing: the SDK records every AWS call as a subsegment of this trace.
TRACED_ENV = {"POWERTOOLS_TRACE_DISABLED": "false", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
              "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
              "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}


class WriterCpu(BaseModel):
    """Warm writer processes' CPU per 300 records on a full load (one record-state write per record)."""

    load_average: list[float]
    writers: int
    records_written: int
    invocations: int
    writer_cpu_s: float
    empty_invocation_cpu_s: float  # a warm invocation of one unreadable message: the fixed cost, harness included
    cpu_s_per_300: float
    calls: dict[str, int] = Field(default_factory=dict)


def measure_writer_cpu(chunks: int, writers: int, log_dir: Path, *, marketo_latency_s: float = 0.05,
                       batch_size: int | None = None, profile: bool = False, traced: bool = False) -> WriterCpu:
    """``chunks`` × 300 new records written by ``writers`` warm processes against the split emulators."""
    from bench.models import DEFAULT_BUDGET, PipelineSettings
    from bench.pipeline import BenchEnvironment

    settings = PipelineSettings(records=chunks * 300, writers=writers, visma_latency_s=(0.01, 0.02),
                                marketo_latency_s=(marketo_latency_s, marketo_latency_s),
                                split_emulators=True, emulator_meters=False)
    with BenchEnvironment(settings, DEFAULT_BUDGET, log_dir) as env:
        env._poll_until_complete()
        before = env._marketo_counts()
        spec = env.spec()
        if traced:
            spec.handler_env.update(TRACED_ENV)
        workers = run_writers(spec, writers, log_dir, profile=profile, warm_up=True, batch_size=batch_size)
        after = env._marketo_counts()
    written = sum(after[k] - before[k] for k in ("created", "updated"))
    cpu = sum(sum(w.cpu_s) for w in workers)
    return WriterCpu(load_average=[round(x, 2) for x in os.getloadavg()], writers=writers, records_written=written,
                     invocations=sum(len(w.cpu_s) for w in workers), writer_cpu_s=round(cpu, 3),
                     empty_invocation_cpu_s=round(max((w.empty_cpu_s for w in workers), default=0.0), 3),
                     cpu_s_per_300=round(300 * cpu / max(written, 1), 3),
                     calls=merge_counts([w.calls.get("counts", {}) for w in workers]))


def main(argv: list[str] | None = None) -> int:
    """Writer CPU per 300 records: a full load (every record new, so one record-state write each) written by
    ``--writers`` warm processes against the split emulators; process CPU per invocation, optionally profiled."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.writers", description=main.__doc__)
    parser.add_argument("--chunks", type=int, default=6, help="300-record chunks in Visma (6)")
    parser.add_argument("--writers", type=int, default=1)
    parser.add_argument("--marketo-latency", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=None,
                        help="messages per invocation (default: the template's; a message packs up to 300 records)")
    parser.add_argument("--profile", action="store_true", help="cProfile (CPU time) of each writer, by package")
    parser.add_argument("--traced", action="store_true",
                        help="X-Ray tracing on, as the template deploys it (Tracing: Active; sampled; segments go to "
                             "an X-Ray daemon address nobody listens on)")
    parser.add_argument("--log-dir", type=Path, default=Path(".bench") / "writer-cpu")
    args = parser.parse_args(argv)
    result = measure_writer_cpu(args.chunks, args.writers, args.log_dir, marketo_latency_s=args.marketo_latency,
                                batch_size=args.batch_size, profile=args.profile, traced=args.traced)
    print(result.model_dump_json(indent=1))
    if args.profile:
        print(_by_package(sorted(args.log_dir.glob("writer-*.prof"))))
    return 0


def merge_counts(counts: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for part in counts:
        for name, value in part.items():
            total[name] = total.get(name, 0) + value
    return total


if __name__ == "__main__":
    raise SystemExit(main())
