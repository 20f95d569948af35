"""The ml-connector CLI against a local stack (moto + sandboxes), as an operator would use it."""

from __future__ import annotations

import json

import pytest

from localrun.cli import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from localrun.environment import LocalEnvironment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with LocalEnvironment(seed=5, customers=120, suppliers=30,
                          log_path=tmp_path_factory.mktemp("logs") / "lambda.log") as environment:
        yield environment


@pytest.fixture(scope="module")
def target_file(env, tmp_path_factory):
    path = tmp_path_factory.mktemp("target") / "target.json"
    env.local_target().write(path)
    return str(path)


def run(capsys, *args):
    code = main(["--json", *args])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else None)


def test_preview_before_first_sync_shows_creates_and_writes_nothing(env, target_file, capsys):
    code, data = run(capsys, "preview", "--target-file", target_file)
    assert code == EXIT_OK
    assert data["counts"] == {"create": 150, "update": 0, "unchanged": 0}
    first = data["items"][0]
    assert first["action"] == "create" and first["changes"]["company"]["before"] is None
    assert env.marketo.store.companies() == []
    code, status = run(capsys, "status", "--target-file", target_file)
    assert all(e["watermark"] is None for e in status["entities"])
    assert status["queue_depth"] == 0


def test_sync_once_then_status_and_preview(env, target_file, capsys):
    code, data = run(capsys, "sync", "--once", "--target-file", target_file)
    assert code == EXIT_OK, data
    assert data["write"]["created"] == 150 and data["write"]["failed"] == 0
    assert env.verify().ok
    code, status = run(capsys, "status", "--target-file", target_file)
    assert code == EXIT_OK
    assert {e["entity"] for e in status["entities"]} == {"customer", "supplier"}
    assert all(e["watermark"] and e["lag_seconds"] is not None for e in status["entities"])
    assert status["recent_jobs"] and status["recent_jobs"][0]["status"] == "done"
    assert status["dead_letter_depth"] == 0
    edited = env.visma.store.edit_random(3, rng_seed=1)
    code, data = run(capsys, "preview", "--target-file", target_file)
    assert data["counts"]["update"] == 3 and data["counts"]["create"] == 0
    changed = {i["internal_id"] for i in data["items"] if i["action"] == "update"}
    assert changed == {internal_id for _, internal_id in edited}
    assert all(i["changes"] for i in data["items"] if i["action"] == "update")


def test_redrive_moves_dead_letters_back(env, target_file, capsys):
    sqs = env.aws.client("sqs")
    dlq = env.resource("SyncDeadLetterQueue")
    sqs.send_message(QueueUrl=dlq, MessageBody='{"not": "a sync message"}')
    code, data = run(capsys, "redrive", "--target-file", target_file)
    assert code == EXIT_OK and data == {"moved": 1}
    code, data = run(capsys, "sync", "--once", "--target-file", target_file)
    code, entries = run(capsys, "quarantine", "list", "--target-file", target_file)
    assert any("malformed SQS message" in e["reason"] for e in entries)


def test_replay_of_unknown_job_is_a_clear_error(target_file, capsys):
    code = main(["replay", "nope", "--target-file", target_file])
    assert code == EXIT_PROBLEM
    assert "no job nope" in capsys.readouterr().err


def test_missing_local_stack_is_a_usage_error(tmp_path, capsys):
    code = main(["status", "--target-file", str(tmp_path / "none.json")])
    assert code == EXIT_USAGE
    assert "ml-connector local up" in capsys.readouterr().err
