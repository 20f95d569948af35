"""One long-lived process (a warm Lambda container): a rotated secret and an edited connections document
take effect within the refresh interval, without a deploy or a cold start. The interval is the documented
setting CONFIG_REFRESH_SECONDS (five minutes by default), one second here."""

from __future__ import annotations

import json
import time

import pytest

from ml_connector.config import load_settings

pytestmark = pytest.mark.integration
REFRESH_S = 1


def connections_document(env, entities: list[str]) -> str:
    """The stack's own single connection, written as a connections document limited to ``entities``."""
    function_env = {**env.stack.function_environment("PollerFunction"), **env.env()}
    function_env.pop("CONNECTIONS_CONFIG", None)
    connection = load_settings(function_env).connections[0].model_dump(mode="json", exclude_none=True)
    return json.dumps({"connections": [{**connection, "entities": entities}]})


def polled_entities(env) -> set[str]:
    return {e["entity"] for e in env.run_poller()["entities"]}


def test_rotated_secret_and_edited_connections_are_picked_up_in_a_warm_container(local_stack, tmp_path):
    document = tmp_path / "connections.json"
    env = local_stack(seed=91, customers=30, suppliers=10,
                      extra_env={"CONFIG_REFRESH_SECONDS": str(REFRESH_S), "CONNECTIONS_CONFIG": str(document)})
    document.write_text(connections_document(env, ["customer", "supplier"]))
    assert polled_entities(env) == {"customer", "supplier"}

    document.write_text(connections_document(env, ["customer"]))  # an operator edits the document
    time.sleep(REFRESH_S + 0.2)
    assert polled_entities(env) == {"customer"}

    secrets = env.aws.client("secretsmanager")
    visma_secret = env.resource("VismaCredentialsSecret")
    secrets.put_secret_value(SecretId=visma_secret, SecretString=json.dumps(
        {**env.visma.credentials, "client_secret": "rotated-but-wrong"}))
    env.visma.expire_tokens()  # the next call needs a new token: it must be asked with the rotated secret
    time.sleep(REFRESH_S + 0.2)
    with pytest.raises(Exception, match="(?i)visma"):
        env.run_poller()

    secrets.put_secret_value(SecretId=visma_secret, SecretString=json.dumps(env.visma.credentials))
    time.sleep(REFRESH_S + 0.2)
    assert polled_entities(env) == {"customer"}
