"""Fixtures every template test uses, and the order the suite runs in."""

from __future__ import annotations

from typing import Any

import pytest
from template_support import sam_template, transformed


@pytest.fixture(scope="module")
def sam() -> dict[str, Any]:
    return sam_template()


@pytest.fixture(scope="module")
def cfn(sam: dict[str, Any]) -> dict[str, Any]:
    """The template as CloudFormation sees it after the SAM transform."""
    return transformed(sam)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files marked ``heavy`` run first (otherwise in collection order): ``make test`` hands whole files to two
    workers as they free up, so the long files must not be the last ones handed out."""
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
