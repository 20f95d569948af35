"""Composition root: settings, credentials, clients and services for one Lambda container.

Built once per container (and rebuilt only if the relevant environment changes, which local runs
and tests do between stacks), so warm invocations reuse settings, boto3 clients and token caches.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import boto3
import requests
from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

from ml_connector.config import ConfigError, ConnectionConfig, RuntimeSettings, VismaEntity, load_settings
from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.errors import MarketoError
from ml_connector.marketo.limits import CallBudget
from ml_connector.marketo.models import MarketoCredentials
from ml_connector.marketo.shared_limiter import DynamoCallLimiter
from ml_connector.observability import logger
from ml_connector.state.store import StateStore, parse_utc_iso, utc_iso
from ml_connector.sync.batching import chunked
from ml_connector.sync.contacts import CompanyKeys
from ml_connector.sync.mapping import EntityMapping, MappingError, check_against_marketo, load_mapping
from ml_connector.sync.messages import unpack_messages
from ml_connector.sync.outbox import SqsOutbox
from ml_connector.sync.payment import PaymentReader
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink
from ml_connector.sync.preview import MarketoLookup, PreviewItem, PreviewSink
from ml_connector.sync.reference import ReferenceReport, ReferenceSync
from ml_connector.sync.writer import ChunkJob, Writer, write_chunk_to_marketo
from ml_connector.visma.client import VismaClient
from ml_connector.visma.models import VismaCredentials

SECRET_MAX_AGE_SECONDS = 300
ENV_KEYS = ("STATE_TABLE", "IDEMPOTENCY_TABLE", "SYNC_QUEUE_URL", "CONNECTIONS_CONFIG", "VISMA_SECRET_ID",
            "MARKETO_SECRET_ID", "VISMA_BASE_URL", "VISMA_TOKEN_URL", "MARKETO_MUNCHKIN_ID",
            "MARKETO_ENDPOINT_OVERRIDE", "CONNECTION_ID", "AWS_ENDPOINT_URL")


def read_secret(provider: parameters.SecretsProvider, secret_id: str) -> dict[str, Any]:
    """Secret JSON, cached per container for five minutes (so a rotation is picked up without a deploy)."""
    value = provider.get(secret_id, transform="json", max_age=SECRET_MAX_AGE_SECONDS)
    if not isinstance(value, dict):
        raise ConfigError(f"secret {secret_id}: expected a JSON object")
    return value


@dataclass
class Runtime:
    settings: RuntimeSettings
    store: StateStore
    # Owned by the runtime (not Powertools' module-wide default), so a new runtime talks to the current endpoint.
    secrets: parameters.SecretsProvider = field(default_factory=lambda: parameters.SecretsProvider(
        boto3_client=boto3.client("secretsmanager")))
    _marketo: dict[str, MarketoClient] = field(default_factory=dict)
    _mappings: dict[str, dict[VismaEntity, EntityMapping]] = field(default_factory=dict)
    # The current invocation's remaining-time callback; clients outlive invocations, deadlines do not.
    _time_left: Callable[[], float] | None = None

    # -- clients ----------------------------------------------------------------------------
    def visma_credentials(self, connection: ConnectionConfig) -> VismaCredentials:
        return VismaCredentials.model_validate(read_secret(self.secrets, connection.visma.secret_id))

    def visma_client(self, connection: ConnectionConfig, credentials: VismaCredentials,
                     time_left: Callable[[], float] | None) -> VismaClient:
        v = connection.visma
        return VismaClient(credentials, base_url=v.base_url, token_url=v.token_url,
                           send_company_header=v.send_company_header, timeout=v.request_timeout_seconds,
                           time_left=time_left)

    def marketo_client(self, connection_id: str) -> MarketoClient:
        if connection_id not in self._marketo:
            m = self.settings.connection(connection_id).marketo
            credentials = MarketoCredentials.model_validate(read_secret(self.secrets, m.secret_id))
            budget = CallBudget(calls=m.calls_per_20s, window_seconds=20.0, concurrency=m.max_concurrency)
            limiter = DynamoCallLimiter(self.store.table, m.munchkin_id, budget)
            self._marketo[connection_id] = MarketoClient(m.munchkin_id, credentials,
                                                         endpoint_override=m.endpoint_override, limiter=limiter)
        client = self._marketo[connection_id]
        client.set_time_left(self._time_left)
        return client

    def mappings(self, connection: ConnectionConfig) -> dict[VismaEntity, EntityMapping]:
        """The connection's mapping per enabled entity, loaded and validated once per container."""
        if connection.id in self._mappings:
            return self._mappings[connection.id]
        mapping_file = load_mapping(connection.mapping)
        mappings: dict[VismaEntity, EntityMapping] = {}
        all_checked = True
        for entity in self.entities(connection):
            section = mapping_file.for_entity(entity)
            if section is None:
                raise MappingError(f"mapping {connection.mapping or 'default'}: no section for enabled entity "
                                   f"{entity!r} of connection {connection.id!r}")
            checked = self._checked(connection, section)
            all_checked = all_checked and checked is not None
            mappings[entity] = checked or section
        # Kept only once checked: describe also supplies field lengths, so an unchecked mapping is retried.
        if all_checked:
            self._mappings[connection.id] = mappings
        return mappings

    def entities(self, connection: ConnectionConfig) -> list[VismaEntity]:
        """The entities a connection syncs: as configured, else every entity its mapping has a section for."""
        return list(connection.entities or load_mapping(connection.mapping).entities)

    def company_keys(self, connection: ConnectionConfig, entity: VismaEntity, client: VismaClient,
                     company_id: str) -> CompanyKeys | None:
        """Contacts link to their customer's company, when customers go to Marketo companies."""
        customers = load_mapping(connection.mapping).customer
        if entity != "contact" or customers is None or customers.target != "companies":
            return None
        checked = self.mappings(connection).get("customer", customers)
        return CompanyKeys(self.store, client, connection=connection.id, company_id=company_id,
                           customer_mapping=checked)

    def _checked(self, connection: ConnectionConfig, section: EntityMapping) -> EntityMapping | None:
        """The section checked against Marketo's describe; None when Marketo could not be asked."""
        origin = connection.mapping or "default"
        try:
            client = self.marketo_client(connection.id)
            described = client.describe_target(section.target)
        except (MarketoError, requests.RequestException) as exc:
            logger.warning("could not describe the Marketo target; mapping checked at load only",
                           extra={"connection": connection.id, "target": section.target, "error": str(exc)})
            return None
        return check_against_marketo(section, described, origin)

    # -- services ---------------------------------------------------------------------------
    def poll(self, time_left: Callable[[], float] | None, connection_ids: list[str] | None = None
             ) -> list[EntityPollReport]:
        if not self.settings.sync_queue_url:
            raise ConfigError("SYNC_QUEUE_URL: required by the poller")
        poller = Poller(self.store, QueueSink(self.store, SqsOutbox(self.settings.sync_queue_url)), time_left=time_left,
                        safety_margin=self.settings.safety_margin_seconds)
        reports = []
        for connection in self.settings.connections:
            if connection_ids and connection.id not in connection_ids:
                continue
            reports.extend(self._poll_connection(poller, connection, time_left))
        return reports

    def requeue_deferred(self, connection_ids: list[str] | None = None) -> int:
        """Chunks parked by the writer when Marketo's daily quota ran out go back to the queue once the
        quota has reset. Returns how many messages were sent."""
        if not self.settings.sync_queue_url:
            raise ConfigError("SYNC_QUEUE_URL: required by the poller")
        outbox = SqsOutbox(self.settings.sync_queue_url)
        now = datetime.now(UTC)
        sent = 0
        for connection in self.settings.connections:
            if connection_ids and connection.id not in connection_ids:
                continue
            for job in self.store.deferred_jobs(connection.id):
                if job.retry_after and parse_utc_iso(job.retry_after) > now or not job.messages:
                    continue
                messages = unpack_messages(job.messages)
                outbox.send(messages)
                self.store.put_job(job.model_copy(update={"status": "requeued (quota reset)", "at": utc_iso(now)}))
                sent += len(messages)
        if sent:
            logger.info("deferred chunks sent again after the Marketo quota reset", extra={"messages": sent})
        return sent

    def sync_reference(self, time_left: Callable[[], float] | None, connection_ids: list[str] | None = None,
                       force: bool = False) -> list[ReferenceReport]:
        """Reference data of each connection whose mapping asks for it, when its interval has passed."""
        sync = ReferenceSync(self.store, clock=lambda: datetime.now(UTC))
        reports = []
        for connection in self.settings.connections:
            section = load_mapping(connection.mapping).reference
            if section is None or (connection_ids and connection.id not in connection_ids):
                continue
            if not force and not sync.due(connection.id, connection.reference_interval_minutes):
                continue
            try:
                credentials = self.visma_credentials(connection)
                visma = self.visma_client(connection, credentials, time_left)
                marketo = self.marketo_client(connection.id)
                marketo.set_time_left(time_left)
                reports.append(sync.run(connection.id, visma, marketo, credentials.company_id, section))
            except Exception as exc:
                logger.exception("reference data sync failed", extra={"connection": connection.id})
                error = f"{type(exc).__name__}: {exc}"
                reports.append(ReferenceReport(connection=connection.id, ran=True, error=error))
        return reports

    def _poll_connection(self, poller: Poller, connection: ConnectionConfig,
                         time_left: Callable[[], float] | None) -> list[EntityPollReport]:
        """Poll every entity of one connection; a failure is reported, not raised, so others still run."""
        reports = []
        for entity, mapping in self.mappings(connection).items():
            try:
                credentials = self.visma_credentials(connection)
                client = self.visma_client(connection, credentials, time_left)
                payments = (PaymentReader(client, connection.visma.page_size)
                            if entity == "customer" and mapping.uses_payment else None)
                reports.append(poller.poll_entity(connection, client, entity, company_id=credentials.company_id,
                                                  mapping=mapping, payments=payments,
                                                  company_keys=self.company_keys(connection, entity, client,
                                                                                 credentials.company_id)))
            except Exception as exc:
                logger.exception("poll failed", extra={"connection": connection.id, "entity": entity})
                reports.append(EntityPollReport(connection=connection.id, entity=entity,
                                                error=f"{type(exc).__name__}: {exc}"))
        return reports

    def preview(self, connection_ids: list[str] | None = None) -> tuple[list[EntityPollReport], list[PreviewItem]]:
        """What the next cycle would write, per record, without writing anything or moving a watermark."""
        items: list[PreviewItem] = []
        reports: list[EntityPollReport] = []
        for connection in self.settings.connections:
            if connection_ids and connection.id not in connection_ids:
                continue
            sink = PreviewSink(self._marketo_lookup(connection.id))
            poller = Poller(self.store, sink, dry_run=True)
            reports.extend(self._poll_connection(poller, connection, None))
            items.extend(sink.items)
        return reports, items

    def _marketo_lookup(self, connection_id: str) -> MarketoLookup:
        def lookup(marketo_object: str, dedupe_field: str, keys: list[str], fields: list[str]
                   ) -> dict[str, dict[str, Any]]:
            client = self.marketo_client(connection_id)
            found: dict[str, dict[str, Any]] = {}
            # 100 keys a query keeps each request small; the client pages through the results.
            for batch in chunked(keys, 100):
                wanted = [dedupe_field, *fields]
                records = client.get_records(marketo_object, dedupe_field, batch, wanted)
                for record in records:
                    found[str(record.get(dedupe_field))] = record
            return found

        return lookup

    def writer(self, time_left: Callable[[], float] | None, idempotency: IdempotencyConfig | None = None) -> Writer:
        self._time_left = time_left
        write_chunk = None
        if self.settings.idempotency_table:
            write_chunk = self._idempotent_write(idempotency or idempotency_config(self.settings))
        return Writer(self.settings, self.store, self.marketo_client, write_chunk=write_chunk, time_left=time_left)

    def _idempotent_write(self, config: IdempotencyConfig) -> Callable[..., list[dict[str, Any]]]:
        assert self.settings.idempotency_table
        persistence = DynamoDBPersistenceLayer(table_name=self.settings.idempotency_table)

        def write_job(job: ChunkJob) -> list[dict[str, Any]]:
            return write_chunk_to_marketo(self.marketo_client(job.connection), job)

        return idempotent_function(data_keyword_argument="job", config=config, persistence_store=persistence)(write_job)


def idempotency_config(settings: RuntimeSettings) -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="job_id", raise_on_no_idempotency_key=True,
                             expires_after_seconds=settings.job_ttl_days * 86_400)


_cache: dict[tuple[str, ...], Runtime] = {}


def get_runtime() -> Runtime:
    """The container's Runtime; a bad configuration raises ConfigError naming the field."""
    signature = tuple(os.environ.get(k, "") for k in ENV_KEYS)
    runtime = _cache.get(signature)
    if runtime is None:
        settings = load_settings()
        runtime = Runtime(settings=settings, store=StateStore(settings.state_table, resource=boto3.resource("dynamodb"),
                                                              job_ttl_days=settings.job_ttl_days))
        _cache.clear()
        _cache[signature] = runtime
        logger.info("runtime ready", extra={"connections": [c.id for c in settings.connections]})
    return runtime
