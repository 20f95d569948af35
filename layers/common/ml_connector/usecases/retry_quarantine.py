"""List quarantined records, and retry them after a mapping or data fix: those now valid are enqueued."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import cast

from pydantic import BaseModel, ValidationError

from ml_connector.config import VismaEntity
from ml_connector.deadline import NO_DEADLINE
from ml_connector.queues import SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.state import QuarantineEntry, State
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.outbox import SqsOutbox
from ml_connector.sync.payment import StoredPaymentFacts
from ml_connector.sync.poller import EntityContext, RecordWithoutKey, build_message

FactsByConnection = dict[str, StoredPaymentFacts]


class QuarantineRetry(BaseModel):
    requeued: int = 0
    still_invalid: int = 0
    not_retryable: int = 0


def list_quarantine(runtime: Runtime, connection: str | None = None) -> list[QuarantineEntry]:
    ids = [connection] if connection else [c.id for c in runtime.connections()] + ["_unknown"]
    return [e for conn in ids for e in runtime.state.quarantine.entries(conn)]


def retry_quarantine(runtime: Runtime, queues: SyncQueues, connection: str | None = None) -> QuarantineRetry:
    result = QuarantineRetry()
    outbox = SqsOutbox(queues.url, client=queues.sqs)
    stored: FactsByConnection = {}  # read once per connection, not once per entry
    for entry in list_quarantine(runtime, connection):
        message = _retry_message(runtime, entry, stored)
        if message is None:
            if entry.stage == "poller":
                result.still_invalid += 1
            else:
                result.not_retryable += 1
            continue
        outbox.send([message])
        runtime.state.quarantine.release(entry.connection, entry.entity, entry.ref)
        result.requeued += 1
    return result


def _retry_message(runtime: Runtime, entry: QuarantineEntry, stored: FactsByConnection) -> SyncMessage | None:
    try:
        if entry.stage == "writer" and entry.entity != "message":
            return SyncMessage.model_validate_json(entry.raw)
        if entry.stage == "poller":
            return _rebuild(runtime, entry, stored)
    except (ValidationError, ValueError, TypeError, RecordWithoutKey):
        return None
    return None


def _rebuild(runtime: Runtime, entry: QuarantineEntry, stored: FactsByConnection) -> SyncMessage:
    conn = runtime.settings.connection(entry.connection)
    entity = cast(VismaEntity, entry.entity)
    credentials = runtime.visma_credentials(conn)
    client = runtime.visma_client(conn, credentials, NO_DEADLINE)
    return rebuild_message(entry, runtime.state, EntityContext(
        conn, entity, credentials.company_id, runtime.mappings(conn)[entity],
        company_keys=runtime.company_keys(conn, entity, client, credentials.company_id)), stored)


def rebuild_message(entry: QuarantineEntry, state: State, context: EntityContext,
                    stored: FactsByConnection | None = None) -> SyncMessage:
    """The record as the poller would build it now, with the payment facts the poller stored (without
    them a customer with overdue invoices would be sent as current)."""
    if context.entity == "customer" and context.mapping.uses_payment:
        stored = {} if stored is None else stored
        connection = context.connection.id
        if connection not in stored:
            stored[connection] = StoredPaymentFacts(state.payments, connection)
        context = replace(context, payment=stored[connection])
    return build_message(json.loads(entry.raw), context)
