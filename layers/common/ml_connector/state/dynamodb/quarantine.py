from __future__ import annotations

from collections.abc import Iterable

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable, plain
from ml_connector.state.models import QuarantineEntry, QuarantineMark


class DynamoQuarantine:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def put(self, entry: QuarantineEntry) -> None:
        sk = keys.quarantine_sk(entry.entity, entry.ref)
        mark = {"stage": entry.stage, **({"version": entry.version} if entry.version else {})}
        self._t.put_many([{**keys.key(keys.quarantine(entry.connection), sk), **entry.model_dump()},
                          {**keys.key(keys.quarantine_index(entry.connection), sk), **mark}])

    def entries(self, connection: str) -> list[QuarantineEntry]:
        return [QuarantineEntry.model_validate(plain(i)) for i in self._t.query(keys.quarantine(connection))]

    def index(self, connection: str) -> dict[str, QuarantineMark]:
        # The index items, not the entries: a query is billed by the size of what it reads, projection or not.
        items = list(self._t.query(keys.quarantine_index(connection)))
        if not any(i["sk"] == keys.QUARANTINE_INDEXED_SK for i in items):
            return self._index_entries_from_before_the_index(connection)
        return _marks(i for i in items if i["sk"] != keys.QUARANTINE_INDEXED_SK)

    def _index_entries_from_before_the_index(self, connection: str) -> dict[str, QuarantineMark]:
        """Entries quarantined by a version without the index are indexed once; the ``INDEXED`` item then says so
        (without it, every poll of a connection with nothing quarantined would read the entries as well)."""
        marks = _marks(self._t.query(keys.quarantine(connection), projection=("sk", "stage", "version")))
        pk = keys.quarantine_index(connection)
        self._t.put_many([*({**keys.key(pk, sk), **mark.model_dump(exclude_none=True)} for sk, mark in marks.items()),
                          keys.key(pk, keys.QUARANTINE_INDEXED_SK)])
        return marks

    def release(self, connection: str, entity: str, ref: str) -> None:
        sk = keys.quarantine_sk(entity, ref)
        self._t.delete_many([keys.key(keys.quarantine(connection), sk),
                             keys.key(keys.quarantine_index(connection), sk)])


def _marks(items: Iterable[dict[str, str]]) -> dict[str, QuarantineMark]:
    return {i["sk"]: QuarantineMark(stage=i.get("stage", ""), version=i.get("version")) for i in items}
