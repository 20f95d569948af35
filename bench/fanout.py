"""Fan-out at scale (issue #16, part 5): many connections on one local stack, all polled within one interval.

``connections`` connections pair Visma companies (sandboxes of their own, each its own company and data)
with Marketo instances (sandboxes with their own Munchkin ids), every pair distinct. One schedule tick: the
dispatcher queues one poll-work message per due connection; as many poller processes as the template's
PollerMaximumConcurrency drain them (each a Lambda execution environment, a poll per message); then the
writer processes (as many as the writer's MaximumConcurrency: 2 × MarketoMaxConcurrentCalls) drain the writes.
Lag per connection is the time from the tick to the end of its poll. DynamoDB and SQS run on emulator
processes of their own (``bench.emulators``).

    python -m bench.fanout [--connections 200] [--companies 20] [--instances 10] [--records 25]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bench.calltimer import CallTimer, by_service, merge
from bench.models import DEFAULT_BUDGET, PipelineSettings
from bench.pipeline import BenchEnvironment
from bench.remote import StackSpec
from bench.run import machine
from bench.template_defaults import writer_concurrency
from bench.writers import run_writers
from localrun.environment import STACK_NAME
from localrun.event_source import DrainStats, SqsEventSource
from localrun.lambda_runtime import invoke
from localrun.sam_template import load_template
from sandbox.marketo import MarketoSandbox
from sandbox.visma import VismaSandbox

ROOT = Path(__file__).resolve().parent.parent
SUPPLIER_SHARE = 5  # one record in five a supplier


class FanoutSettings(BaseModel):
    connections: int = 200
    companies: int = 20
    instances: int = 10
    records: int = 25  # per Visma company
    visma_latency_s: tuple[float, float] = (0.05, 0.1)
    marketo_latency_s: tuple[float, float] = (0.2, 0.4)


class PollDone(BaseModel):
    connection: str
    finished_at: float  # epoch seconds
    seconds: float = 0.0  # the poller invocation's wall time
    records_read: int
    complete: bool
    failures: list[str] = Field(default_factory=list)


class FanoutResult(BaseModel):
    date: str
    machine: dict[str, str]
    settings: FanoutSettings
    schedule_seconds: int
    poller_concurrency: int
    writer_concurrency: int
    dispatched: int = 0
    polls: list[PollDone] = Field(default_factory=list)
    poll_phase_seconds: float = 0.0
    poller_calls: dict[str, Any] = Field(default_factory=dict)  # bench.calltimer summary of the poller processes
    poller_cpu_seconds: float = 0.0
    write_phase_seconds: float = 0.0
    records_written: int = 0  # companies Marketo created or updated
    messages_written: int = 0  # SQS messages (packs of up to 300 records) the writers consumed
    ideal_sync_calls: int = 0
    marketo_sync_calls: int = 0  # createOrUpdate calls over every instance (companies)
    writer_failures: int = 0
    verified_connections: int = 0
    mismatched_connections: list[str] = Field(default_factory=list)

    def lag_seconds(self, tick: float) -> list[float]:
        return sorted(p.finished_at - tick for p in self.polls)


class _TimedPolls(SqsEventSource):
    """The poll-work event source, noting when each connection's poll ended."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.done: list[PollDone] = []

    def _deliver(self, messages: list[dict[str, Any]], stats: DrainStats) -> None:
        results, started = len(stats.results), time.time()
        super()._deliver(messages, stats)
        finished = time.time()
        for result in stats.results[results:]:
            for poll in result.get("polls", []):
                entities = poll.get("entities", [])
                failures = [f"{e.get('entity')}: {e['error']}" for e in entities if e.get("error")]
                self.done.append(PollDone(
                    connection=poll["connection"], finished_at=finished, seconds=finished - started,
                    records_read=sum(int(e.get("records_read", 0)) for e in entities),
                    complete=bool(entities) and all(e.get("complete") for e in entities),
                    failures=failures + ([poll["error"]] if poll.get("error") else [])))


def _poller_worker(spec_data: dict[str, Any], log_path: str) -> tuple[list[dict[str, Any]], dict[str, Any], float]:
    """(polls done, AWS/HTTP call times, this process's CPU seconds)."""
    sys.stdout = Path(log_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    timer = CallTimer().install()
    spec = StackSpec.model_validate(spec_data)
    source = _TimedPolls(spec.stack(), "PollerFunction", env=spec.handler_env, template_path=spec.template_path,
                         keep_invisible=True)
    cpu = time.process_time()
    source.drain(idle_polls=3)
    sys.stdout.flush()
    return [d.model_dump() for d in source.done], timer.summary(), time.process_time() - cpu


def _template_default(name: str) -> int:
    return int(load_template(ROOT / "template.yaml")["Parameters"][name]["Default"])


def _schedule_seconds() -> int:
    rate = str(load_template(ROOT / "template.yaml")["Parameters"]["ScheduleRate"]["Default"])  # rate(15 minutes)
    amount, unit = rate.removeprefix("rate(").removesuffix(")").split()
    return int(amount) * {"minute": 60, "minutes": 60, "hour": 3600, "hours": 3600}[unit]


def run(settings: FanoutSettings, log_dir: Path, say: Any = print) -> tuple[FanoutResult, float]:
    """One tick over every connection; returns the result and the tick's epoch time."""
    pollers = _template_default("PollerMaximumConcurrency")
    writers = writer_concurrency(_template_default("MarketoMaxConcurrentCalls"))
    result = FanoutResult(date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
                          settings=settings, schedule_seconds=_schedule_seconds(), poller_concurrency=pollers,
                          writer_concurrency=writers)
    customers = settings.records - settings.records // SUPPLIER_SHARE
    pipeline = PipelineSettings(records=settings.records, writers=writers, visma_latency_s=settings.visma_latency_s,
                                marketo_latency_s=settings.marketo_latency_s, split_emulators=True,
                                emulator_meters=False)
    with BenchEnvironment(pipeline, DEFAULT_BUDGET, log_dir) as env, ExitStack() as sandboxes:
        companies = [env.visma] + [sandboxes.enter_context(VismaSandbox(
            seed=100 + i, customers=customers, suppliers=settings.records - customers, company_id=f"{3000000 + i}",
            latency=settings.visma_latency_s)) for i in range(1, settings.companies)]
        instances = [env.marketo] + [sandboxes.enter_context(MarketoSandbox(
            munchkin_id=f"{300 + i:03d}-FAN-{i:03d}", latency=settings.marketo_latency_s))
            for i in range(1, settings.instances)]
        pairs = [(c, m) for m in range(len(instances)) for c in range(len(companies))][1:settings.connections]
        say(f"{settings.connections} connections over {len(companies)} Visma companies and "
            f"{len(instances)} Marketo instances ...")
        mapping = env.env()["MAPPING_FILE"]
        # One API user per Marketo instance, as an agency sets it up: connections on an instance share its secret,
        # so the writers can merge their records into the same calls.
        secrets = {0: env.resource("MarketoCredentialsSecret")}
        for n, (c, m) in enumerate(pairs, start=1):
            env.add_connection(f"fan{n:03d}", companies[c], instances[m], mapping=mapping,
                               marketo_secret_id=secrets.get(m))
            secrets.setdefault(m, f"{STACK_NAME}/fan{n:03d}/marketo")
        assert env.stack is not None
        spec = StackSpec.of(env.stack, env.env())
        tick = time.time()
        with env._captured():
            dispatched = invoke(env.stack, "DispatcherFunction", env.schedule_event(datetime.fromtimestamp(tick, UTC)),
                                env=env.env(), template_path=env.stack.template_path)
        result.dispatched = len(dispatched.get("due", [])) if isinstance(dispatched, dict) else 0
        say(f"tick: {result.dispatched} polls queued; {pollers} poller processes ...")
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=pollers, mp_context=context) as pool:
            futures = [pool.submit(_poller_worker, spec.model_dump(), str(log_dir / f"poller-{i}.log"))
                       for i in range(pollers)]
            answers = [f.result() for f in futures]
        result.polls = [PollDone.model_validate(d) for done, _, _ in answers for d in done]
        result.poller_calls = merge([calls for _, calls, _ in answers])
        result.poller_cpu_seconds = sum(cpu for _, _, cpu in answers)
        result.poll_phase_seconds = time.time() - tick
        say(f"polled {len(result.polls)} in {result.poll_phase_seconds:.0f} s; {writers} writer processes ...")
        started = time.time()
        workers = run_writers(spec, writers, log_dir / "writers")
        result.write_phase_seconds = time.time() - started
        result.writer_failures = sum(w.failed + w.handler_errors for w in workers)
        result.messages_written = sum(w.succeeded for w in workers)
        companies_by_instance = [m.stats.snapshot()["by_object"].get("companies", {}) for m in instances]
        result.records_written = sum(int(c.get("records_created", 0)) + int(c.get("records_updated", 0))
                                     for c in companies_by_instance)
        result.marketo_sync_calls = sum(int(c.get("sync_calls", 0)) for c in companies_by_instance)
        # Ideal: one call per 300 companies an instance received (the instance's connections share its API user).
        result.ideal_sync_calls = sum(-(-(int(c.get("records_created", 0)) + int(c.get("records_updated", 0))) // 300)
                                      for c in companies_by_instance)
        for n in range(settings.connections):
            connection = None if n == 0 else f"fan{n:03d}"
            # Other connections' records share the Marketo instance: "unexpected" ones are theirs.
            check = env.verify(connection)
            if check.missing or check.mismatched or check.duplicates:
                result.mismatched_connections.append(f"{connection or 'default'}: {check.summary()[:300]}")
            else:
                result.verified_connections += 1
    return result, tick


def render(result: FanoutResult, tick: float) -> str:
    lags = result.lag_seconds(tick)
    polled = {p.connection for p in result.polls if p.complete and not p.failures}
    within = sum(1 for lag in lags if lag <= result.schedule_seconds)
    s = result.settings
    median = statistics.median(lags) if lags else 0.0
    return "\n".join([
        "## Fan-out: many connections on one stack", "",
        f"Run {result.date} on {result.machine.get('cores')} cores, `python -m bench.fanout`: {s.connections} "
        f"connections ({s.companies} Visma companies × {s.instances} Marketo instances, {s.records} records each), "
        f"Visma latency {s.visma_latency_s[0]:g}–{s.visma_latency_s[1]:g} s, Marketo "
        f"{s.marketo_latency_s[0]:g}–{s.marketo_latency_s[1]:g} s; {result.poller_concurrency} poller processes "
        f"(PollerMaximumConcurrency), {result.writer_concurrency} writers; DynamoDB and SQS on emulator processes "
        "of their own.", "",
        "| Polls queued | Polled completely | Within one interval | Lag median / max | Poll phase | Write phase "
        "| Companies written | Messages | Company sync calls (ideal) | Writer failures | Connections verified |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {result.dispatched} | {len(polled)} | {within} of {s.connections} within {result.schedule_seconds} s | "
        f"{median:.0f} s / {max(lags, default=0.0):.0f} s | {result.poll_phase_seconds:.0f} s | "
        f"{result.write_phase_seconds:.0f} s | {result.records_written} | {result.messages_written} | "
        f"{result.marketo_sync_calls} ({result.ideal_sync_calls}) | "
        f"{result.writer_failures} | "
        f"{result.verified_connections} of {s.connections} |", "",
        "Lag: from the tick to the end of the connection's poll (the connection's window read and sent).", "",
        _poll_time_line(result),
    ]) + "\n"


def _poll_time_line(result: FanoutResult) -> str:
    polls = max(len(result.polls), 1)
    spent = sorted(by_service(result.poller_calls).items(), key=lambda kv: -kv[1][1])
    calls = ", ".join(f"{name} {n / polls:.1f} calls / {seconds / polls:.2f} s" for name, (n, seconds) in spent)
    wall = sum(p.seconds for p in result.polls) / polls
    return (f"Per poll (mean over {len(result.polls)}): {wall:.2f} s wall, {result.poller_cpu_seconds / polls:.2f} s "
            "of poller CPU (the processes' CPU over their polls); "
            f"calls and the wall time in them: {calls}.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--companies", type=int, default=20, help="Visma companies (sandboxes)")
    parser.add_argument("--instances", type=int, default=10, help="Marketo instances (sandboxes)")
    parser.add_argument("--records", type=int, default=25, help="records per Visma company")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks-fanout.md")
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".bench" / "fanout")
    args = parser.parse_args(argv)
    if args.connections > args.companies * args.instances:
        parser.error("--connections: at most companies × instances (every pair distinct)")
    settings = FanoutSettings(connections=args.connections, companies=args.companies, instances=args.instances,
                              records=args.records)
    result, tick = run(settings, args.log_dir)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    (args.log_dir / "fanout.json").write_text(result.model_dump_json(indent=1))
    args.output.write_text(render(result, tick))
    print(render(result, tick))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
