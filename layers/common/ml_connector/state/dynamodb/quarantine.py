from __future__ import annotations

from collections.abc import Iterable

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable, plain
from ml_connector.state.models import QuarantineEntry, QuarantineMark

MARK_FIELDS = ("sk", "stage", "version")


class DynamoQuarantine:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def put(self, entry: QuarantineEntry) -> None:
        self._t.put({**keys.key(keys.quarantine(entry.connection), keys.quarantine_sk(entry.entity, entry.ref)),
                     **entry.model_dump()})

    def entries(self, connection: str) -> list[QuarantineEntry]:
        return [QuarantineEntry.model_validate(plain(i)) for i in self._t.query(keys.quarantine(connection))]

    def marks(self, connection: str, keys_: Iterable[str]) -> dict[str, QuarantineMark]:
        return _marks(self._t.get_many(keys.quarantine(connection), keys_, projection=MARK_FIELDS))

    def index(self, connection: str) -> dict[str, QuarantineMark]:
        return _marks(self._t.query(keys.quarantine(connection), projection=MARK_FIELDS))

    def release(self, connection: str, entity: str, ref: str) -> None:
        self._t.delete(keys.key(keys.quarantine(connection), keys.quarantine_sk(entity, ref)))


def _marks(items: Iterable[dict[str, str]]) -> dict[str, QuarantineMark]:
    return {i["sk"]: QuarantineMark(stage=i.get("stage", ""), version=i.get("version")) for i in items}
