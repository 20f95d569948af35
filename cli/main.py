"""The ``ml-connector`` command: run, inspect and repair the connector.

Exit codes: 0 success, 1 the command ran but found a problem (a failed check, a mismatch, failed
messages), 2 bad usage or configuration. ``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.target import LOCAL_TARGET_FILE, Target, TargetError, dumps, resolve
from localrun import demo
from ml_connector.config import ConfigError

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2
console = Console()
errors = Console(stderr=True)


# -- helpers ------------------------------------------------------------------------------------
def _table(title: str, columns: Sequence[str], rows: list[Sequence[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    return table


def _emit(args: argparse.Namespace, data: Any, render: Callable[[], None]) -> None:
    if args.json:
        print(dumps(data), file=console.file)
    else:
        render()


def _runtime_and_queues() -> tuple[Any, Any]:
    from ml_connector.queues import SyncQueues
    from ml_connector.runtime import get_runtime

    runtime = get_runtime()
    return runtime, SyncQueues(runtime.settings)


# -- commands -----------------------------------------------------------------------------------
def cmd_status(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.show_status import show_status

    status = show_status(*_runtime_and_queues(), jobs=args.jobs)
    data = status.model_dump()

    def render() -> None:
        console.print(_table(f"Sync state ({target.kind} {target.name})",
                             ["connection", "entity", "watermark", "lag (s)", "last cycle"],
                             [(e.connection, e.entity, e.watermark, e.lag_seconds,
                               _cycle(e.last_cycle)) for e in status.entities]))
        console.print(_table("Recent jobs", ["job", "connection", "object", "status", "records", "created",
                                             "updated", "skipped", "at"],
                             [(j.job_id, j.connection, j.marketo_object, j.status, j.records, j.created,
                               j.updated, j.skipped, j.at) for j in status.recent_jobs]))
        quarantined = ", ".join(f"{k}: {v}" for k, v in status.quarantined.items())
        console.print(f"Queue depth {status.queue_depth} · dead-letter depth {status.dead_letter_depth} · "
                      f"quarantined {quarantined}")

    _emit(args, data, render)
    return EXIT_OK


def _cycle(cycle: dict[str, Any] | None) -> str:
    if not cycle:
        return ""
    return f"read {cycle.get('records_read')}, sent {cycle.get('messages_sent')}, passes {cycle.get('passes')}"


def cmd_replay(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.replay_job import replay_job

    count = replay_job(*_runtime_and_queues(), args.job_id)
    _emit(args, {"job_id": args.job_id, "requeued": count},
          lambda: console.print(f"Job {args.job_id}: {count} messages sent to the sync queue again."))
    return EXIT_OK


def cmd_redrive(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.redrive_dead_letters import redrive_dead_letters

    moved = redrive_dead_letters(_runtime_and_queues()[1], limit=args.limit)
    _emit(args, {"moved": moved}, lambda: console.print(f"Moved {moved} messages from the dead-letter queue."))
    return EXIT_OK


def cmd_quarantine(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.retry_quarantine import list_quarantine, retry_quarantine

    runtime, queues = _runtime_and_queues()
    if args.action == "retry":
        result = retry_quarantine(runtime, queues, args.connection)
        _emit(args, result.model_dump(), lambda: console.print(
            f"Re-queued {result.requeued}; still invalid {result.still_invalid}; "
            f"not retryable {result.not_retryable}."))
        return EXIT_OK if result.still_invalid == 0 else EXIT_PROBLEM
    entries = list_quarantine(runtime, args.connection)
    _emit(args, [e.model_dump(exclude={"raw"}) for e in entries], lambda: console.print(_table(
        f"Quarantined records ({len(entries)})", ["connection", "entity", "ref", "stage", "reason", "at"],
        [(e.connection, e.entity, e.ref, e.stage, e.reason, e.at) for e in entries])))
    return EXIT_OK


def cmd_preview(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.runtime import get_runtime
    from ml_connector.usecases.preview_changes import preview_changes

    reports, items = preview_changes(get_runtime(), args.connection and [args.connection])
    counts = {a: sum(1 for i in items if i.action == a) for a in ("create", "update", "unchanged")}
    data = {"counts": counts, "items": [i.model_dump() for i in items], "poll": [r.model_dump() for r in reports]}

    def render() -> None:
        shown = [i for i in items if i.action != "unchanged"][: args.limit]
        console.print(_table(f"Preview: {counts['create']} to create, {counts['update']} to update, "
                             f"{counts['unchanged']} unchanged (nothing written)",
                             ["action", "entity", "internalId", "key", "changes (before → after)"],
                             [(i.action, i.entity, i.internal_id, i.key,
                               "; ".join(f"{f}: {c.before!r} → {c.after!r}" for f, c in i.changes.items()))
                              for i in shown]))

    _emit(args, data, render)
    return EXIT_PROBLEM if any(r.error for r in reports) else EXIT_OK


def cmd_sync(args: argparse.Namespace, target: Target | None) -> int:
    if target is None:
        return _sync_sandboxes(args)
    from ml_connector.deadline import NO_DEADLINE
    from ml_connector.usecases.drain_queue import drain_queue
    from ml_connector.usecases.run_poll_cycle import run_poll_cycle

    runtime, queues = _runtime_and_queues()
    with console.status("Polling Visma ..."):
        cycle = run_poll_cycle(runtime, NO_DEADLINE)
    reports = cycle.entities
    with Progress(TextColumn("Writing to Marketo"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=args.json) as progress:
        task = progress.add_task("write", total=queues.depth() or None)
        drained = drain_queue(runtime, queues, on_batch=lambda n: progress.advance(task, n))
    data = {"poll": [r.model_dump() for r in reports], "reference": [r.model_dump() for r in cycle.reference],
            "requeued_after_quota_reset": cycle.requeued_after_quota_reset, "write": drained.model_dump()}
    _emit(args, data, lambda: console.print(
        f"Read {sum(r.records_read for r in reports)} records, sent {sum(r.messages_sent for r in reports)} "
        f"messages; wrote {drained.created} created, {drained.updated} updated, {drained.skipped} skipped, "
        f"{drained.failed} failed."))
    errors_seen = bool(cycle.failures())
    return EXIT_PROBLEM if drained.failed or errors_seen else EXIT_OK


def _sync_sandboxes(args: argparse.Namespace) -> int:
    from localrun.environment import LocalEnvironment

    with console.status("Starting local AWS and the sandboxes ..."), LocalEnvironment(
            seed=args.seed, customers=args.customers, suppliers=args.suppliers) as env:
        report = env.cycle("Cycle")
        check = env.verify()
    _emit(args, {"cycle": {k: v for k, v in report.__dict__.items() if k != "drain"}, "verified": check.ok},
          lambda: console.print(f"{report.line()}\n{check.summary()}"))
    return EXIT_OK if check.ok else EXIT_PROBLEM


def cmd_local_up(args: argparse.Namespace) -> int:
    from localrun.environment import LocalEnvironment

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with LocalEnvironment(seed=args.seed, customers=args.customers, suppliers=args.suppliers) as env:
        env.local_target().write()
        console.print(f"Local stack up: AWS (moto) {env.aws.endpoint_url}, Visma {env.visma.url}, "
                      f"Marketo {env.marketo.url}. Target written to {LOCAL_TARGET_FILE}. Ctrl-C stops it.")
        stop.wait()
    LOCAL_TARGET_FILE.unlink(missing_ok=True)
    return EXIT_OK


def cmd_ping(args: argparse.Namespace) -> int:
    from cli.ping import run_checks

    checks = run_checks(args.credentials)
    _emit(args, [c.model_dump() for c in checks], lambda: console.print(_table(
        "Connectivity", ["check", "result", "detail"],
        [(c.name, "PASS" if c.ok else "FAIL", c.detail) for c in checks])))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_PROBLEM


# -- parser -------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ml-connector", description="Visma.net ERP → Marketo Engage connector")
    parser.add_argument("--json", action="store_true", help="print one JSON document (for scripts)")
    where = argparse.ArgumentParser(add_help=False)
    where.add_argument("--stack", help="a deployed stack's name (default: the running `ml-connector local up`)")
    where.add_argument("--region", help="AWS region of --stack")
    where.add_argument("--target-file", help=argparse.SUPPRESS)
    seeded = argparse.ArgumentParser(add_help=False)
    seeded.add_argument("--seed", type=int, default=7)
    seeded.add_argument("--customers", type=int, default=2000)
    seeded.add_argument("--suppliers", type=int, default=500)

    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="what `make demo` runs: two cycles against local sandboxes, then verify",
                   add_help=False)
    sync = sub.add_parser("sync", parents=[where, seeded], help="one full cycle: poll, then drain the queue")
    sync.add_argument("--once", action="store_true", required=True, help="run one cycle and exit")
    sync.add_argument("--sandboxes", action="store_true",
                      help="against fresh in-process sandboxes (the default when no stack is named or running)")
    ping = sub.add_parser("ping", help="check credentials and reachability of Visma and Marketo")
    ping.add_argument("--credentials", help="JSON file with real credentials (default: the sandboxes)")
    status = sub.add_parser("status", parents=[where], help="watermarks, lag, jobs, quarantine, DLQ depth")
    status.add_argument("--jobs", type=int, default=5)
    replay = sub.add_parser("replay", parents=[where], help="send a failed job's messages to the queue again")
    replay.add_argument("job_id")
    redrive = sub.add_parser("redrive", parents=[where], help="move dead-letter messages back to the queue")
    redrive.add_argument("--limit", type=int)
    quarantine = sub.add_parser("quarantine", parents=[where], help="list or retry quarantined records")
    quarantine.add_argument("action", choices=["list", "retry"])
    quarantine.add_argument("--connection")
    preview = sub.add_parser("preview", parents=[where], help="what the next cycle would write (writes nothing)")
    preview.add_argument("--connection")
    preview.add_argument("--limit", type=int, default=50)
    local = sub.add_parser("local", help="a long-running local stack other commands can target")
    local.add_argument("action", choices=["up"])
    local.add_argument("--seed", type=int, default=7)
    local.add_argument("--customers", type=int, default=2000)
    local.add_argument("--suppliers", type=int, default=500)
    return parser


TARGETED: dict[str, Callable[[argparse.Namespace, Target], int]] = {
    "status": cmd_status, "replay": cmd_replay, "redrive": cmd_redrive, "quarantine": cmd_quarantine,
    "preview": cmd_preview,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        return demo.main(argv[1:])
    args = _parser().parse_args(argv)
    # Handlers run in-process print their logs and EMF metrics to stdout, as in Lambda; the command's
    # own output keeps stdout to itself (so --json stays parseable) and the rest goes to stderr.
    console.file = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr), _no_metric_carryover():
            return _dispatch(args)
    except (ConfigError, TargetError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        return EXIT_USAGE
    except Exception as exc:  # an operator deserves one clear line, not a traceback of our internals
        from ml_connector.queues import OperationError

        if isinstance(exc, OperationError):
            errors.print(f"[red]error:[/red] {exc}")
            return EXIT_PROBLEM
        raise


@contextlib.contextmanager
def _no_metric_carryover() -> Any:
    """Commands that run the domain code in-process add to Powertools' shared metric set, which only a
    Lambda handler flushes; dropping them here keeps them out of the next handler's EMF document."""
    try:
        yield
    finally:
        from ml_connector.observability import metrics

        metrics.clear_metrics()


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "local":
        return cmd_local_up(args)
    if args.command == "ping":
        return cmd_ping(args)
    if args.command == "sync":
        target = _optional_target(args)
        if target is None:
            return cmd_sync(args, None)
        with target.applied():
            return cmd_sync(args, target)
    target = resolve(args.stack, args.region, args.target_file)
    with target.applied():
        return TARGETED[args.command](args, target)


def _optional_target(args: argparse.Namespace) -> Target | None:
    if args.sandboxes:
        return None
    if args.stack or args.target_file or LOCAL_TARGET_FILE.exists():
        return resolve(args.stack, args.region, args.target_file)
    return None


if __name__ == "__main__":
    sys.exit(main())
