"""Payment facts of customers, several to an item: DynamoDB bills every item read or written by the (started)
KB, so one item per customer cost a write unit per changed customer and a poll that read them all paid for
every customer ever stored.

``PAYB#`` items hold the facts of up to 64 customers (consecutive internalIds), an attribute each; ``PAYO#``
items the same entries of those with overdue invoices, which a poll reads whole (a customer no longer overdue
is found among them). A poll reads the buckets of the customers it meets, and writes a customer's attribute
with an update that leaves its neighbours alone (no read-modify-write, so no lost update).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from itertools import islice
from typing import Any

from ml_connector.observability import logger
from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import utc_iso

FIELDS = ("balance", "overdue_amount", "overdue_invoices", "max_dunning_level")
OVERDUE_FIELDS = FIELDS[1:]
_MIGRATE_CHUNK = 500
# Buckets a range read may take in that nobody asked for: a bucket is ~0.5-1.5 KB, so up to four cost less than
# the half unit a read of one more bucket by key does.
RUN_GAP = 4
PARALLEL_BUCKETS = 16


class DynamoPaymentFacts:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    @staticmethod
    def bucket(internal_id: int) -> int:
        return keys.payment_bucket(internal_id)

    def overdue(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """One query of the PAYO# partition (billed on the size it reads: the overdue customers only). The first
        poll after an upgrade converts the PAYID# items first (``MIGRATED`` marks it done)."""
        migrated = False
        for item in self._t.query(keys.overdue_payments(connection)):
            migrated = migrated or item["sk"] == keys.MIGRATED_SK
            yield from _entries(item)
        if not migrated:
            self._migrate(connection)
            for item in self._t.query(keys.overdue_payments(connection)):
                yield from _entries(item)

    def get(self, connection: str, internal_ids: Iterable[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """The stored facts of every customer in the buckets of these (neighbours included: they came in the same
        read). Buckets close together are read as one range query, billed on the size it reads (a page of
        customers, or a dense delta, costs a fraction of a unit per bucket), lone ones by key (half a unit each).
        Eventually consistent, at half the price: facts are written by an earlier poll of the connection (one
        poll at a time, under its lease, minutes apart), long before a read could see an older copy."""
        pk = keys.payment_buckets(connection)
        runs = _runs(sorted({self.bucket(i) for i in internal_ids}))
        lone = [keys.payment_bucket_sk(low) for low, high in runs if low == high]
        for item in self._t.get_many(pk, lone, consistent=False):
            yield from _entries(item)
        for low, high in runs:
            if low != high:
                for item in self._t.query_range(pk, keys.payment_bucket_sk(low), keys.payment_bucket_sk(high)):
                    yield from _entries(item)

    def all(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for item in self._t.query(keys.payment_buckets(connection)):
            yield from _entries(item)

    def put(self, connection: str, facts: Iterable[tuple[int, dict[str, Any]]],
            overdue_before: Collection[int] = ()) -> None:
        """Per bucket one update of the PAYO# item (when an overdue customer is among the changes, or one that was:
        ``overdue_before``) and then one of the PAYB# item. In that order: a poll stopped between the two leaves
        the PAYO# entry newer, and it is the one a poll loads first and keeps."""
        by_bucket: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for internal_id, values in facts:
            by_bucket[self.bucket(internal_id)].append((internal_id, values))

        def write(bucket: int) -> None:
            entries = by_bucket[bucket]
            sk = keys.payment_bucket_sk(bucket)
            index = [(i, v if _overdue(v) else None) for i, v in entries if _overdue(v) or i in overdue_before]
            emptied = self._update(keys.overdue_payments(connection), sk, index)
            if emptied is not None:
                self._drop_emptied(keys.key(keys.overdue_payments(connection), sk), emptied)
            self._update(keys.payment_buckets(connection), sk,
                         [(i, v if _overdue(v) or v.get("balance") else None) for i, v in entries])

        # Buckets side by side (a full load or an upgrade writes thousands); each bucket's two writes in order.
        with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL_BUCKETS, len(by_bucket)))) as pool:
            list(pool.map(write, by_bucket))

    def _update(self, pk: str, sk: str, entries: list[tuple[int, dict[str, Any] | None]]) -> Any:
        """SET the entries with facts, REMOVE those without, in one update of the item (and count the updates in
        ``v``). Returns ``v`` when no entry is left in the item, else None."""
        if not entries:
            return None
        names = {f"#c{n}": str(internal_id) for n, (internal_id, _) in enumerate(entries)}
        values: dict[str, Any] = {f":c{n}": _encode(v) for n, (_, v) in enumerate(entries) if v is not None}
        sets = [f"#c{n} = :c{n}" for n, (_, v) in enumerate(entries) if v is not None]
        removes = [f"#c{n}" for n, (_, v) in enumerate(entries) if v is None]
        expression = " ".join(part for part in (
            "SET " + ", ".join(sets) if sets else "", "REMOVE " + ", ".join(removes) if removes else "",
            "ADD #v :one") if part)
        after = self._t.update(keys.key(pk, sk), UpdateExpression=expression,
                               ExpressionAttributeNames={**names, "#v": "v"},
                               ExpressionAttributeValues={**values, ":one": 1}, ReturnValues="ALL_NEW")
        return after.get("v") if not any(name.isdigit() for name in after) else None

    def _drop_emptied(self, item_key: dict[str, str], version: Any) -> None:
        """An overdue item whose last customer left is deleted, or the query every poll makes would read more and
        more empty items. Only if no update came in between (``v`` unchanged)."""
        try:
            self._t.delete(item_key, ConditionExpression="#v = :v", ExpressionAttributeNames={"#v": "v"},
                           ExpressionAttributeValues={":v": version})
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise

    def _migrate(self, connection: str) -> None:
        """PAYID# items (one per customer) into PAYB#/PAYO#: read once, then left unread (they may be deleted)."""
        legacy = ((int(i["sk"]), {k: float(v) if isinstance(v, Decimal) else v for k, v in i.items()
                                  if k not in ("pk", "sk")}) for i in self._t.query(keys.legacy_payments(connection)))
        converted = 0
        while chunk := list(islice(legacy, _MIGRATE_CHUNK)):
            self.put(connection, chunk, overdue_before=())
            converted += len(chunk)
        self._t.put({**keys.key(keys.overdue_payments(connection), keys.MIGRATED_SK), "at": utc_iso(datetime.now(UTC))})
        if converted:
            logger.info("payment facts converted to buckets", extra={"connection": connection, "customers": converted})


def _runs(buckets: list[int]) -> list[tuple[int, int]]:
    """Sorted buckets as (first, last) runs, a run taking in gaps of up to ``RUN_GAP`` buckets."""
    runs: list[tuple[int, int]] = []
    for bucket in buckets:
        if runs and bucket - runs[-1][1] <= RUN_GAP + 1:
            runs[-1] = (runs[-1][0], bucket)
        else:
            runs.append((bucket, bucket))
    return runs


def _overdue(values: dict[str, Any]) -> bool:
    return any(values.get(f) for f in OVERDUE_FIELDS)


def _encode(values: dict[str, Any]) -> str:
    """``balance|amount|invoices|level|number`` with zeros empty: ~20 bytes a customer. The number goes last, so
    a ``|`` in it cannot shift the facts."""
    return "|".join([*(_number(values.get(f)) for f in FIELDS), str(values.get("number") or "")])


def _number(value: Any) -> str:
    number = float(value or 0)
    return "" if number == 0 else str(int(number)) if number.is_integer() else repr(number)


def _entries(item: dict[str, Any]) -> Iterator[tuple[int, dict[str, Any]]]:
    for name, text in item.items():
        if name.isdigit() and isinstance(text, str):
            *facts, number = text.split("|", len(FIELDS))
            yield int(name), {"number": number or None,
                              **{f: float(v) if v else 0.0 for f, v in zip(FIELDS, facts, strict=True)}}
