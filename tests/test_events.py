"""events/: the sample payloads and the ``sam local invoke --env-vars`` file stay in step with template.yaml."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from localrun.sam_template import load_template, sam_function
from ml_connector.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"
FUNCTIONS = ("PollerFunction", "WriterFunction")


@pytest.fixture(scope="module")
def env_vars() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / "env.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_env_json_has_exactly_the_two_functions(env_vars: dict[str, Any]) -> None:
    # SAM's --env-vars format: one object per function logical id (a "Parameters" key would apply to all).
    assert sorted(env_vars) == sorted(FUNCTIONS)
    for function in FUNCTIONS:
        assert isinstance(env_vars[function], dict) and env_vars[function]
        assert all(isinstance(value, str) for value in env_vars[function].values()), function


@pytest.mark.parametrize("function", FUNCTIONS)
def test_env_json_sets_only_variables_the_template_gives_the_function(
        env_vars: dict[str, Any], template: dict[str, Any], function: str) -> None:
    # sam local overrides only variables the function's template environment declares; any other is ignored.
    declared = set(sam_function(template, function)["Environment"]["Variables"])
    assert set(env_vars[function]) <= declared, sorted(set(env_vars[function]) - declared)
    # and it sets all of them, so the example shows the whole environment
    assert set(env_vars[function]) == declared, sorted(declared - set(env_vars[function]))


@pytest.mark.parametrize("function", FUNCTIONS)
def test_env_json_is_a_valid_configuration(env_vars: dict[str, Any], function: str) -> None:
    settings = load_settings(env_vars[function])
    assert [c.id for c in settings.connections] == ["default"]
    assert settings.connections[0].marketo.munchkin_id == "123-ABC-456"


@pytest.mark.parametrize("name", ["schedule.json", "sqs_batch.json"])
def test_sample_events_parse(name: str) -> None:
    assert isinstance(json.loads((EVENTS / name).read_text(encoding="utf-8")), dict)
