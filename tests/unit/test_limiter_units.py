"""The shared Marketo call budget's items in DynamoDB units (on moto, counted as AWS bills them): writers that
wait for a concurrent-call slot try the lease items every 50-100 ms, so a lease in use must not cost a write."""

from __future__ import annotations

from decimal import Decimal

import pytest

from ml_connector.state import State
from ml_connector.state.ports import LimiterItems


@pytest.fixture
def items(memory_or_dynamodb_state: State) -> LimiterItems:
    return memory_or_dynamodb_state.limiter


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
