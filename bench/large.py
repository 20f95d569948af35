"""Large single-connection scenarios of issue #16 part 5, on demand (each takes many minutes):

- ``first-load``: a first load of ``--records`` (100k) with Visma answering each page after 0.5–1 s. Poller
  invocations follow one another as the schedule (or a continuation) would start them, until every
  entity's window is complete; reports how many invocations, how long each, records read per invocation,
  then the writers drain and Marketo is verified. With windows that span invocations (resumable windows)
  each invocation continues where the last stopped; without them a window longer than one invocation
  is read again from its start, and the run ends after ``--max-ticks`` ticks incomplete (reported so).
- ``reconcile``: after a first load, ``--deleted`` records are deleted in Visma and ``--drift`` companies
  are edited by hand in Marketo; then ``ml-connector reconcile`` runs against the local stack (through
  the CLI, as a user would) with drift repair on and customers' deletion mode ``delete`` (for the reconcile
  only); reports Visma calls, Marketo calls by kind (read-back, delete, sync), time, and the reconcile's counts
  per entity (drift found, deletions found and acted on) from the CLI's ``--json`` report. Needs the
  reconcile command (issue #16 part 4): where the CLI has none, the scenario says so and stops.

    python -m bench.large first-load [--records 100000] [--page-size 1000]
    python -m bench.large reconcile [--records 100000] [--drift 100] [--deleted 100]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from bench.models import DEFAULT_BUDGET, PipelineSettings
from bench.pipeline import BenchEnvironment
from bench.writers import run_writers
from localrun.environment import TickFailed
from localrun.event_source import DrainStats, SqsEventSource
from ml_connector.config import _connections_from_env
from sandbox.marketo.schema import COMPANY

ROOT = Path(__file__).resolve().parent.parent
HAND_EDITED = "edited by hand in Marketo"
# What the reconcile does with customers gone from Visma: Delete Companies, so Marketo's delete calls are measured
# (suppliers keep the shipped mode, keep). Drift repair on: each page read back from Marketo (Get Companies).
CUSTOMER_DELETIONS = {"mode": "delete"}
MARKETO_CALL_KINDS = ("sync_calls", "query_calls", "delete_calls")


class Invocation(BaseModel):
    seconds: float
    records_read: int
    complete: bool
    visma_calls: int = 0  # every Visma call of the invocation (record pages, payment facts' invoices/balances)
    pages: int = 0  # record pages read
    checkpointed: list[str] = Field(default_factory=list)  # entities whose window continues in the next one


class FirstLoad(BaseModel):
    records: int
    page_size: int
    page_latency_s: tuple[float, float]
    invocations: list[Invocation] = Field(default_factory=list)
    complete: bool = False
    write_seconds: float = 0.0
    verification: str = ""
    tick_failures: list[str] = Field(default_factory=list)  # a tick's failed polls (the ticks go on, as the schedule)


class Reconcile(BaseModel):
    records: int
    drift_seeded: int
    deleted_seeded: int
    available: bool = True
    seconds: float = 0.0
    deletion_mode: str = ""
    drift_repair: bool = True
    visma_calls: int = 0
    marketo_calls: int = 0
    marketo_calls_by_kind: dict[str, int] = Field(default_factory=dict)  # sync, query (read-back), delete
    marketo_records_deleted: int = 0
    entities: list[dict[str, Any]] = Field(default_factory=list)  # per entity: read, sent, the reconcile's counts
    write: dict[str, Any] = Field(default_factory=dict)  # the drain after the reconcile
    problem: str = ""  # the CLI's output tail, only when its report could not be read


def _environment(records: int, page_size: int, latency: tuple[float, float], log_dir: Path) -> BenchEnvironment:
    settings = PipelineSettings(records=records, writers=DEFAULT_BUDGET.concurrency, visma_page_size=page_size,
                                visma_latency_s=latency, marketo_latency_s=(0.2, 0.4), split_emulators=True,
                                emulator_meters=False)
    return BenchEnvironment(settings, DEFAULT_BUDGET, log_dir)


class _TimedPollSource(SqsEventSource):
    """The poll-work event source, noting each poller invocation (a continuation started by the poller
    itself arrives on the same queue and is drained in the same tick)."""

    def __init__(self, *args: Any, invocations: list[Invocation], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.invocations = invocations

    def _deliver(self, messages: list[dict[str, Any]], stats: DrainStats) -> None:
        returned, started = len(stats.results), time.monotonic()
        super()._deliver(messages, stats)
        seconds = time.monotonic() - started
        for result in stats.results[returned:]:
            entities = [e for poll in result.get("polls", []) for e in poll.get("entities", [])]
            self.invocations.append(Invocation(
                seconds=seconds, records_read=sum(e["records_read"] for e in entities),
                complete=bool(entities) and all(e["complete"] for e in entities),
                visma_calls=sum(e["visma_calls"] for e in entities), pages=sum(e["pages"] for e in entities),
                checkpointed=[e["entity"] for e in entities if e["checkpointed"]]))


def first_load(env: BenchEnvironment, max_ticks: int, say: Any = print) -> FirstLoad:
    """Schedule ticks (15 minutes apart in the events, back to back in time) until the load is complete."""
    result = FirstLoad(records=env.settings.records, page_size=env.settings.visma_page_size,
                       page_latency_s=env.settings.visma_latency_s)
    assert env.stack is not None
    stack = env.stack

    def poll_work_source() -> SqsEventSource:  # LocalEnvironment's, timed
        return _TimedPollSource(stack, "PollerFunction", env=env.env(), template_path=stack.template_path,
                                keep_invisible=True, invocations=result.invocations)

    env.poll_work_source = poll_work_source  # type: ignore[method-assign]
    first = datetime.now(UTC)
    for n in range(max_ticks):
        try:
            env.run_poller(at=first + timedelta(minutes=15 * n))
        except TickFailed as failed:
            result.tick_failures.append(f"tick {n + 1}: {failed}")
        say(f"  tick {n + 1}: {len(result.invocations)} invocations so far, last {result.invocations[-1:]}")
        if result.invocations and result.invocations[-1].complete:
            result.complete = True
            break
    started = time.monotonic()
    run_writers(env.spec(), env.settings.writers, env.log_dir / "writers")
    result.write_seconds = time.monotonic() - started
    result.verification = env.verify().summary()
    return result


def seed_drift(env: BenchEnvironment, drift: int, deleted: int) -> None:
    """``drift`` companies edited by hand in Marketo (their name), ``deleted`` customers deleted in Visma (the
    last ones, apart from the edited: a record both edited and deleted is counted only as deleted)."""
    store = env.marketo.store
    with store._lock:  # the sandbox's own table: a hand edit in Marketo's UI, outside the API and its counters
        for row in list(store._tables[COMPANY].rows.values())[:drift]:
            row["company"] = HAND_EDITED
    customers = env.visma.store.records("customer")
    for record in customers[len(customers) - deleted:]:
        env.visma.store.delete("customer", int(record["internalId"]))


def _reconcile_connections(env: dict[str, str], mapping_file: Path) -> str:
    """The stack's one connection (as its environment defines it) with drift repair on and a mapping whose
    customers are deleted in Marketo when gone from Visma; only the reconcile's process sees it, so the first
    load (itself a reconcile, with nothing in Marketo to read back) ran with the defaults."""
    mapping = json.loads(Path(env["MAPPING_FILE"]).read_text())
    mapping["customer"]["deletions"] = CUSTOMER_DELETIONS
    mapping_file.write_text(json.dumps(mapping, indent=1))
    connections = _connections_from_env(env)
    for connection in connections:
        connection.update(drift_repair=True, mapping=str(mapping_file))
    return json.dumps({"connections": connections})


def _cli_report(printed: str) -> dict[str, Any] | None:
    """The CLI's ``--json`` document among the Lambda code's JSON log lines (one line each; it is indented)."""
    start = printed.find('{\n  "poll"')
    if start < 0:
        return None
    document, _ = json.JSONDecoder().raw_decode(printed[start:])
    return document if isinstance(document, dict) else None


def reconcile(env: BenchEnvironment, drift: int, deleted: int, log_dir: Path) -> Reconcile:
    from cli.main import main as cli_main

    result = Reconcile(records=env.settings.records, drift_seeded=drift, deleted_seeded=deleted,
                       deletion_mode=f"customer: {CUSTOMER_DELETIONS['mode']}; supplier: keep (shipped)")
    seed_drift(env, drift, deleted)
    target = env.local_target()
    target.env.update({k: v for k, v in env.aws.env().items() if k.startswith("AWS_ENDPOINT_URL_")})
    target.env["CONNECTIONS_CONFIG"] = _reconcile_connections(target.env, log_dir / "reconcile-mapping.json")
    target_file = log_dir / "target.json"
    target.write(target_file)
    visma_before, marketo_before = env.visma.stats.snapshot(), env.marketo.stats.snapshot()
    printed = io.StringIO()
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            cli_main(["--json", "reconcile", "--target-file", str(target_file)])
    except SystemExit as stop:
        if stop.code == 2 and "invalid choice: 'reconcile'" in printed.getvalue():
            result.available = False
    result.seconds = time.monotonic() - started
    result.visma_calls = env.visma.stats.snapshot()["erp_calls"] - visma_before["erp_calls"]
    marketo_after = env.marketo.stats.snapshot()
    result.marketo_calls = marketo_after["calls_total"] - marketo_before["calls_total"]
    result.marketo_calls_by_kind = {k.removesuffix("_calls"): marketo_after[k] - marketo_before[k]
                                    for k in MARKETO_CALL_KINDS}
    result.marketo_records_deleted = marketo_after["records_deleted"] - marketo_before["records_deleted"]
    report = _cli_report(printed.getvalue())
    if report is None:
        result.problem = printed.getvalue()[-4000:]
        return result
    keep = ("connection", "entity", "full_read", "records_read", "messages_sent", "reconcile", "error")
    result.entities = [{k: e.get(k) for k in keep} for e in report.get("poll", [])]
    result.write = report.get("write", {})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.large", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=["first-load", "reconcile"])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--page-size", type=int, default=1000, help="Visma's page size (1000)")
    parser.add_argument("--page-latency", type=float, nargs=2, default=(0.5, 1.0), metavar=("MIN", "MAX"))
    parser.add_argument("--max-ticks", type=int, default=10, help="schedule ticks at most (10)")
    parser.add_argument("--drift", type=int, default=100, help="companies edited by hand in Marketo (reconcile)")
    parser.add_argument("--deleted", type=int, default=100, help="customers deleted in Visma (reconcile)")
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".bench" / "large")
    args = parser.parse_args(argv)
    args.log_dir.mkdir(parents=True, exist_ok=True)
    with _environment(args.records, args.page_size, tuple(args.page_latency), args.log_dir) as env:
        print(f"first load of {args.records} records ...")
        load = first_load(env, args.max_ticks)
        (args.log_dir / "first-load.json").write_text(load.model_dump_json(indent=1))
        print(load.model_dump_json(indent=1))
        if args.scenario == "reconcile":
            print("reconcile ...")
            result = reconcile(env, args.drift, args.deleted, args.log_dir)
            if not result.available:
                print("this branch has no `ml-connector reconcile` (issue #16 part 4): scenario skipped")
            (args.log_dir / "reconcile.json").write_text(result.model_dump_json(indent=1))
            print(result.model_dump_json(indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
