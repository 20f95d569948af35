"""A complete local deployment: moto's server built from template.yaml, both sandboxes, the handlers.

Used by ``make demo``, the CLI, the integration tests and the benchmark, so they all exercise the same
path a deployed stack takes: EventBridge event -> dispatcher handler -> poll-work queue -> event-source
emulator -> poller handler (one invocation per due connection) -> SQS -> event-source emulator -> writer
handler -> Marketo, with credentials read from Secrets Manager and state in DynamoDB.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from cli.target import Target
from localrun.aws import DeployedStack, LocalAws, deploy_template
from localrun.event_source import DeliveryChaos, DrainStats, SqsEventSource
from localrun.lambda_runtime import invoke
from ml_connector.config import VismaEntity
from ml_connector.marketo.models import ObjectDescription
from ml_connector.state import State
from ml_connector.state.dynamodb import dynamodb_state
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.mapping import EntityMapping, MappingFile, NoMarketoKey, check_against_marketo, load_mapping
from ml_connector.sync.messages import version_key
from ml_connector.sync.payment import PaymentFacts
from ml_connector.sync.preview import same_value
from ml_connector.usecases.poll_one_connection import ConnectionPollReport
from ml_connector.usecases.run_poll_cycle import PollCycleReport
from ml_connector.visma.models import parse_visma_datetime
from sandbox.marketo import MarketoSandbox
from sandbox.marketo.schema import COMPANY
from sandbox.visma import VismaSandbox

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
SCHEDULE_EVENT = ROOT / "events" / "schedule.json"
STACK_NAME = "ml-connector"


@dataclass
class CycleReport:
    label: str
    records_read: int = 0
    messages_sent: int = 0
    marketo_calls: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    unchanged: int = 0
    reference_written: int = 0
    elapsed_s: float = 0.0
    poll: list[dict[str, Any]] = field(default_factory=list)
    drain: DrainStats | None = None

    def line(self) -> str:
        return (f"{self.label}: read {self.records_read} records, sent {self.messages_sent} messages, "
                f"{self.marketo_calls} Marketo calls, {self.created} created, {self.updated} updated, "
                f"{self.skipped} skipped, {self.reference_written} reference records, {self.elapsed_s:.1f}s")


@dataclass(frozen=True)
class CycleProgress:
    """Where a running cycle is, seen from outside the handlers: the queue and the Marketo sandbox."""

    label: str
    phase: str  # "polling", "writing" or "done"
    elapsed_s: float
    messages_sent: int  # while polling: messages in the queue so far
    records_read: int | None = None  # known once the poller has returned
    delivered: int = 0  # messages handed to the writer
    written: int = 0  # Marketo records created, updated or skipped in this cycle
    batches: int = 0


ProgressHook = Callable[[CycleProgress], None]


class TickFailed(RuntimeError):
    """A poll of the tick failed (as a failed scheduled poll used to raise); ``report`` holds every poll's outcome."""

    def __init__(self, failures: list[str], report: dict[str, Any]) -> None:
        super().__init__("; ".join(failures))
        self.report = report


@dataclass
class Verification:
    expected: int
    actual: int
    missing: list[str]
    unexpected: list[str]
    mismatched: dict[str, dict[str, tuple[Any, Any]]]
    duplicates: list[str]
    # Leads left under an address a contact no longer has (leads are keyed by e-mail; the connector never
    # moves or deletes one): expected, reported, not a failure.
    retired: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.duplicates)

    def summary(self) -> str:
        if self.ok:
            return f"OK: Marketo holds exactly the mapped Visma data ({self.actual} companies, 0 duplicates)"
        return (f"MISMATCH: expected {self.expected}, Marketo has {self.actual}; missing {len(self.missing)}, "
                f"unexpected {len(self.unexpected)}, mismatched {len(self.mismatched)}, "
                f"duplicates {len(self.duplicates)}; e.g. {self._example()}")

    def _example(self) -> str:
        if self.mismatched:
            key, diff = next(iter(self.mismatched.items()))
            return f"{key}: {diff}"
        return ", ".join((self.missing + self.unexpected + self.duplicates)[:3])


class LocalEnvironment:
    def __init__(self, *, seed: int = 7, customers: int = 2000, suppliers: int = 500,
                 visma_options: dict[str, Any] | None = None, marketo_options: dict[str, Any] | None = None,
                 log_path: Path | None = None, extra_env: dict[str, str] | None = None) -> None:
        self.aws = LocalAws()
        self.visma = VismaSandbox(seed=seed, customers=customers, suppliers=suppliers, **(visma_options or {}))
        self.marketo = MarketoSandbox(**(marketo_options or {}))
        self.stack: DeployedStack | None = None
        self._log_path = log_path
        self._extra_env = extra_env or {}
        self._connections: list[dict[str, Any]] = []
        self._pairs: dict[str, tuple[VismaSandbox, MarketoSandbox, str | None]] = {}
        self._stack = contextlib.ExitStack()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> LocalEnvironment:
        self._stack.enter_context(_started(self.aws))
        # moto keeps its state per process, shared by every server in it: start from a clean account.
        self.aws.reset()
        self._stack.enter_context(_started(self.visma))
        self._stack.enter_context(_started(self.marketo))
        self.stack = deploy_template(self.aws, TEMPLATE, stack_name=STACK_NAME,
                                     parameters={"MarketoMunchkinId": self.marketo.munchkin_id})
        self._store_credentials()
        return self

    def stop(self) -> None:
        self._stack.close()

    def __enter__(self) -> LocalEnvironment:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _store_credentials(self) -> None:
        secrets = self.aws.client("secretsmanager")
        secrets.put_secret_value(SecretId=self.resource("VismaCredentialsSecret"),
                                 SecretString=json.dumps(self.visma.credentials))
        secrets.put_secret_value(SecretId=self.resource("MarketoCredentialsSecret"),
                                 SecretString=json.dumps(self.marketo.credentials))

    # -- plumbing ---------------------------------------------------------------------------
    def resource(self, logical_id: str) -> str:
        assert self.stack is not None, "start() first"
        return self.stack.resources[logical_id]

    def env(self) -> dict[str, str]:
        """What differs from the deployed stack: the sandbox endpoints and quiet local tracing."""
        return {
            "VISMA_BASE_URL": self.visma.url,
            "VISMA_TOKEN_URL": self.visma.token_url,
            "MARKETO_ENDPOINT_OVERRIDE": self.marketo.url,
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self._extra_env,
        }

    def local_target(self) -> Target:
        """This environment as a CLI target: the functions' environment plus the sandbox endpoints."""
        assert self.stack is not None
        env: dict[str, str] = {}
        for logical_id in ("DispatcherFunction", "PollerFunction", "WriterFunction"):
            env.update(self.stack.function_environment(logical_id))
        env = {k: v for k, v in env.items() if not k.startswith("AWS_")}
        return Target(name="local", kind="local", region=self.aws.region, aws_endpoint_url=self.aws.endpoint_url,
                      env={**env, **self.env()})

    def _captured(self) -> contextlib.AbstractContextManager[Any]:
        """Lambda logs and EMF go to a log file, as they would to CloudWatch, keeping the console readable."""
        if self._log_path is None:
            return contextlib.nullcontext()
        self._log_path.parent.mkdir(parents=True, exist_ok=True)
        return _redirect_stdout_to(self._log_path)

    def run_poller(self, at: datetime | None = None) -> dict[str, Any]:
        """One schedule tick (``at``, default now): the dispatcher queues one poll per due connection, then the
        poll-work event source runs the poller on each message (one at a time here; Lambda runs up to
        PollerMaximumConcurrency at once). Returns the polls together, in the shape of a cycle report (plus
        ``dispatched``); raises TickFailed if a poll failed."""
        assert self.stack is not None
        with self._captured():
            dispatched = invoke(self.stack, "DispatcherFunction", self.schedule_event(at), env=self.env(),
                                template_path=TEMPLATE)
            drained = self.poll_work_source().drain()
        polls = [ConnectionPollReport.model_validate(p) for result in drained.results for p in result["polls"]]
        report = {**PollCycleReport.of(polls).summary(), "dispatched": dispatched}
        failures = report["failed"] + drained.errors
        if failures:
            raise TickFailed(failures, report)
        return report

    def invoke_poller(self, event: dict[str, Any]) -> dict[str, Any]:
        """The poller invoked directly (as ``ml-connector sync --once --stack`` does): the named connections, or
        all, polled in turn."""
        assert self.stack is not None
        with self._captured():
            return invoke(self.stack, "PollerFunction", event, env=self.env(), template_path=TEMPLATE)

    def schedule_event(self, at: datetime | None = None) -> dict[str, Any]:
        """The EventBridge scheduled event of a tick at ``at`` (its ``time`` is the tick)."""
        event: dict[str, Any] = json.loads(SCHEDULE_EVENT.read_text())
        event["time"] = (at or datetime.now(UTC)).isoformat()
        return event

    def poll_work_source(self) -> SqsEventSource:
        """The poller's event source; messages it puts back stay invisible for the queue's visibility timeout."""
        assert self.stack is not None
        return SqsEventSource(self.stack, "PollerFunction", env=self.env(), template_path=TEMPLATE,
                              keep_invisible=True)

    def drain(self, *, chaos: DeliveryChaos | None = None, **kwargs: Any) -> DrainStats:
        assert self.stack is not None
        source = SqsEventSource(self.stack, "WriterFunction", env=self.env(), template_path=TEMPLATE, chaos=chaos)
        with self._captured():
            return source.drain(**kwargs)

    def state(self) -> State:
        """The connector's state table, read through the connector's own state interfaces."""
        resource = self.aws.session().resource("dynamodb", endpoint_url=self.aws.endpoint_for("dynamodb"))
        return dynamodb_state(self.resource("StateTable"), resource)

    def queue_depth(self, logical_id: str = "SyncQueue") -> int:
        """Visible plus in-flight messages of one of the stack's queues."""
        attrs = self.aws.client("sqs").get_queue_attributes(
            QueueUrl=self.resource(logical_id),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def pass_quota_reset(self) -> None:
        """Midnight US Central passes: Marketo resets its daily quota, and our block and the chunks parked
        until the reset come due (their times are moved to the past, as the clock would)."""
        self.marketo.reset_quota()
        state = self.state()
        past = datetime(2000, 1, 1, tzinfo=UTC)
        if state.quota.blocked_until(self.marketo.munchkin_id, datetime.now(UTC)) is not None:
            state.quota.block(self.marketo.munchkin_id, past)
        parked = DeferredChunks(state)
        for connection in self._connection_ids():
            for job in parked.parked(connection):
                parked.park(job, past)

    def _connection_ids(self) -> list[str]:
        assert self.stack is not None
        return [self.stack.parameters["ConnectionId"], *self._pairs]

    # -- cycles -----------------------------------------------------------------------------
    def cycle(self, label: str, *, progress: ProgressHook | None = None, every_s: float = 2.0) -> CycleReport:
        """One scheduled run: the poller, then the writer until the queue is empty. ``progress`` is called
        every ``every_s`` seconds from a watcher thread, and once more when the cycle is done."""
        before = self._marketo_counts()
        started = time.monotonic()
        watch = _CycleWatch(self, label, before, started, progress)
        with watch.running(every_s):
            poll = self.run_poller()
            watch.polled(poll)
            drained = self.drain(on_batch=watch.delivered)
        after = self._marketo_counts()
        report = CycleReport(label=label, poll=poll["entities"], drain=drained,
                             elapsed_s=time.monotonic() - started)
        report.records_read = sum(e["records_read"] for e in poll["entities"])
        report.reference_written = sum(r["written"] for r in poll.get("reference", []))
        report.messages_sent = sum(e["messages_sent"] for e in poll["entities"])
        for name in ("marketo_calls", "created", "updated", "skipped"):
            setattr(report, name, after[name] - before[name])
        watch.report(done=True)
        return report

    def _marketo_counts(self) -> dict[str, int]:
        """Sync calls and record outcomes for the entities' targets (reference data is reported apart)."""
        mapping = load_mapping(self._extra_env.get("MAPPING_FILE"))
        targets = {s.target for e in mapping.entities if (s := mapping.for_entity(e)) is not None}
        counts = {"marketo_calls": 0, "created": 0, "updated": 0, "skipped": 0}
        for name, stats in self.marketo.stats.snapshot()["by_object"].items():
            if name in targets:
                counts["marketo_calls"] += stats.get("sync_calls", 0)
                for outcome in ("created", "updated", "skipped"):
                    counts[outcome] += stats.get(f"records_{outcome}", 0)
        return counts

    # -- more connections -------------------------------------------------------------------
    def add_connection(self, connection_id: str, visma: VismaSandbox, marketo: MarketoSandbox,
                       mapping: str | None = None, *, marketo_secret_id: str | None = None, **settings: Any) -> None:
        """Pair another (started) Visma company with another Marketo instance, as a user would: secrets
        under the stack's prefix and a connections document (CONNECTIONS_CONFIG) listing every connection.
        ``marketo_secret_id``: use a Marketo secret already stored (connections sharing an instance's API
        user). ``settings`` are more of the connection's keys (``poll_interval_minutes=30``)."""
        assert self.stack is not None, "start() first"
        secrets = self.aws.client("secretsmanager")
        ids = {"marketo": marketo_secret_id} if marketo_secret_id else {}
        for system, creds in (("visma", visma.credentials), ("marketo", marketo.credentials)):
            if system in ids:
                continue
            name = f"{STACK_NAME}/{connection_id}/{system}"
            secrets.create_secret(Name=name, SecretString=json.dumps(creds), KmsKeyId=self.resource("EncryptionKey"))
            ids[system] = name
        if not self._connections:
            self._connections.append(self._connection_entry(self.stack.parameters["ConnectionId"], self.visma,
                                                            self.marketo, self.resource("VismaCredentialsSecret"),
                                                            self.resource("MarketoCredentialsSecret"),
                                                            self._extra_env.get("MAPPING_FILE")))
        self._connections.append({**self._connection_entry(connection_id, visma, marketo, ids["visma"],
                                                           ids["marketo"], mapping), **settings})
        self._pairs[connection_id] = (visma, marketo, mapping)
        self._extra_env["CONNECTIONS_CONFIG"] = json.dumps({"connections": self._connections})

    @staticmethod
    def _connection_entry(connection_id: str, visma: VismaSandbox, marketo: MarketoSandbox, visma_secret: str,
                          marketo_secret: str, mapping: str | None) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "id": connection_id,
            "visma": {"secret_id": visma_secret, "base_url": visma.url, "token_url": visma.token_url},
            "marketo": {"secret_id": marketo_secret, "munchkin_id": marketo.munchkin_id,
                        "endpoint_override": marketo.url},
        }
        if mapping:
            entry["mapping"] = mapping
        return entry

    # -- verification -----------------------------------------------------------------------
    def expected_records(self, connection_id: str | None = None) -> dict[str, dict[str, dict[str, Any]]]:
        """Per Marketo object: key -> the mapped fields of the current Visma state (computed from the
        sandbox's own data, not by the connector)."""
        visma, marketo, mapping_path = self._pair(connection_id)
        mapping = load_mapping(mapping_path)
        # The zone of Visma's naive stamps, as the stack's connection reads them (added connections: UTC).
        zone = ZoneInfo(self._extra_env.get("VISMA_TIME_ZONE") or "UTC") if connection_id not in self._pairs else UTC
        expected: dict[str, dict[str, dict[str, Any]]] = {}
        for entity in mapping.entities:
            section = mapping.for_entity(entity)
            assert section is not None
            into = expected.setdefault(section.target, {})
            for key, record in _expected_entity(visma, mapping, entity, _sized_by_marketo(marketo, section), zone):
                into[key] = record
        return expected

    def expected_companies(self) -> dict[str, dict[str, Any]]:
        return self.expected_records().get("companies", {})

    def verify(self, connection_id: str | None = None) -> Verification:
        """Marketo holds exactly the mapped Visma data of the connection (every target object)."""
        _, marketo, mapping_path = self._pair(connection_id)
        expected_by_object = self.expected_records(connection_id)
        mapping = load_mapping(mapping_path)
        dedupe = {s.target: s.dedupe_field for e in mapping.entities if (s := mapping.for_entity(e)) is not None}
        expected: dict[str, dict[str, Any]] = {}
        actual: dict[str, dict[str, Any]] = {}
        duplicates: list[str] = []
        for target, records in expected_by_object.items():
            expected.update(records)
            for record in _held(marketo, target):
                key = str(record.get(dedupe[target]))
                if key in actual:
                    duplicates.append(key)
                actual[key] = record
        mismatched = {}
        for key in expected.keys() & actual.keys():
            diff = {f: (v, actual[key].get(f)) for f, v in expected[key].items()
                    if not same_value(actual[key].get(f), v)}
            if diff:
                mismatched[key] = diff
        retired_emails = {a.lower() for a in self._pair(connection_id)[0].store.retired_emails()}
        unexpected = actual.keys() - expected.keys()
        retired = {k for k in unexpected if "leads" in expected_by_object and k in retired_emails}
        return Verification(expected=len(expected), actual=len(actual) - len(retired),
                            missing=sorted(expected.keys() - actual.keys()), unexpected=sorted(unexpected - retired),
                            mismatched=mismatched, duplicates=duplicates, retired=sorted(retired))

    def _pair(self, connection_id: str | None) -> tuple[VismaSandbox, MarketoSandbox, str | None]:
        if connection_id is None or connection_id not in self._pairs:
            return self.visma, self.marketo, self._extra_env.get("MAPPING_FILE")
        return self._pairs[connection_id]


class _CycleWatch:
    """Samples a running cycle for a progress hook. The poller and writer run in this thread, inside the
    emulated Lambda, so a watcher thread reads what they leave behind: queue depth, Marketo's counters."""

    def __init__(self, env: LocalEnvironment, label: str, before: dict[str, int], started: float,
                 hook: ProgressHook | None) -> None:
        self._env, self._label, self._before, self._started, self._hook = env, label, before, started, hook
        self._queued_before = env.queue_depth() if hook is not None else 0
        self._poll: dict[str, Any] | None = None
        self._drain = DrainStats()
        self._lock = threading.Lock()  # one report at a time, in order

    @contextlib.contextmanager
    def running(self, every_s: float) -> Iterator[None]:
        if self._hook is None:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(every_s):
                self.report()

        thread = threading.Thread(target=tick, name="cycle-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def polled(self, poll: dict[str, Any]) -> None:
        self._poll = poll

    def delivered(self, stats: DrainStats) -> None:
        self._drain = stats.model_copy()

    def report(self, *, done: bool = False) -> None:
        if self._hook is None:
            return
        with self._lock:
            self._hook(self._sample(done))

    def _sample(self, done: bool) -> CycleProgress:
        elapsed = time.monotonic() - self._started
        poll, drain = self._poll, self._drain
        counts = self._env._marketo_counts()
        written = sum(counts[k] - self._before[k] for k in ("created", "updated", "skipped"))
        if poll is None:
            return CycleProgress(self._label, "polling", elapsed,
                                 messages_sent=max(0, self._env.queue_depth() - self._queued_before), written=written)
        entities = poll["entities"]
        return CycleProgress(self._label, "done" if done else "writing", elapsed,
                             messages_sent=sum(e["messages_sent"] for e in entities),
                             records_read=sum(e["records_read"] for e in entities),
                             delivered=drain.messages, written=written, batches=drain.batches)


ZERO_FACTS = PaymentFacts().model_dump()


def _held(marketo: MarketoSandbox, target: str) -> list[dict[str, Any]]:
    if target == "companies":
        return marketo.store.companies()
    if target == "leads":
        return marketo.store.leads()
    return marketo.store.custom_objects(target)


def _sized_by_marketo(marketo: MarketoSandbox, section: EntityMapping) -> EntityMapping:
    """The section with Marketo's field lengths, as the connector applies them (text is cut to fit). Read
    from the sandbox's schema, not through its API: verifying must not spend the day's quota."""
    store, target = marketo.store, section.target
    if target == "leads":
        described = ObjectDescription.of_leads(ObjectDescription.from_describe(
            store.lead_schema.describe2(marketo.crm_enabled)))
    else:
        schema = store.schemas[COMPANY if target == "companies" else target]
        described = ObjectDescription.from_describe(schema.metadata(marketo.crm_enabled))
    return check_against_marketo(section, described, "verification")


def _expected_entity(visma: VismaSandbox, mapping: MappingFile, entity: VismaEntity, section: EntityMapping,
                     zone: tzinfo = UTC) -> list[tuple[str, dict[str, Any]]]:
    """(key, mapped record) for every record of an entity; for two records with one key (contacts sharing
    an e-mail address) the newest version wins, as the writer's version guard decides."""
    company_id = visma.credentials["company_id"]
    extra = _synthetic_sources(visma, mapping, entity)
    newest: dict[str, tuple[str, dict[str, Any]]] = {}
    raws = visma.store.all_contacts() if entity == "contact" else visma.store.records(entity)
    for raw in raws:
        source = {**raw, **extra(raw)}
        try:
            key = section.key(company_id=company_id, entity=entity, internal_id=raw.get("internalId", 0),
                              record=source)
        except NoMarketoKey:
            continue
        modified = parse_visma_datetime(raw["lastModifiedDateTime"], zone)
        version = version_key(str(raw.get("timeStamp") or ""), modified)
        if key not in newest or version > newest[key][0]:
            newest[key] = (version, {section.dedupe_field: key,
                                     **section.map(source, entity=entity, modified_at=modified)})
    return [(key, record) for key, (_, record) in newest.items()]


def _synthetic_sources(visma: VismaSandbox, mapping: MappingFile, entity: VismaEntity
                       ) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What the poller adds to a raw record: payment facts (customers), the company key (contacts)."""
    section = mapping.for_entity(entity)
    customers = mapping.customer
    if entity == "customer" and section is not None and section.uses_payment:
        facts = expected_payment_facts(visma)
        return lambda raw: {"_payment": facts.get(str(raw["number"]), ZERO_FACTS)}
    if entity == "contact" and customers is not None and customers.target == "companies":
        company_id = visma.credentials["company_id"]
        ids = {str(c["number"]): c["internalId"] for c in visma.store.records("customer")}

        def company_key(raw: dict[str, Any]) -> dict[str, Any]:
            internal_id = ids.get(str(raw.get("businessAccount")))
            return {"_company_key": None if internal_id is None else customers.key(
                company_id=company_id, entity="customer", internal_id=internal_id)}
        return company_key
    return lambda raw: {}


def expected_payment_facts(visma: VismaSandbox) -> dict[str, dict[str, Any]]:
    """The payment facts the README's rule gives for the sandbox's current invoices and balances
    (computed here from the sandbox's own state, not by the connector's reader)."""
    today = datetime.now(UTC).date()
    facts: dict[str, PaymentFacts] = {}
    for invoice in visma.store.invoices(status="Open"):
        due = date.fromisoformat(str(invoice["documentDueDate"])[:10])
        if invoice["balance"] > 0 and due < today:
            entry = facts.setdefault(str(invoice["customer"]["number"]), PaymentFacts())
            entry.overdue_amount = round(entry.overdue_amount + invoice["balance"], 2)
            entry.overdue_invoices += 1
            entry.max_dunning_level = max(entry.max_dunning_level, int(invoice.get("dunningLetterLevel") or 0))
    for row in visma.store.balances():
        facts.setdefault(str(row["customer"]["number"]), PaymentFacts()).balance = round(float(row["balance"]), 2)
    return {number: f.model_dump() for number, f in facts.items()}


@contextlib.contextmanager
def _started(service: Any) -> Any:
    service.start()
    try:
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def _redirect_stdout_to(path: Path) -> Any:
    with path.open("a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        yield


__all__ = ["LocalEnvironment", "CycleReport", "CycleProgress", "TickFailed", "Verification"]
