"""Convergence under faults: the project's proof that nothing is lost and nothing is duplicated.

Cycle after cycle, the Visma sandbox changes at random (edits, inserts, status changes, payments) while
faults are switched on at random on every side:

- Visma: 5xx, 429 with Retry-After, read timeouts, expired tokens, records edited while a poll pages,
  an outage long enough to crash the poller mid-window, a served row deleted while another enters the
  window (the count kept), writes stamped half an hour late, a customer with a balance renumbered;
- Marketo: 601/602, 606, 615, 5xx, a timeout after the write was applied, 607 (daily quota) for a while;
- AWS: the writer crashing after Marketo accepted a chunk but before its records were recorded, the
  poller crashing mid-window (an SQS send refused), SQS delivering messages twice and out of order.

With ``writers`` above one it runs as Lambda does in production: that many writer processes drain the
queue at once (each one Lambda's SQS event-source loop, as the bench runs them), every Marketo call takes
``marketo_latency`` seconds (so older writes land after newer ones), a poll runs while they drain, and
``hot_records`` customers are edited in every poll so two versions of one record are often in flight.

Then the faults stop, the quota resets, the queue drains, and the check is strict: Marketo equals the
mapping of the final Visma state for every record, with no duplicate, nothing in the dead-letter queue,
nothing parked, and every quarantined record carrying its reason.

``make test`` runs small seeded versions (tests/integration/test_convergence.py, and with concurrent writers
test_convergence_concurrent.py); a larger one runs on
demand: ``python -m localrun.chaos --cycles 30 --customers 1500 --suppliers 300 --seed 5``.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from localrun.environment import LocalEnvironment
from localrun.event_source import DeliveryChaos
from ml_connector.state.dynamodb import keys
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH, load_mapping

VISMA_TIMEOUT_S = 1.0  # the poller's per-request timeout in these runs, so a timeout costs a second
# Small pages, so a poll's window spans several and rows can shift across page boundaries.
VISMA_PAGE_SIZE = 20
# Late writes are stamped this far back, past the 5-minute overlap; every poll here is a deep sweep (the
# interval is a second) reaching an hour back, so the next poll must find them.
LATE_WRITE_LAG_S = 1800
SWEEP_ENV = {"VISMA_SWEEP_INTERVAL_SECONDS": "1", "VISMA_SWEEP_DEPTH_SECONDS": "3600"}
MAPPING = "with-contacts-as-leads.json"
STATUSES = {"customer": ["Active", "OnHold", "CreditHold", "Inactive"], "supplier": ["Active", "OnHold", "Inactive"]}


class ChaosSettings(BaseModel):
    seed: int = 1
    cycles: int = Field(default=10, ge=1)
    customers: int = Field(default=150, ge=1)
    suppliers: int = Field(default=50, ge=1)
    edits_per_cycle: int = Field(default=12, ge=0)
    inserts_per_cycle: int = Field(default=3, ge=0)
    status_changes_per_cycle: int = Field(default=3, ge=0)
    faults_per_cycle: int = Field(default=4, ge=0)
    duplicate_rate: float = Field(default=0.3, ge=0, le=1)  # batches delivered a second time
    reorder_rate: float = Field(default=0.5, ge=0, le=1)  # batches shuffled with part held back
    second_poll_rate: float = Field(default=0.4, ge=0, le=1)  # cycles that poll twice before draining
    contacts: bool = True  # also sync contact persons to leads (mapping with-contacts-as-leads.json)
    writers: int = Field(default=1, ge=1)  # concurrent writer processes; above one, polls overlap the drains
    marketo_latency: tuple[float, float] = (0.0, 0.0)  # seconds per Marketo call, drawn uniformly
    hot_records: int = Field(default=0, ge=0)  # customers renamed in every poll, so their versions collide
    deletions_per_cycle: int = Field(default=1, ge=0)  # customers or suppliers deleted in Visma per cycle
    # Full reconciles (mapping: delete for every entity): one asked for mid-run, under the faults, and one after
    # the faults stop; then Marketo must hold nothing that was deleted in Visma.
    reconcile: bool = True


class ConvergenceReport(BaseModel):
    settings: ChaosSettings
    cycles_run: int = 0
    visma_changes: Counter[str] = Field(default_factory=Counter)
    faults_armed: Counter[str] = Field(default_factory=Counter)
    faults_observed: dict[str, int] = Field(default_factory=dict)
    poller_crashes: int = 0
    writer_invocation_errors: int = 0
    concurrent_drains: int = 0
    write_races_repaired: int = 0
    messages_delivered_twice: int = 0
    messages_held_back: int = 0
    settle_cycles: int = 0
    records_checked: int = 0
    marketo_records: int = 0
    missing: int = 0
    unexpected: int = 0
    mismatched: int = 0
    duplicates: int = 0
    retired_leads: int = 0
    quarantined: int = 0
    quarantined_without_reason: int = 0
    deleted_in_visma: int = 0  # without a reconcile left in Marketo: not counted as unexpected
    reconciled: Counter[str] = Field(default_factory=Counter)  # what the reconciles found and did, summed
    dead_letter_messages: int = 0
    queue_left: int = 0
    parked_jobs_left: int = 0
    example: str = ""
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.duplicates
                    or self.quarantined_without_reason or self.dead_letter_messages or self.queue_left
                    or self.parked_jobs_left) and self.records_checked > 0

    def lines(self) -> list[str]:
        faults = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_armed.items()))
        observed = ", ".join(f"{k} {v}" for k, v in sorted(self.faults_observed.items()))
        changes = ", ".join(f"{k} {v}" for k, v in sorted(self.visma_changes.items()))
        return [
            f"convergence (seed {self.settings.seed}): {self.cycles_run} chaos cycles + {self.settle_cycles} "
            f"settle cycles in {self.elapsed_s:.0f}s",
            f"  Visma changes: {changes}",
            f"  faults armed: {faults}",
            f"  faults observed: {observed}",
            f"  writers {self.settings.writers} (Marketo latency {self.settings.marketo_latency[0]}-"
            f"{self.settings.marketo_latency[1]}s, {self.concurrent_drains} concurrent drains with a poll during "
            f"each), write races repaired {self.write_races_repaired}",
            f"  poller crashes {self.poller_crashes}, writer invocation errors {self.writer_invocation_errors}, "
            f"messages delivered twice {self.messages_delivered_twice}, held back (out of order) "
            f"{self.messages_held_back}",
            f"  checked {self.records_checked} records: Marketo holds {self.marketo_records}; missing {self.missing}, "
            f"unexpected {self.unexpected}, mismatched {self.mismatched}, duplicates {self.duplicates} "
            f"(leads left under a contact's former address: {self.retired_leads})",
            f"  reconciles: {', '.join(f'{k} {v}' for k, v in sorted(self.reconciled.items()) if v) or 'none'}",
            f"  deleted in Visma and left in Marketo {self.deleted_in_visma}, "
            f"quarantined {self.quarantined} (without reason {self.quarantined_without_reason}), dead-letter "
            f"{self.dead_letter_messages}, queue left {self.queue_left}, parked jobs left {self.parked_jobs_left}",
            f"  result: {'CONVERGED' if self.ok else 'NOT CONVERGED ' + self.example}",
        ]


class ChaosRun:
    def __init__(self, env: LocalEnvironment, settings: ChaosSettings, log_dir: Path) -> None:
        self.env = env
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.report = ConvergenceReport(settings=settings)
        self.delivery = DeliveryChaos(random.Random(settings.seed + 1), duplicate_rate=settings.duplicate_rate,
                                      reorder_rate=settings.reorder_rate)
        self._quota_cycles_left = 0
        self._renames = 0
        self._renumbers = 0
        self.log_dir = log_dir
        self._deck: list[str] = []
        self._faults: dict[str, Callable[[], None]] = {
            "visma_5xx": lambda: env.visma.faults.fail_next(self.rng.randint(1, 2),
                                                            status=self.rng.choice([500, 502, 503])),
            "visma_429": lambda: env.visma.faults.throttle_next(1, retry_after=1),
            "visma_timeout": lambda: env.visma.faults.delay_next(1, VISMA_TIMEOUT_S + 0.5),
            "visma_token_expired": env.visma.expire_tokens,
            "visma_edit_during_paging": lambda: env.visma.faults.edit_during_paging(
                self.rng.choice(["customer", "supplier"]), per_page=1),
            "visma_outage_mid_window": lambda: env.visma.faults.fail_next(8, status=503,
                                                                          path_contains="/v1/supplier"),
            # Suppliers: a deleted customer's contacts would leave leads behind, which is the reconcile's job.
            "visma_shift_keeping_count": lambda: env.visma.faults.shift_keeping_count("supplier"),
            "visma_late_writes": self._late_writes,
            "visma_renumber_with_balance": self._renumber,
            "marketo_601": lambda: env.marketo.faults.inject("601"),
            "marketo_602": env.marketo.expire_tokens,
            "marketo_606": lambda: env.marketo.faults.inject("606"),
            "marketo_615": lambda: env.marketo.faults.inject("615"),
            "marketo_5xx": lambda: env.marketo.faults.inject(self.rng.choice([500, 502, 503])),
            "marketo_timeout_after_apply": lambda: env.marketo.faults.inject("timeout_after_apply"),
            "marketo_607_for_a_while": self._quota_gone,
            "writer_crash_after_accept": lambda: env.aws.faults.fail_next(
                "DynamoDB_20120810.UpdateItem", body_contains=self._record_state_key(), after=self.rng.randint(0, 20),
                error_type="InternalFailure", message="writer crashed after Marketo accepted the chunk"),
            "poller_crash_mid_window": lambda: env.aws.faults.fail_next(
                "AmazonSQS.SendMessageBatch", after=self.rng.randint(1, 3), error_type="KmsAccessDenied",
                message="poller crashed mid-window"),
        }

    # -- the run ----------------------------------------------------------------------------
    def run(self, echo: Callable[[str], None] = lambda _: None) -> ConvergenceReport:
        started = time.monotonic()
        echo(f"full load of {self.settings.customers + self.settings.suppliers} records")
        self.env.cycle("full load")
        for number in range(1, self.settings.cycles + 1):
            if self.settings.reconcile and number == (self.settings.cycles + 1) // 2:
                self._request_reconcile()
            armed = self._chaos_cycle()
            echo(f"chaos cycle {number}/{self.settings.cycles}: faults {', '.join(armed) or 'none'}")
        self._stop_faults()
        self._settle(echo)
        if self.settings.reconcile:
            self._request_reconcile()
            self._settle(echo)
        self._check()
        self.report.elapsed_s = time.monotonic() - started
        return self.report

    def _chaos_cycle(self) -> list[str]:
        self._change_visma()
        armed = self._draw_faults(min(self.settings.faults_per_cycle, len(self._faults)))
        for name in armed:
            self._faults[name]()
            self.report.faults_armed[name] += 1
        self._poll()
        if self.rng.random() < self.settings.second_poll_rate:
            # A second version of some records goes into the queue before the first is written.
            self._change_visma(scale=0.5)
            self._poll()
        if self.settings.writers > 1:
            self._drain_while_polling()
        else:
            self.env.visma.faults.stop_editing()
            drained = self.env.drain(chaos=self.delivery)
            self.report.writer_invocation_errors += drained.handler_errors
        self._lift_quota_when_due()
        self.report.cycles_run += 1
        return armed

    def _drain_while_polling(self) -> None:
        """Writer processes drain the queue while this process polls again: new versions go in behind the
        ones being written, as when a schedule tick comes while the writers are still busy."""
        from bench.remote import StackSpec
        from bench.writers import run_writers

        assert self.env.stack is not None
        spec = StackSpec.of(self.env.stack, self.env.env())
        log_dir = self.log_dir / f"cycle-{self.report.cycles_run + 1}"
        with ThreadPoolExecutor(max_workers=1) as pool:
            writers = pool.submit(run_writers, spec, self.settings.writers, log_dir, idle_polls=4)
            time.sleep(self.rng.uniform(1.0, 3.0))  # the writers are busy with the first versions
            self._change_visma(scale=0.5)
            self._poll()
            self.env.visma.faults.stop_editing()
            results = writers.result()
        self.report.writer_invocation_errors += sum(r.handler_errors for r in results)
        self.report.concurrent_drains += 1

    def _draw_faults(self, count: int) -> list[str]:
        """The next faults from a shuffled deck of every kind, so that each kind comes up in turn (a run of
        n cycles arms every kind once n × faults_per_cycle reaches the number of kinds)."""
        drawn: list[str] = []
        while len(drawn) < count:
            if not self._deck:
                self._deck = sorted(self._faults)
                self.rng.shuffle(self._deck)
            name = self._deck.pop()
            if name in drawn:  # never the same fault twice in one cycle
                self._deck.insert(0, name)
                continue
            drawn.append(name)
        return drawn

    def _request_reconcile(self) -> None:
        """``ml-connector reconcile``'s request (the next poll reads every entity in full)."""
        assert self.env.stack is not None
        reconciles, now = self.env.state().reconciles, datetime.now(UTC)
        for entity in ("customer", "supplier", "contact") if self.settings.contacts else ("customer", "supplier"):
            reconciles.request(self.env.stack.parameters["ConnectionId"], entity, now)

    def _poll(self) -> None:
        try:
            self._count_repairs(self.env.run_poller()["entities"])
        except Exception:  # noqa: BLE001 - a crashed poll is part of the test; the next one must recover
            self.report.poller_crashes += 1

    def _change_visma(self, scale: float = 1.0) -> None:
        store, s, changes = self.env.visma.store, self.settings, self.report.visma_changes
        edits = int(s.edits_per_cycle * scale)
        if edits:
            store.edit_random(edits, rng_seed=self.rng.randrange(1 << 30))
            changes["edits"] += edits
        for _ in range(int(s.inserts_per_cycle * scale)):
            store.insert(self.rng.choice(["customer", "supplier"]))
            changes["inserts"] += 1
        for _ in range(int(s.status_changes_per_cycle * scale)):
            entity = self.rng.choice(["customer", "supplier"])
            record = self.rng.choice(store.records(entity))
            store.update(entity, record["internalId"], status=self.rng.choice(STATUSES[entity]))
            changes["status changes"] += 1
        for _ in range(s.deletions_per_cycle):
            # Without a reconcile, a deleted customer's contacts would leave leads the check cannot tell apart.
            entity = self.rng.choice(["customer", "supplier"]) if s.reconcile else "supplier"
            hot = set(self._hot_ids())
            record = self.rng.choice([r for r in store.records(entity) if r["internalId"] not in hot])
            store.delete(entity, record["internalId"])  # a customer's contacts go with it
            changes["deletions"] += 1
        if self.rng.random() < 0.5:
            customer = self.rng.choice(store.records("customer"))
            changes["payments"] += 1 if store.settle_invoices(str(customer["number"])) else 0
        for internal_id in self._hot_ids():
            self._renames += 1
            store.update("customer", internal_id, name=f"Hot {internal_id} v{self._renames} AS")
            changes["hot renames"] += 1
        if s.contacts and edits:
            # Contact edits include consent flags switched on and off.
            edited = store.edit_contacts(max(1, edits // 2), rng_seed=self.rng.randrange(1 << 30))
            changes["contact edits"] += len(edited)

    def _record_state_key(self) -> str:
        """What the writer's record-state writes (after Marketo accepted a chunk) carry in their request."""
        connection = self.env.stack.parameters["ConnectionId"] if self.env.stack else "default"
        return keys.records(connection, "")

    def _count_repairs(self, entities: list[dict[str, Any]]) -> None:
        self.report.write_races_repaired += sum(e.get("repairs", 0) for e in entities)
        for entity in entities:
            self.report.reconciled.update(entity.get("reconcile") or {})

    def _hot_ids(self) -> list[int]:
        customers = self.env.visma.store.records("customer")
        return [c["internalId"] for c in customers[: self.settings.hot_records]]

    def _late_writes(self) -> None:
        """Writes stamped half an hour before they become visible (a lagging app-server clock)."""
        visma = self.env.visma
        visma.set_clock_skew(-LATE_WRITE_LAG_S)
        try:
            visma.store.edit_random(2, rng_seed=self.rng.randrange(1 << 30))
        finally:
            visma.set_clock_skew(0)
        self.report.visma_changes["late writes"] += 2

    def _renumber(self) -> None:
        """changeCustomerCd on a customer with a balance: its balance is not read again (it did not change)."""
        store = self.env.visma.store
        with_balance = [r["customer"] for r in store.balances() if r["balance"] > 0]
        customer = self.rng.choice(with_balance)
        self._renumbers += 1
        store.update("customer", customer["internalId"], number=f"RN{self._renumbers}-{customer['number']}")
        self.report.visma_changes["renumbered"] += 1

    def _quota_gone(self) -> None:
        self.env.marketo.set_daily_usage(10**9)
        self._quota_cycles_left = self.rng.randint(1, 2)

    def _lift_quota_when_due(self) -> None:
        if self._quota_cycles_left:
            self._quota_cycles_left -= 1
            if not self._quota_cycles_left:
                self.env.pass_quota_reset()

    def _stop_faults(self) -> None:
        env = self.env
        self.report.faults_observed = {
            **{f"marketo {code}": n for code, n in env.marketo.stats.snapshot()["errors_by_code"].items()},
            **{f"marketo HTTP {code}": n for code, n in env.marketo.stats.snapshot()["http_errors_by_status"].items()},
            "visma faults served": env.visma.stats.snapshot()["faults_served"],
            **{f"aws {target}": n for target, n in env.aws.faults.fired.items()},
        }
        env.visma.faults.clear()
        env.marketo.faults.clear()
        env.aws.faults.clear()
        self._quota_cycles_left = 0
        env.pass_quota_reset()
        self.report.messages_delivered_twice = self.delivery.duplicated_messages
        self.report.messages_held_back = self.delivery.held_back

    def _settle(self, echo: Callable[[str], None], max_cycles: int = 5) -> None:
        """After the faults: cycles until one moves nothing (a crashed poll's window, parked chunks and
        held-back messages all come through here)."""
        for number in range(1, max_cycles + 1):
            cycle = self.env.cycle(f"settle {number}")
            self._count_repairs(cycle.poll)
            self.report.settle_cycles = number
            echo(cycle.line())
            if cycle.messages_sent == 0 and cycle.marketo_calls == 0 and self.env.queue_depth() == 0:
                return

    # -- the check --------------------------------------------------------------------------
    def _check(self) -> None:
        report, env = self.report, self.env
        verification = env.verify()
        deleted = self._deleted_keys() & set(verification.unexpected)
        report.deleted_in_visma = len(deleted)
        report.records_checked = verification.expected
        report.marketo_records = verification.actual - len(deleted)
        report.missing, report.unexpected = len(verification.missing), len(verification.unexpected) - len(deleted)
        report.mismatched, report.duplicates = len(verification.mismatched), len(verification.duplicates)
        report.retired_leads = len(verification.retired)
        report.example = "" if verification.ok else verification.summary()
        state = env.state()
        connection = env.stack.parameters["ConnectionId"] if env.stack else "default"
        entries = state.quarantine.entries(connection) + state.quarantine.entries("_unknown")
        report.quarantined = len(entries)
        report.quarantined_without_reason = sum(1 for e in entries if not e.reason.strip())
        report.dead_letter_messages = env.queue_depth("SyncDeadLetterQueue")
        report.queue_left = env.queue_depth()
        report.parked_jobs_left = len(DeferredChunks(state).parked(connection))

    def _deleted_keys(self) -> set[str]:
        mapping = load_mapping(MAPPING if self.settings.contacts else None)
        company = self.env.visma.credentials["company_id"]
        keys = set()
        for entity, internal_id in self.env.visma.store.deleted():
            section = mapping.for_entity(entity)  # type: ignore[arg-type]
            if section is not None:
                keys.add(section.key(company_id=company, entity=entity, internal_id=internal_id))
        return keys



def _deleting_mapping(settings: ChaosSettings, folder: Path) -> str:
    """The run's mapping with deletions mode ``delete`` for every entity (contacts' leads too): after a reconcile
    Marketo must hold exactly what Visma holds."""
    mapping = json.loads(DEFAULT_MAPPING_PATH.with_name(MAPPING if settings.contacts else "default.json").read_text())
    for entity in ("customer", "supplier", "contact"):
        if entity in mapping:
            mapping[entity]["deletions"] = {"mode": "delete", **({"delete_leads": True} if entity == "contact" else {})}
    path = folder / "mapping.json"
    path.write_text(json.dumps(mapping), encoding="utf-8")
    return str(path)


def run_convergence(settings: ChaosSettings, *, log_path: Path | None = None,
                    echo: Callable[[str], None] = lambda _: None) -> ConvergenceReport:
    extra_env = {"VISMA_REQUEST_TIMEOUT_SECONDS": str(VISMA_TIMEOUT_S), **SWEEP_ENV}
    if settings.contacts:
        extra_env["MAPPING_FILE"] = MAPPING
    if settings.reconcile:
        extra_env["MAPPING_FILE"] = _deleting_mapping(settings, Path(tempfile.mkdtemp(prefix="chaos-mapping-")))
    marketo = {"latency": settings.marketo_latency, "seed": settings.seed} if any(settings.marketo_latency) else {}
    env = LocalEnvironment(seed=settings.seed, customers=settings.customers, suppliers=settings.suppliers,
                           log_path=log_path, extra_env=extra_env, marketo_options=marketo,
                           visma_options={"max_page_size": VISMA_PAGE_SIZE})
    log_dir = (log_path or Path(".demo/chaos.log")).parent / "chaos-writers"
    with env:
        return ChaosRun(env, settings, log_dir).run(echo)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localrun.chaos", description=__doc__.splitlines()[0])
    for name, field in ChaosSettings.model_fields.items():
        flag = f"--{name.replace('_', '-')}"
        if isinstance(field.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=field.default)
        elif isinstance(field.default, tuple):
            parser.add_argument(flag, type=float, nargs=len(field.default), default=field.default)
        else:
            parser.add_argument(flag, type=type(field.default), default=field.default)
    parser.add_argument("--log", type=Path, default=Path(".demo/chaos-lambda.log"),
                        help="where the functions' logs go (default: .demo/chaos-lambda.log)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = vars(parser.parse_args(argv))
    log_path, as_json = args.pop("log"), args.pop("json")
    settings = ChaosSettings(**args)
    report = run_convergence(settings, log_path=log_path,
                             echo=lambda line: print(line, file=sys.stderr, flush=True))
    if as_json:
        print(json.dumps(report.model_dump(mode="json") | {"ok": report.ok}, indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
