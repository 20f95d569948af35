"""Fixtures for the unit tests that run one contract on the in-memory twin and on DynamoDB (moto), units metered."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from moto_tables import Tables, moto_tables

from ml_connector.state import State
from ml_connector.state.memory import memory_state


@pytest.fixture(scope="module")
def tables() -> Iterator[Tables]:
    """Fresh state tables on one moto server per module, with the bench's unit meter."""
    with moto_tables() as made:
        yield made


@pytest.fixture(params=["memory", "dynamodb"])
def memory_or_dynamodb_state(request: pytest.FixtureRequest) -> State:
    """The same test on the in-memory twin and on a fresh DynamoDB table."""
    return memory_state() if request.param == "memory" else request.getfixturevalue("tables").state()  # type: ignore[no-any-return]
