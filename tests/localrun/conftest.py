from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localrun.aws import DeployedStack, LocalAws, deploy_template
from localrun.lambda_runtime import reset_handlers

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_TEMPLATE = FIXTURES / "template.yaml"
REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="session")
def aws() -> Iterator[LocalAws]:
    with LocalAws() as server:
        yield server


@pytest.fixture
def fresh_aws(aws: LocalAws) -> LocalAws:
    aws.reset()
    return aws


@pytest.fixture
def fixture_stack(fresh_aws: LocalAws) -> Iterator[DeployedStack]:
    reset_handlers()
    yield deploy_template(fresh_aws, FIXTURE_TEMPLATE, stack_name="fixture", parameters={"Greeting": "hei"})
    reset_handlers()
