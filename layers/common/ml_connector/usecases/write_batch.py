"""Write one SQS batch to Marketo: each chunk's Marketo call runs under Powertools idempotency keyed
on its job ID, its result stored as a pydantic model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from pydantic import BaseModel

from ml_connector.config import RuntimeSettings
from ml_connector.deadline import Deadline
from ml_connector.runtime import Runtime
from ml_connector.sync.ports import MarketoWriter
from ml_connector.sync.writer import (
    ChunkJob,
    ChunkResults,
    ChunkWrite,
    InboundMessage,
    Writer,
    WriteReport,
    write_chunk_to_marketo,
)


class CompactResults(PydanticSerializer):
    """Chunk results without their empty fields: the idempotency item is written at its full size
    (billed per KB) for every chunk, and 300 results with nulls and empty reason lists are twice as big."""

    def __init__(self) -> None:
        super().__init__(model=ChunkResults)

    def to_dict(self, data: BaseModel) -> dict[str, Any]:
        return data.model_dump(mode="json", exclude_defaults=True)


def idempotency_config(settings: RuntimeSettings) -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="job_id", raise_on_no_idempotency_key=True,
                             expires_after_seconds=settings.job_ttl_days * 86_400)


def write_batch(runtime: Runtime, messages: list[InboundMessage], deadline: Deadline,
                idempotency: IdempotencyConfig | None = None) -> WriteReport:
    marketo_for = runtime.marketo_clients(deadline)
    write_chunk = None
    if runtime.settings.idempotency_table:
        write_chunk = idempotent_write(runtime.settings.idempotency_table,
                                       idempotency or idempotency_config(runtime.settings), marketo_for)
    writer = Writer(runtime.settings, runtime.state, marketo_for, write_chunk=write_chunk, deadline=deadline)
    return writer.process(messages)


def idempotent_write(table: str, config: IdempotencyConfig, marketo_for: Callable[[str], MarketoWriter]
                     ) -> ChunkWrite:
    def write_job(job: ChunkJob) -> ChunkResults:
        return write_chunk_to_marketo(marketo_for(job.connection), job)

    return idempotent_function(data_keyword_argument="job", config=config,  # type: ignore[no-any-return]
                               persistence_store=DynamoDBPersistenceLayer(table_name=table),
                               output_serializer=CompactResults())(write_job)
