"""The integration suites' shared set-up: one factory for the local stack (moto's server with the
template deployed, both sandboxes, the Lambda runtime emulation)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from localrun.environment import LocalEnvironment

StartStack = Callable[..., LocalEnvironment]


@pytest.fixture(scope="module")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartStack]:
    """``local_stack(seed=..., customers=..., suppliers=..., **options)`` starts a stack whose function
    logs go to a file of the module's own; every stack it started stops when the module is done."""
    with contextlib.ExitStack() as stacks:
        def start(**options: Any) -> LocalEnvironment:
            options.setdefault("log_path", tmp_path_factory.mktemp("logs") / "lambda.log")
            return stacks.enter_context(LocalEnvironment(**options))

        yield start
