"""Known secret and token values never appear in logs, metrics, stored state, exceptions or CLI output."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from localrun.environment import LocalEnvironment

pytestmark = pytest.mark.integration


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s[:6] + "…" for s in secrets if s and s in text]


def test_full_cycle_with_refreshes_and_failures_leaks_nothing(tmp_path, capsys):
    log = tmp_path / "lambda.log"
    with LocalEnvironment(seed=81, customers=40, suppliers=10, log_path=log) as env:
        env.cycle("full load")
        env.visma.expire_tokens()
        env.marketo.expire_tokens()  # both token refresh paths run
        env.visma.store.edit_random(5, rng_seed=82)
        env.cycle("changes")
        target = tmp_path / "target.json"
        env.local_target().write(target)
        for command in (["status"], ["preview"], ["quarantine", "list"], ["sync", "--once"]):
            main(["--json", *command, "--target-file", str(target)])
            main([*command, "--target-file", str(target)])
        cli_output = capsys.readouterr()

        # A wrong secret in Secrets Manager: the failure must name the problem, not the value.
        wrong = "wrong-secret-do-not-print-7f3a"
        secrets_client = env.aws.client("secretsmanager")
        secrets_client.put_secret_value(SecretId=env.resource("VismaCredentialsSecret"),
                                        SecretString=json.dumps({**env.visma.credentials, "client_secret": wrong}))
        # A new container (cold start): no cached runtime, secret or token.
        from ml_connector import runtime
        from ml_connector.visma.client import forget_tokens

        runtime._cache.clear()
        forget_tokens()
        with pytest.raises(Exception) as failure:
            env.run_poller()
        secrets = [env.visma.credentials["client_secret"], env.marketo.credentials["client_secret"], wrong,
                   *env.visma.issued_tokens(), *env.marketo.issued_tokens()]
        assert len(env.visma.issued_tokens()) >= 2 and len(env.marketo.issued_tokens()) >= 2

        table = env.aws.client("dynamodb").scan(TableName=env.resource("StateTable"))["Items"]
        places = {
            "lambda logs and EMF metrics": log.read_text(),
            "CLI stdout": cli_output.out,
            "CLI stderr": cli_output.err,
            "exception": f"{failure.value!r} {failure.value}",
            "state table": json.dumps(table),
        }
    assert "refused the token request" in places["exception"] or "401" in places["exception"]
    assert len(places["lambda logs and EMF metrics"]) > 1000 and places["CLI stdout"]
    found = {where: leaks(text, secrets) for where, text in places.items()}
    assert not any(found.values()), found
