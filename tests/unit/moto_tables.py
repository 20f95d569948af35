"""State tables on one moto server, with the bench's unit meter (``bench/units.py``) on its request layer: for
tests that count DynamoDB request units as AWS bills them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from bench.units import DynamoUnits
from localrun.aws import LocalAws
from ml_connector.state import State
from ml_connector.state.dynamodb import dynamodb_state
from ml_connector.state.dynamodb.table import StateTable


class Tables:
    """Fresh state tables on one moto server."""

    def __init__(self, aws: LocalAws, units: DynamoUnits) -> None:
        self.aws, self.units, self.count = aws, units, 0
        self._prefix = uuid.uuid4().hex[:8]
        self.resource = aws.session().resource("dynamodb", endpoint_url=aws.endpoint_url)

    def table(self) -> StateTable:
        self.count += 1
        name = f"state-{self._prefix}-{self.count}"  # one moto server may serve several test modules
        self.aws.client("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        return StateTable(name, self.resource)

    def state(self, table: StateTable | None = None) -> State:
        return dynamodb_state((table or self.table()).name, self.resource)

    @contextmanager
    def metered(self) -> Iterator[dict[str, dict[str, float]]]:
        """Units billed inside the block, by kind (``read``/``write``) and key family; filled in on exit."""
        spent: dict[str, dict[str, float]] = {"read": {}, "write": {}}
        before = self.units.snapshot()
        yield spent
        after = self.units.snapshot()
        for kind in spent:
            spent[kind].update({f: round(v - before[kind].get(f, 0.0), 3) for f, v in after[kind].items()
                                if v != before[kind].get(f, 0.0)})


@contextmanager
def moto_tables() -> Iterator[Tables]:
    units = DynamoUnits().install()
    try:
        with LocalAws() as aws:
            yield Tables(aws, units)
    finally:
        units.uninstall()
