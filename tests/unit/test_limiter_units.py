"""The shared Marketo call budget's items in DynamoDB units (on moto, counted as AWS bills them): writers that
wait for a concurrent-call slot try the lease items every 50-100 ms, so a lease in use must not cost a write."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import pytest
from moto_tables import Tables, moto_tables

from ml_connector.state.memory import MemoryLimiterItems
from ml_connector.state.ports import LimiterItems


@pytest.fixture(scope="module")
def tables() -> Iterator[Tables]:
    with moto_tables() as made:
        yield made


@pytest.fixture(params=["memory", "dynamodb"])
def items(request: pytest.FixtureRequest) -> LimiterItems:
    if request.param == "memory":
        return MemoryLimiterItems()
    return request.getfixturevalue("tables").state().limiter  # type: ignore[no-any-return]


def test_a_lease_is_held_until_given_back_or_expired(items):
    assert items.take_lease("i1", 0, "a", Decimal(100), Decimal(280))
    assert not items.take_lease("i1", 0, "b", Decimal(101), Decimal(281))
    assert items.take_lease("i1", 1, "b", Decimal(101), Decimal(281))  # another slot
    assert items.take_lease("i1", 0, "b", Decimal("280.001"), Decimal(460))  # expired
    items.give_back_lease("i1", 0, "a")  # no longer a's: nothing happens
    assert not items.take_lease("i1", 0, "c", Decimal(300), Decimal(480))
    items.give_back_lease("i1", 0, "b")
    assert items.take_lease("i1", 0, "c", Decimal(300), Decimal(480))


def test_a_lease_in_use_costs_half_a_read_not_a_failed_write(tables):
    items = tables.state().limiter
    assert items.take_lease("i1", 0, "a", Decimal(100), Decimal(280))
    with tables.metered() as busy:
        assert not items.take_lease("i1", 0, "b", Decimal(101), Decimal(281))
    assert busy == {"read": {"LIMIT": 0.5}, "write": {}}
    with tables.metered() as free:
        assert items.take_lease("i1", 1, "b", Decimal(101), Decimal(281))
    assert free == {"read": {"LIMIT": 0.5}, "write": {"LIMIT": 1.0}}
