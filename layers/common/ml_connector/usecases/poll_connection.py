"""Poll one connection: every entity it syncs, from its watermark, into the given poller's sink."""

from __future__ import annotations

from collections.abc import Callable

from ml_connector.config import ConnectionConfig
from ml_connector.deadline import Deadline
from ml_connector.observability import logger
from ml_connector.runtime import Runtime
from ml_connector.sync.payment import PaymentReader
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink
from ml_connector.sync.reconcile import Reconciler


def queue_poller(runtime: Runtime, deadline: Deadline) -> Poller:
    """A poller that sends to the sync queue and moves watermarks, and reads in full when a reconcile is due."""
    outbox = runtime.outbox()
    sink = QueueSink(runtime.state, outbox, remember_numbers=runtime.links_contacts_to_companies)
    reconciler = Reconciler(runtime.state, outbox, runtime.marketo_clients(deadline),
                            lambda connection, entity: runtime.mappings(connection)[entity])
    return Poller(runtime.state, sink, deadline=deadline, safety_margin=runtime.settings.safety_margin_seconds,
                  full_reads=reconciler)


def poll_connection(runtime: Runtime, connection: ConnectionConfig, poller: Poller, deadline: Deadline,
                    before_each: Callable[[], None] = lambda: None, *,
                    open_windows_only: bool = False) -> list[EntityPollReport]:
    """A failure is reported per entity, not raised, so the other entities and connections still run.
    ``before_each`` runs before every entity (the lease is renewed there). ``open_windows_only``: a continuation
    polls only the entities whose window is still open (a new window waits for the next tick, or a
    continuation would start new windows for ever)."""
    reports = []
    for entity, mapping in runtime.mappings(connection).items():
        if open_windows_only and not runtime.state.windows.is_open(connection.id, entity):
            continue
        before_each()
        try:
            credentials = runtime.visma_credentials(connection)
            client = runtime.visma_client(connection, credentials, deadline)
            payments = (PaymentReader(client, connection.visma.page_size)
                        if entity == "customer" and mapping.uses_payment else None)
            reports.append(poller.poll_entity(
                connection, client, entity, company_id=credentials.company_id, mapping=mapping, payments=payments,
                company_keys=runtime.company_keys(connection, entity, client, credentials.company_id)))
        except Exception as exc:
            logger.exception("poll failed", extra={"connection": connection.id, "entity": entity})
            reports.append(EntityPollReport(connection=connection.id, entity=entity,
                                            error=f"{type(exc).__name__}: {exc}"))
    return reports
