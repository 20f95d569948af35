"""The ``ml-connector`` command: run, inspect and repair the connector.

Exit codes: 0 success, 1 the command ran but found a problem (a failed check, a mismatch, failed
messages), 2 bad usage or configuration. ``--json`` prints one JSON document for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.errors import explain
from cli.target import LOCAL_TARGET_FILE, Target, dumps, resolve
from localrun import demo

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
    if _json(args):
        print(dumps(data), file=console.file)
    else:
        render()


def _json(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "json", False))


def _checks_table(title: str, checks: Sequence[Any]) -> Table:
    return _table(title, ["connection", "check", "result", "detail", "what to do"],
                  [(c.connection or "", c.name, "PASS" if c.ok else "FAIL", c.detail, c.advice or "")
                   for c in checks])


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
                             ["connection", "entity", "watermark", "lag (s)", "last cycle", "last reconcile"],
                             [(e.connection, e.entity, e.watermark, e.lag_seconds, _cycle(e.last_cycle),
                               _reconcile(e.last_reconcile, e.reconcile_requested)) for e in status.entities]))
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


def _reconcile(last: str | None, requested: bool) -> str:
    return f"{last or 'never'}{' (one requested)' if requested else ''}"


def cmd_replay(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.replay_job import replay_job

    count = replay_job(*_runtime_and_queues(), args.job_id)
    _emit(args, {"job_id": args.job_id, "requeued": count},
          lambda: console.print(f"Job {args.job_id}: {count} messages sent to the sync queue again."))
    return EXIT_OK


def cmd_redrive(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.redrive_dead_letters import redrive_dead_letters, redrive_progress

    queues = _runtime_and_queues()[1]
    if args.progress:
        tasks = redrive_progress(queues)
        _emit(args, [t.model_dump() for t in tasks], lambda: console.print(_table(
            "Dead-letter move tasks (newest first)", ["status", "moved", "to move", "started", "failure"],
            [(t.status, t.moved, t.to_move, t.started, t.failure) for t in tasks])))
        return EXIT_OK
    task = redrive_dead_letters(queues, rate=args.rate)
    while args.wait and task.status in ("RUNNING", "CANCELLING"):
        time.sleep(2)
        task = redrive_progress(queues)[0]
    _emit(args, task.model_dump(), lambda: console.print(
        f"{task.method}: {task.status}, {task.moved} moved"
        + (f" of {task.to_move}" if task.to_move is not None else "")
        + (f"; {task.failure}" if task.failure else "")
        + ("; follow it with `ml-connector redrive --progress`" if task.status == "RUNNING" else "")))
    return EXIT_PROBLEM if task.status in ("FAILED", "CANCELLED") else EXIT_OK


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
    if target.kind == "stack":
        return _sync_deployed(args, target)
    from ml_connector.deadline import NO_DEADLINE
    from ml_connector.usecases.drain_queue import drain_queue
    from ml_connector.usecases.run_poll_cycle import run_poll_cycle

    runtime, queues = _runtime_and_queues()
    with console.status("Polling Visma ..."):
        cycle = run_poll_cycle(runtime, NO_DEADLINE, args.connection and [args.connection])
    reports = cycle.entities
    with Progress(TextColumn("Writing to Marketo"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=_json(args)) as progress:
        task = progress.add_task("write", total=queues.depth() or None)
        drained = drain_queue(runtime, queues, on_batch=lambda n: progress.advance(task, n))
    data = {"poll": [r.model_dump() for r in reports], "reference": [r.model_dump() for r in cycle.reference],
            "requeued_after_quota_reset": cycle.requeued_after_quota_reset, "write": drained.model_dump()}
    _emit(args, data, lambda: console.print(
        f"Read {sum(r.records_read for r in reports)} records, queued {sum(r.messages_sent for r in reports)}; "
        f"wrote {drained.created} created, {drained.updated} updated, {drained.skipped} skipped, "
        f"{drained.failed} failed."))
    errors_seen = bool(cycle.failures())
    return EXIT_PROBLEM if drained.failed or errors_seen else EXIT_OK


def cmd_reconcile(args: argparse.Namespace, target: Target) -> int:
    """Flag a full reconcile and run it now: in-process on the local stack (then drain), or by invoking the
    deployed poller (its writers drain in Lambda). Prints what each reconcile found and did."""
    from ml_connector.deadline import NO_DEADLINE
    from ml_connector.usecases.reconcile import reconcile_now, request_reconcile

    runtime, queues = _runtime_and_queues()
    connections, entities = args.connection or [], args.entity or []
    data: dict[str, Any]
    if target.kind == "stack":
        from cli.remote import invoke_poller, lambda_client

        request_reconcile(runtime, connections, entities)
        with console.status("Running the deployed poller ..."):
            data = invoke_poller(lambda_client(target.region), target.functions["PollerFunction"], connections or None)
        reports = data.get("entities", [])
    else:
        with console.status("Reading Visma in full ..."):
            cycle = reconcile_now(runtime, NO_DEADLINE, connections, entities)
        drained = _drain_local(runtime, queues)
        reports = [r.model_dump() for r in cycle.entities]
        data = {"poll": reports, "not_polled": cycle.not_polled, "write": drained.model_dump()}
    full = [r for r in reports if r.get("full_read")]

    def render() -> None:
        console.print(_table(
            f"Reconcile ({target.kind} {target.name})",
            ["connection", "entity", "read", "sent", "gone from Visma", "kept", "flagged", "deleted in Marketo",
             "already gone", "delete failed", "reappeared", "drifted", "error"],
            [(r.get("connection"), r.get("entity"), r.get("records_read"), r.get("messages_sent"),
              *(r.get("reconcile", {}).get(k, 0) for k in ("deleted_in_visma", "kept", "flagged",
                                                            "deleted_in_marketo", "already_gone", "delete_failed",
                                                            "reappeared", "drifted")),
              r.get("error")) for r in full]))
        if len(full) < len({(r.get("connection"), r.get("entity")) for r in reports}) or data.get("not_polled"):
            console.print("Some entities were not read in full now (another poll held the connection, or time ran "
                          "out); the request stays and their next poll reconciles them.")

    _emit(args, data, render)
    return EXIT_PROBLEM if any(r.get("error") for r in reports) or data.get("not_polled") else EXIT_OK


def _drain_local(runtime: Any, queues: Any) -> Any:
    from ml_connector.usecases.drain_queue import drain_queue

    with console.status("Writing to Marketo ..."):
        return drain_queue(runtime, queues)


def _sync_deployed(args: argparse.Namespace, target: Target) -> int:
    from cli.remote import invoke_poller, lambda_client

    function = target.functions["PollerFunction"]
    with console.status(f"Running the poller {function} ..."):
        report = invoke_poller(lambda_client(target.region), function, args.connection and [args.connection])
    entities = report.get("entities", [])

    def render() -> None:
        console.print(_table(
            f"Poll of stack {target.name} (the writers drain the queue in Lambda)",
            ["connection", "entity", "read", "sent", "already in Marketo", "quarantined", "complete", "error"],
            [(e.get("connection"), e.get("entity"), e.get("records_read"), e.get("messages_sent"),
              e.get("already_in_marketo"), e.get("quarantined"), e.get("complete"), e.get("error")) for e in entities]))
        console.print(f"Read {sum(e.get('records_read', 0) for e in entities)} records, sent "
                      f"{sum(e.get('messages_sent', 0) for e in entities)} messages; "
                      f"{report.get('requeued_after_quota_reset', 0)} re-queued after a quota reset.")

    _emit(args, report, render)
    return EXIT_PROBLEM if any(e.get("error") for e in entities) else EXIT_OK


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


def cmd_ping(args: argparse.Namespace, target: Target | None) -> int:
    if target is None:
        from cli.ping import run_checks

        checks = run_checks(args.credentials)
    else:
        from ml_connector.runtime import get_runtime
        from ml_connector.usecases.check_connectivity import check_connection

        runtime = get_runtime()
        checks = [c for conn in runtime.connections() for c in check_connection(runtime, conn)]
    _emit(args, [c.model_dump() for c in checks], lambda: console.print(_checks_table("Connectivity", checks)))
    return EXIT_OK if all(c.ok for c in checks) else EXIT_PROBLEM


def cmd_runs(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.runtime import get_runtime
    from ml_connector.usecases.list_runs import list_runs

    runs = list_runs(get_runtime(), last=args.last, connection=args.connection)
    _emit(args, [{**r.model_dump(), "seconds": r.seconds} for r in runs], lambda: console.print(_table(
        f"Poll cycles ({target.kind} {target.name}), newest first",
        ["connection", "started", "seconds", "read", "sent", "re-queued", "errors", "first error"],
        [(r.connection, r.started, r.seconds, r.records_read, r.messages_sent, r.requeued, r.errors, r.error)
         for r in runs])))
    return EXIT_OK


def cmd_doctor(args: argparse.Namespace, target: Target) -> int:
    from ml_connector.usecases.check_deployment import check_deployment

    with console.status("Checking the stack ..."):
        checks = check_deployment(*_runtime_and_queues(), target.stack_name)
    failed = [c for c in checks if not c.ok]
    def render() -> None:
        console.print(_checks_table(f"Doctor ({target.kind} {target.stack_name})", checks))
        console.print(f"{len(failed)} check(s) failed." if failed else "All checks passed.")

    _emit(args, {"ok": not failed, "checks": [c.model_dump() for c in checks]}, render)
    return EXIT_PROBLEM if failed else EXIT_OK


# -- parser -------------------------------------------------------------------------------------
def _version() -> str:
    try:
        return importlib.metadata.version("ml-connector")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    # --json is accepted before or after the subcommand (as with aws and sam): SUPPRESS keeps a subcommand's
    # unset default from overwriting a --json given before it.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print one JSON document on stdout (for scripts)")
    parser = argparse.ArgumentParser(prog="ml-connector", parents=[output],
                                     description="Visma.net ERP → Marketo Engage connector: run, inspect and "
                                                 "repair a deployed or local stack.",
                                     epilog="Exit codes: 0 ok, 1 a problem was found, 2 usage or configuration "
                                            "error.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}",
                        help="print the installed version and exit")
    where = argparse.ArgumentParser(add_help=False, parents=[output])
    where.add_argument("--stack", metavar="NAME",
                       help="a deployed stack's name (default: the running `ml-connector local up`)")
    where.add_argument("--region", metavar="REGION", help="AWS region of --stack (default: your AWS configuration's)")
    where.add_argument("--target-file", metavar="FILE", help=argparse.SUPPRESS)
    seeded = argparse.ArgumentParser(add_help=False)
    seeded.add_argument("--seed", type=int, default=7, help="sandbox data seed (default: 7)")
    seeded.add_argument("--customers", type=int, default=2000, help="sandbox customers (default: 2000)")
    seeded.add_argument("--suppliers", type=int, default=500, help="sandbox suppliers (default: 500)")
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument("--connection", metavar="ID", help="only this connection (default: all)")

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("demo", help="what `make demo` runs: two cycles against local sandboxes, then verify",
                   add_help=False)
    sync = sub.add_parser("sync", parents=[where, seeded, connection],
                          help="one cycle: with --stack, run the deployed poller Lambda (the writers drain in "
                               "Lambda); else poll and drain the local stack in-process")
    sync.add_argument("--once", action="store_true", required=True, help="run one cycle and exit")
    sync.add_argument("--sandboxes", action="store_true",
                      help="against fresh in-process sandboxes (the default when no stack is named or running)")
    ping = sub.add_parser("ping", parents=[where], help="check credentials and reachability of Visma and Marketo")
    ping.add_argument("--credentials", metavar="FILE",
                      help="JSON file with credentials to try (default: the stack's secrets with --stack, "
                           "else the sandboxes)")
    status = sub.add_parser("status", parents=[where], help="watermarks, lag, jobs, quarantine, DLQ depth")
    status.add_argument("--jobs", type=int, default=5, metavar="N", help="recent jobs to show (default: 5)")
    runs = sub.add_parser("runs", parents=[where, connection],
                          help="the last poll cycles per connection: counts and durations")
    runs.add_argument("--last", type=int, default=10, metavar="N", help="cycles per connection (default: 10)")
    sub.add_parser("doctor", parents=[where],
                   help="check the stack end to end (credentials, Marketo fields, schedule, queues, "
                        "alarms) and say what to fix")
    replay = sub.add_parser("replay", parents=[where], help="send a failed job's messages to the queue again")
    replay.add_argument("job_id", metavar="JOB_ID", help="the job's ID (from `status`, the logs or the quarantine)")
    redrive = sub.add_parser("redrive", parents=[where],
                             help="move dead-letter messages back to the queue (an SQS message-move task)")
    redrive.add_argument("--rate", type=int, metavar="N", help="at most N messages per second (default: SQS's)")
    redrive.add_argument("--wait", action="store_true", help="wait until the move task finishes")
    redrive.add_argument("--progress", action="store_true", help="show the recent move tasks; start none")
    quarantine = sub.add_parser("quarantine", parents=[where, connection], help="list or retry quarantined records")
    quarantine.add_argument("action", choices=["list", "retry"],
                            help="list: records and reasons; retry: re-send those whose cause is fixed")
    preview = sub.add_parser("preview", parents=[where, connection],
                             help="what the next cycle would write (writes nothing)")
    preview.add_argument("--limit", type=int, default=50, metavar="N", help="changes to show (default: 50)")
    reconcile = sub.add_parser("reconcile", parents=[where],
                               help="read Visma in full now: re-send what differs, handle records deleted in "
                                    "Visma (the mapping's deletions mode), repair drift where enabled")
    reconcile.add_argument("--connection", metavar="ID", action="append",
                           help="only this connection (repeatable; default: all)")
    reconcile.add_argument("--entity", choices=["customer", "supplier", "contact"], action="append",
                           help="only this entity (repeatable; default: every entity the connection syncs)")
    local = sub.add_parser("local", parents=[output], help="a long-running local stack other commands can target")
    local.add_argument("action", choices=["up"], help="up: start it and keep it running until Ctrl-C")
    for option, default in (("--seed", 7), ("--customers", 2000), ("--suppliers", 500)):
        local.add_argument(option, type=int, default=default, help=f"sandbox {option[2:]} (default: {default})")
    return parser


TARGETED: dict[str, Callable[[argparse.Namespace, Target], int]] = {
    "status": cmd_status, "replay": cmd_replay, "redrive": cmd_redrive, "quarantine": cmd_quarantine,
    "preview": cmd_preview, "runs": cmd_runs, "doctor": cmd_doctor, "reconcile": cmd_reconcile,
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
    except Exception as exc:  # an operator deserves one clear line, not a traceback of our internals
        explained = explain(exc)
        if explained is None:
            raise
        code, line = explained
        errors.print(f"[red]error:[/red] {line}", markup=True, highlight=False, soft_wrap=True)
        return code


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
    if args.command in ("ping", "sync"):
        # Without a target, ping tries the sandboxes (or --credentials) and sync runs fresh sandboxes.
        command = cmd_ping if args.command == "ping" else cmd_sync
        target = _optional_target(args)
        if target is None:
            return command(args, None)
        with target.applied():
            return command(args, target)
    target = resolve(args.stack, args.region, args.target_file)
    with target.applied():
        return TARGETED[args.command](args, target)


def _optional_target(args: argparse.Namespace) -> Target | None:
    if args.command == "ping":
        named = (args.stack or args.target_file) and not args.credentials
        return resolve(args.stack, args.region, args.target_file) if named else None
    if args.sandboxes:
        return None
    if args.stack or args.target_file or LOCAL_TARGET_FILE.exists():
        return resolve(args.stack, args.region, args.target_file)
    return None


if __name__ == "__main__":
    sys.exit(main())
