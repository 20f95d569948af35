"""Fixtures every template test uses."""

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
