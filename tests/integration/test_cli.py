"""The ml-connector CLI against a local stack (moto + sandboxes), as an operator would use it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.main import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from cli.ping import PingCredentials

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_stack):
    return local_stack(seed=5, customers=120, suppliers=30)


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
    # moto has no SQS message-move tasks: against it the messages are moved by receive and send.
    assert code == EXIT_OK and (data["status"], data["moved"], data["method"]) == (
        "COMPLETED", 1, "receive and send (local emulator)")
    assert env.queue_depth("SyncDeadLetterQueue") == 0
    code, data = run(capsys, "sync", "--once", "--target-file", target_file)
    code, entries = run(capsys, "quarantine", "list", "--target-file", target_file)
    assert any("malformed SQS message" in e["reason"] for e in entries)


def test_replay_of_unknown_job_is_a_clear_error(target_file, capsys):
    code = main(["replay", "nope", "--target-file", target_file])
    assert code == EXIT_PROBLEM
    assert "no job nope" in capsys.readouterr().err


def test_json_after_the_subcommand_and_runs_of_cli_cycles(target_file, capsys):
    assert main(["sync", "--once", "--target-file", target_file, "--json"]) == EXIT_OK
    assert "write" in json.loads(capsys.readouterr().out)
    assert main(["runs", "--json", "--last", "1", "--target-file", target_file]) == EXIT_OK
    (newest,) = json.loads(capsys.readouterr().out)
    assert newest["connection"] == "default" and newest["errors"] == 0 and newest["finished"] >= newest["started"]


def test_bad_configuration_is_one_line_and_exit_2(target_file, tmp_path, capsys):
    target = json.loads(Path(target_file).read_text())
    target["env"]["CONNECTIONS_CONFIG"] = '{"connections": [{"id": "x"}]}'
    broken = tmp_path / "target.json"
    broken.write_text(json.dumps(target))
    assert main(["status", "--target-file", str(broken)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: invalid configuration: connections.0.visma: Field required")
    assert len(err.strip().splitlines()) == 1
    broken.write_text('{"name": "local"}')
    assert main(["status", "--target-file", str(broken)]) == EXIT_USAGE
    assert "not a target file" in capsys.readouterr().err


def test_missing_local_stack_is_a_usage_error(tmp_path, capsys):
    code = main(["status", "--target-file", str(tmp_path / "none.json")])
    assert code == EXIT_USAGE
    assert "ml-connector local up" in capsys.readouterr().err


def test_failed_chunk_is_recorded_and_replayed(env, target_file, capsys):
    run(capsys, "sync", "--once", "--target-file", target_file)  # settled first (also when run alone)
    edited = env.visma.store.edit_random(2, rng_seed=8)
    env.marketo.faults.inject("609", times=1, path_contains="/companies.json")  # not retryable: the chunk fails
    code, data = run(capsys, "sync", "--once", "--target-file", target_file)
    # The two records travel in one pack, or in two when one is a customer and one a supplier.
    assert code == EXIT_PROBLEM and data["write"]["failed"] in (1, 2)
    code, status = run(capsys, "status", "--target-file", target_file)
    failed = [j for j in status["recent_jobs"] if j["status"] == "failed"]
    assert failed and "609" in failed[0]["error"]
    code, data = run(capsys, "replay", failed[0]["job_id"], "--target-file", target_file)
    assert code == EXIT_OK and data["requeued"] == 2
    code, data = run(capsys, "sync", "--once", "--target-file", target_file)
    assert code == EXIT_OK and data["write"]["failed"] == 0
    assert env.verify().ok, env.verify().summary()
    assert len(edited) == 2


def test_quarantine_list_and_retry_of_a_bad_visma_record(env, target_file, capsys):
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")  # inside the next poll's window
    env.visma.store.put_raw("customer", {"internalId": 99_999, "number": "99999", "name": None,
                                         "lastModifiedDateTime": now})
    run(capsys, "sync", "--once", "--target-file", target_file)
    code, entries = run(capsys, "quarantine", "list", "--target-file", target_file)
    bad = [e for e in entries if e["ref"] == "99999"]
    assert code == EXIT_OK and bad and bad[0]["stage"] == "poller" and "name" in bad[0]["reason"]
    code, data = run(capsys, "quarantine", "retry", "--target-file", target_file)
    assert code == EXIT_PROBLEM and data["still_invalid"] >= 1  # the record itself is still broken


def test_ping_against_the_sandboxes_passes(capsys):
    code, checks = run(capsys, "ping")
    assert code == EXIT_OK
    assert [c["name"] for c in checks] == ["Visma Connect token", "Visma customer list (ipp-company-id)",
                                           "Marketo token", "Marketo company describe"]
    assert all(c["ok"] for c in checks)


def test_ping_names_what_fails_and_never_prints_a_secret(tmp_path, capsys):
    from sandbox.marketo import MarketoSandbox
    from sandbox.visma import VismaSandbox

    with VismaSandbox(seed=2, customers=3, suppliers=1) as visma, MarketoSandbox() as marketo:
        wrong = "wrong-visma-secret-123"
        creds = PingCredentials.of_sandboxes(visma, marketo).model_dump()
        creds["visma"]["client_secret"] = wrong
        path = tmp_path / "creds.json"
        path.write_text(json.dumps(creds))
        code = main(["--json", "ping", "--credentials", str(path)])
        captured = capsys.readouterr()
    checks = json.loads(captured.out)
    assert code == EXIT_PROBLEM
    assert [c["ok"] for c in checks] == [False, False, True, True]
    assert "refused the token request" in checks[0]["detail"]
    everything = captured.out + captured.err
    assert wrong not in everything and marketo.credentials["client_secret"] not in everything


def test_human_output_has_a_progress_bar_and_a_summary(env, target_file, capsys):
    env.visma.store.edit_random(2, rng_seed=12)
    assert main(["sync", "--once", "--target-file", target_file]) == EXIT_OK
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "Writing to Marketo" in out and "2 updated" in out and "0 failed" in out
