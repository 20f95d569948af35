"""Composition root: settings, secrets, clients and caches for one Lambda container; nothing else.

The use cases (``ml_connector.usecases``) take a Runtime and the invocation's Deadline. Settings and
the mapping cache are rebuilt after ``config.refresh_seconds()`` (and whenever the relevant environment
changes, which local runs and tests do between stacks); secrets are read through Powertools
Parameters with the same maximum age, and clients are built per invocation with that invocation's
deadline, so a rotated secret or an edited connections document is picked up within five minutes
without a deploy. HTTP sessions and token caches outlive invocations.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from aws_lambda_powertools.utilities import parameters

from ml_connector.config import (
    ConfigError,
    ConnectionConfig,
    RuntimeSettings,
    VismaEntity,
    load_settings,
    refresh_seconds,
)
from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.errors import MarketoError
from ml_connector.marketo.limits import CallBudget
from ml_connector.marketo.models import MarketoCredentials
from ml_connector.marketo.shared_limiter import SharedCallLimiter
from ml_connector.observability import logger
from ml_connector.state import State
from ml_connector.state.dynamodb import dynamodb_state
from ml_connector.state.dynamodb.table import typed_client
from ml_connector.sync.contacts import CompanyKeys
from ml_connector.sync.mapping import EntityMapping, MappingError, check_against_marketo, load_mapping
from ml_connector.sync.outbox import SqsOutbox
from ml_connector.visma.client import VismaClient
from ml_connector.visma.models import VismaCredentials

# The environment the settings are read from: a change rebuilds the runtime at once (local runs and tests
# switch stacks and mappings in one process; in Lambda it never changes).
CONFIG_ENV_PREFIXES = ("CONFIG_", "CONNECTION", "MAPPING_", "VISMA_", "MARKETO_", "STATE_", "IDEMPOTENCY_", "SYNC_",
                       "AWS_ENDPOINT_URL", "POLL_", "SCHEDULE_", "SAFETY_")


def read_secret(provider: parameters.SecretsProvider, secret_id: str) -> dict[str, Any]:
    """Secret JSON, cached per container for five minutes (so a rotation is picked up without a deploy)."""
    value = provider.get(secret_id, transform="json", max_age=refresh_seconds())
    if not isinstance(value, dict):
        raise ConfigError(f"secret {secret_id}: expected a JSON object")
    return value


@dataclass
class Runtime:
    settings: RuntimeSettings
    state: State
    # Owned by the runtime (not Powertools' module-wide default), so a new runtime talks to the current endpoint.
    secrets: parameters.SecretsProvider = field(default_factory=lambda: parameters.SecretsProvider(
        boto3_client=boto3.client("secretsmanager")))
    # Connections are kept open across invocations, per connection and API.
    _sessions: dict[str, requests.Session] = field(default_factory=dict)
    _mappings: dict[str, dict[VismaEntity, EntityMapping]] = field(default_factory=dict)
    _links: dict[str, bool] = field(default_factory=dict)
    _idempotency_client: Any = None

    def idempotency_client(self) -> Any:
        """The writer's client for the idempotency table, kept across invocations (creating one costs ~50 ms CPU)."""
        if self._idempotency_client is None:
            self._idempotency_client = boto3.client("dynamodb")
        return self._idempotency_client

    def connections(self, only: list[str] | None = None) -> list[ConnectionConfig]:
        return [c for c in self.settings.connections if not only or c.id in only]

    # -- clients (one per invocation: the deadline is the invocation's) ---------------------
    def visma_credentials(self, connection: ConnectionConfig) -> VismaCredentials:
        return VismaCredentials.model_validate(read_secret(self.secrets, connection.visma.secret_id))

    def visma_client(self, connection: ConnectionConfig, credentials: VismaCredentials,
                     deadline: Deadline) -> VismaClient:
        v = connection.visma
        return VismaClient(credentials, base_url=v.base_url, token_url=v.token_url,
                           send_company_header=v.send_company_header, timeout=v.request_timeout_seconds,
                           session=self._session(f"visma#{connection.id}"), deadline=deadline, time_zone=v.zone)

    def marketo_client(self, connection_id: str, deadline: Deadline) -> MarketoClient:
        m = self.settings.connection(connection_id).marketo
        credentials = MarketoCredentials.model_validate(read_secret(self.secrets, m.secret_id))
        budget = CallBudget(calls=m.calls_per_20s, window_seconds=m.window_seconds, concurrency=m.max_concurrency)
        return MarketoClient(m.munchkin_id, credentials, endpoint_override=m.endpoint_override,
                             limiter=SharedCallLimiter(self.state.limiter, m.munchkin_id, budget),
                             session=self._session(f"marketo#{m.munchkin_id}"), deadline=deadline)

    def marketo_clients(self, deadline: Deadline) -> Callable[[str], MarketoClient]:
        """Marketo clients by connection id, each built once for this invocation."""
        built: dict[str, MarketoClient] = {}

        def client_for(connection_id: str) -> MarketoClient:
            if connection_id not in built:
                built[connection_id] = self.marketo_client(connection_id, deadline)
            return built[connection_id]

        return client_for

    def outbox(self) -> SqsOutbox:
        if not self.settings.sync_queue_url:
            raise ConfigError("SYNC_QUEUE_URL: required here")
        return SqsOutbox(self.settings.sync_queue_url)

    def poll_work_outbox(self) -> SqsOutbox:
        if not self.settings.poll_work_queue_url:
            raise ConfigError("POLL_WORK_QUEUE_URL: required here")
        return SqsOutbox(self.settings.poll_work_queue_url)

    def _session(self, name: str) -> requests.Session:
        return self._sessions.setdefault(name, requests.Session())

    # -- mappings ---------------------------------------------------------------------------
    def mappings(self, connection: ConnectionConfig) -> dict[VismaEntity, EntityMapping]:
        """The connection's mapping per enabled entity, loaded and checked against Marketo once per refresh."""
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

    def links_contacts_to_companies(self, connection_id: str) -> bool:
        """Contacts are synced and link to their customer's Marketo company (by customer number). Asked for
        every page the poller sends, so the mapping is read once per refresh, not once per page."""
        if connection_id not in self._links:
            mapping = load_mapping(self.settings.connection(connection_id).mapping)
            self._links[connection_id] = (mapping.contact is not None and mapping.customer is not None
                                          and mapping.customer.target == "companies")
        return self._links[connection_id]

    def company_keys(self, connection: ConnectionConfig, entity: VismaEntity, client: VismaClient,
                     company_id: str) -> CompanyKeys | None:
        """Contacts link to their customer's company, when customers go to Marketo companies."""
        customers = load_mapping(connection.mapping).customer
        if entity != "contact" or customers is None or customers.target != "companies":
            return None
        checked = self.mappings(connection).get("customer", customers)
        return CompanyKeys(self.state.numbers, client, connection=connection.id, company_id=company_id,
                           customer_mapping=checked)

    def _checked(self, connection: ConnectionConfig, section: EntityMapping) -> EntityMapping | None:
        """The section checked against Marketo's describe; None when Marketo could not be asked."""
        origin = connection.mapping or "default"
        try:
            described = self.marketo_client(connection.id, NO_DEADLINE).describe_target(section.target)
        except (MarketoError, requests.RequestException) as exc:
            logger.warning("could not describe the Marketo target; mapping checked at load only",
                           extra={"connection": connection.id, "target": section.target, "error": str(exc)})
            return None
        return check_against_marketo(section, described, origin)


_cache: dict[tuple[tuple[str, str], ...], tuple[Runtime, float]] = {}


def get_runtime(clock: Callable[[], float] = time.monotonic) -> Runtime:
    """The container's Runtime; a bad configuration raises ConfigError naming the field."""
    signature = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(CONFIG_ENV_PREFIXES)))
    cached = _cache.get(signature)
    if cached is not None and clock() - cached[1] < refresh_seconds():
        return cached[0]
    settings = load_settings()
    previous = cached[0] if cached else None
    session = boto3.session.Session()
    runtime = Runtime(settings=settings, state=dynamodb_state(settings.state_table, session.resource("dynamodb"),
                                                              job_ttl_days=settings.job_ttl_days,
                                                              typed=typed_client(session)))
    if previous is not None:  # a refresh: keep the open connections and the secrets cache
        runtime.secrets, runtime._sessions = previous.secrets, previous._sessions
    _cache.clear()
    _cache[signature] = (runtime, clock())
    logger.info("runtime ready", extra={"connections": [c.id for c in settings.connections]})
    return runtime
