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

from pydantic import Field

from bench.calltimer import CallTimer
from bench.cpucap import CpuCap
from bench.remote import StackSpec
from localrun.event_source import DrainStats, SqsEventSource
from localrun.lambda_runtime import invoke


class WorkerResult(DrainStats):
    """One writer's drain, without the handlers' return values (they cross a process boundary)."""

    durations_s: list[float] = Field(default_factory=list)  # one per handler invocation
    cpu_s: list[float] = Field(default_factory=list)  # this process's CPU time per invocation (no moto: it runs apart)
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

    def _deliver(self, messages: list[dict[str, Any]], stats: DrainStats) -> None:
        # Includes the batch's DeleteMessageBatch calls (a few ms), which Lambda's poller makes outside the
        # function: a slight overestimate of billed time.
        started, cpu = time.monotonic(), time.process_time()
        super()._deliver(messages, stats)
        self.durations.append(time.monotonic() - started)
        self.cpu.append(time.process_time() - cpu)


def _worker(spec_data: dict[str, Any], log_path: str, batching_window_s: float, idle_polls: int,
            profile_path: str | None = None, timeout_s: float | None = None, gate: str | None = None,
            batch_size: int | None = None) -> WorkerResult:
    # Handler logs and EMF lines go to a file, as they would go to CloudWatch.
    sys.stdout = Path(log_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    timer = CallTimer().install()
    spec = StackSpec.model_validate(spec_data)
    source = TimedEventSource(spec.stack(), "WriterFunction", env=spec.handler_env,
                              batching_window_s=batching_window_s, template_path=spec.template_path,
                              timeout_s=timeout_s, batch_size=batch_size)
    if gate is not None:
        _warm_up(source)
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
                        drain_cpu_s=drain_cpu, drain_wall_s=drain_wall, pid=os.getpid())


def _warm_up(source: SqsEventSource) -> None:
    """The handler's cold start (imports, runtime) before the drain, as a warm Lambda container has done it."""
    try:
        invoke(source.stack, source.function_logical_id, {"Records": []}, env=source.env,
               template_path=source.template_path)
    except Exception:  # noqa: BLE001, S110 - an empty batch is refused once imported: that is all it is for
        pass


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
        profile = cProfile.Profile()
        with lock:
            profiles.append(profile)
        sys.setprofile(None)
        profile.enable()  # replaces this hook for the rest of the thread

    main = cProfile.Profile()
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
                idle_polls: int = 3, profile: bool = False, timeout_s: float | None = None,
                cpu_share: float | None = None, batch_size: int | None = None) -> list[WorkerResult]:
    """Drain the queue with ``count`` concurrent writer processes; returns when all found it empty for a while.

    A worker stops after ``idle_polls`` polls in a row found nothing (each waits up to the batching window).
    ``profile``: each worker runs under cProfile and leaves ``writer-<i>.prof`` in ``log_dir``.
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
                               idle_polls, str(log_dir / f"writer-{i}.prof") if profile else None, timeout_s,
                               str(gate.folder) if gate else None, batch_size)
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
