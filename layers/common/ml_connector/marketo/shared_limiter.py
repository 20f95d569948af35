"""The Marketo call budget held across every writer invocation, in the state table.

Lambda scales the writer out, so a per-process throttle multiplies with the number of containers.
Two DynamoDB structures per Marketo instance hold the budget for all of them:

- Rate: a virtual schedule (GCRA / leaky bucket). One item keeps the next free start time; each call
  reserves the next slot with a conditional write and sleeps until it. Slots are window/calls apart,
  so no window of ``window_seconds`` ever holds more than ``calls`` starts, whoever makes them.
- Concurrency: ``concurrency`` lease items. A call holds one lease while in flight; a lease carries an
  expiry, so a crashed container cannot leak a slot for longer than one call timeout.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from ml_connector.marketo.limits import CallBudget

LEASE_SECONDS = 180.0  # longer than the slowest Marketo call (Sync Custom Objects: 120 s) plus our timeout margin
LEASE_POLL_SECONDS = 0.05


class DynamoCallLimiter:
    def __init__(self, table: Any, instance: str, budget: CallBudget | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.budget = budget or CallBudget()
        self._table = table
        self._pk = f"LIMIT#{instance}"
        self._clock = clock
        self._owner = uuid.uuid4().hex

    @contextmanager
    def slot(self, wait: Callable[[float, str], None]) -> Iterator[None]:
        lease = self._acquire_lease(wait)
        try:
            start = self._reserve_start()
            wait(start - self._clock(), "Marketo call budget (shared)")
            yield
        finally:
            self._release_lease(lease)

    # -- rate ---------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return self.budget.guarded_window / self.budget.calls

    def _reserve_start(self) -> float:
        """Reserve the next free start time for this call; returns it (epoch seconds)."""
        while True:
            item = self._table.get_item(Key={"pk": self._pk, "sk": "RATE"}, ConsistentRead=True).get("Item")
            now = self._clock()
            previous = Decimal(str(item["next"])) if item else None
            start = max(float(previous) if previous is not None else now, now)
            following = Decimal(repr(round(start + self.interval, 6)))
            try:
                if previous is None:
                    self._table.put_item(Item={"pk": self._pk, "sk": "RATE", "next": following},
                                         ConditionExpression="attribute_not_exists(pk)")
                else:
                    self._table.put_item(Item={"pk": self._pk, "sk": "RATE", "next": following},
                                         ConditionExpression="#n = :previous",
                                         ExpressionAttributeNames={"#n": "next"},
                                         ExpressionAttributeValues={":previous": previous})
                return start
            except ClientError as exc:
                if not _conditional_failure(exc):
                    raise  # another writer took the slot first: read again

    # -- concurrency ----------------------------------------------------------------------------
    def _acquire_lease(self, wait: Callable[[float, str], None]) -> str:
        slots = list(range(self.budget.concurrency))
        while True:
            random.shuffle(slots)  # spread contention over the lease items
            for index in slots:
                if self._try_lease(index):
                    return f"LEASE#{index}"
            wait(LEASE_POLL_SECONDS * random.uniform(1, 2), "Marketo concurrent-call budget (shared)")

    def _try_lease(self, index: int) -> bool:
        now = self._clock()
        try:
            self._table.put_item(
                Item={"pk": self._pk, "sk": f"LEASE#{index}", "owner": self._owner,
                      "until": Decimal(repr(round(now + LEASE_SECONDS, 3)))},
                ConditionExpression="attribute_not_exists(pk) OR #u < :now",
                ExpressionAttributeNames={"#u": "until"},
                ExpressionAttributeValues={":now": Decimal(repr(round(now, 3)))})
            return True
        except ClientError as exc:
            if _conditional_failure(exc):
                return False
            raise

    def _release_lease(self, lease: str) -> None:
        try:
            self._table.delete_item(Key={"pk": self._pk, "sk": lease}, ConditionExpression="#o = :me",
                                    ExpressionAttributeNames={"#o": "owner"},
                                    ExpressionAttributeValues={":me": self._owner})
        except ClientError as exc:
            if not _conditional_failure(exc):
                raise  # a lease that expired and was taken over is no longer ours to delete


def _conditional_failure(exc: ClientError) -> bool:
    return bool(exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException")
