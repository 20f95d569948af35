"""Write one SQS batch to Marketo: each chunk's Marketo call runs under Powertools idempotency keyed
on its job ID, its result stored as a pydantic model."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.serialization.pydantic import PydanticSerializer
from pydantic import BaseModel, PrivateAttr

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

_COLUMNS = ("status", "id", "marketoGUID")  # what a usual result holds besides its seq


class CompactResults(PydanticSerializer):
    """Chunk results as the idempotency record stores them, small: the item is written for every chunk and
    billed per started KB, and 300 results as JSON are ~15 KB. The usual result (its status and Marketo id, at
    its own position) goes in columns, any other one (skipped with reasons, an unknown field) whole, and all of
    it zlib-compressed: ~1.5 KB for 300 results (2 write units). A replay reads back equal results."""

    def __init__(self) -> None:
        super().__init__(model=ChunkResults)

    def to_dict(self, data: BaseModel) -> dict[str, Any]:
        assert isinstance(data, ChunkResults)
        columns: dict[str, list[Any]] = {name: [] for name in _COLUMNS}
        whole: dict[str, dict[str, Any]] = {}
        for index, result in enumerate(data.results):
            row = result.model_dump(mode="json", exclude_defaults=True)
            usual = row.get("seq") == index and set(row) <= {"seq", *_COLUMNS}
            if not usual:
                whole[str(index)] = row
            for name, column in columns.items():
                column.append(row.get(name) if usual else None)
        columns["id"] = _to_deltas(columns["id"])
        packed = {"n": len(data.results), "c": {k: v for k, v in columns.items() if any(x is not None for x in v)},
                  "w": whole}
        text = json.dumps(packed, separators=(",", ":")).encode("utf-8")
        return {"z": base64.b85encode(zlib.compress(text, 9)).decode("ascii")}

    def from_dict(self, data: dict[str, Any]) -> BaseModel:
        if "z" not in data:  # stored before the compact form (within the job TTL): the plain model dump
            return ChunkResults.model_validate(data)
        packed = json.loads(zlib.decompress(base64.b85decode(data["z"])))
        columns, whole = packed["c"], packed["w"]
        if "id" in columns:
            columns["id"] = _from_deltas(columns["id"])
        rows = [whole.get(str(i)) or {"seq": i, **{k: v[i] for k, v in columns.items() if v[i] is not None}}
                for i in range(packed["n"])]
        return ChunkResults.model_validate({"results": rows})


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_deltas(ids: list[Any]) -> list[Any]:
    """Integer ids as differences from the previous integer id: Marketo numbers the records it creates in
    sequence, so a full load's ids compress to almost nothing. Other values stay as they are."""
    out, previous = [], 0
    for value in ids:
        out.append(value - previous if _is_int(value) else value)
        previous = value if _is_int(value) else previous
    return out


def _from_deltas(deltas: list[Any]) -> list[Any]:
    out, previous = [], 0
    for value in deltas:
        previous = previous + value if _is_int(value) else previous
        out.append(previous if _is_int(value) else value)
    return out


def idempotency_config(settings: RuntimeSettings) -> IdempotencyConfig:
    return IdempotencyConfig(event_key_jmespath="job_id", raise_on_no_idempotency_key=True,
                             expires_after_seconds=settings.job_ttl_days * 86_400)


def write_batch(runtime: Runtime, messages: list[InboundMessage], deadline: Deadline,
                idempotency: IdempotencyConfig | None = None) -> WriteReport:
    marketo_for = runtime.marketo_clients(deadline)
    write_chunk = None
    if runtime.settings.idempotency_table:
        write_chunk = idempotent_write(runtime.settings.idempotency_table,
                                       idempotency or idempotency_config(runtime.settings), marketo_for,
                                       client=runtime.idempotency_client())
    writer = Writer(runtime.settings, runtime.state, marketo_for, write_chunk=write_chunk, deadline=deadline)
    return writer.process(messages)


class JobRef(BaseModel):
    """What idempotency sees of a chunk job: its ID (the key) alone. Powertools dumps and deep-copies the
    payload it is given; the whole job (300 records) cost more CPU per chunk than the Marketo call's own JSON."""

    job_id: str
    _job: ChunkJob = PrivateAttr()

    @classmethod
    def of(cls, job: ChunkJob) -> JobRef:
        ref = cls(job_id=job.job_id)
        ref._job = job
        return ref


def idempotent_write(table: str, config: IdempotencyConfig, marketo_for: Callable[[str], MarketoWriter], *,
                     client: Any | None = None) -> ChunkWrite:
    """``client``: the DynamoDB client for the idempotency table (one kept across invocations; creating one per
    invocation cost ~50 ms of CPU)."""
    def write_job(job: JobRef) -> ChunkResults:
        return write_chunk_to_marketo(marketo_for(job._job.connection), job._job)

    store = DynamoDBPersistenceLayer(table_name=table, boto3_client=client)
    # Chunks of a batch run in threads, and the first call configures the store: Powertools marks it configured
    # before it compiles the key's JMESPath, so a second thread then found no key expression (AttributeError:
    # the chunk failed and went back to the queue). Configured here, before any thread.
    store.configure(config, f"{write_job.__module__}.{write_job.__qualname__}")
    idempotent = idempotent_function(data_keyword_argument="job", config=config, persistence_store=store,
                                     output_serializer=CompactResults())(write_job)

    def write(job: ChunkJob) -> ChunkResults:
        return idempotent(job=JobRef.of(job))  # type: ignore[no-any-return]

    return write
