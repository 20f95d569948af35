"""The installed `ml-connector` command as separate processes: `local up` serving a stack that other
commands target, stopped with Ctrl-C; and `demo` at a small size."""

from __future__ import annotations

import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli.main import EXIT_OK, EXIT_USAGE, main

pytestmark = [pytest.mark.integration, pytest.mark.heavy]
COMMAND = str(Path(sys.executable).parent / "ml-connector")


def test_local_up_serves_other_commands_until_interrupted(tmp_path):
    up = subprocess.Popen([COMMAND, "local", "up", "--customers", "25", "--suppliers", "5"], cwd=tmp_path,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    target = tmp_path / ".local" / "target.json"
    try:
        deadline = time.monotonic() + 90
        while not target.exists() and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert target.exists(), up.stderr.read() if up.poll() is not None else "local up did not start"
        sync = subprocess.run([COMMAND, "--json", "sync", "--once"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120)
        assert sync.returncode == EXIT_OK, sync.stderr[-2000:]
        assert json.loads(sync.stdout)["write"]["created"] == 30
        status = subprocess.run([COMMAND, "--json", "status"], cwd=tmp_path, capture_output=True, text=True,
                                timeout=60)
        assert status.returncode == EXIT_OK
        assert {e["entity"] for e in json.loads(status.stdout)["entities"]} == {"customer", "supplier"}
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(timeout=30)
    assert code == EXIT_OK
    assert not target.exists()


def _no_aws_configuration(tmp_path):
    empty = tmp_path / "empty"
    empty.write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {**env, "AWS_CONFIG_FILE": str(empty), "AWS_SHARED_CREDENTIALS_FILE": str(empty),
            "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.parametrize(("args", "expected"), [
    (["status", "--stack", "ml-connector", "--region", "eu-north-1"], "error: no usable AWS credentials"),
    (["doctor", "--stack", "ml-connector", "--region", "mars-north-9"], "error: unknown AWS region 'mars-north-9'"),
    (["runs", "--stack", "ml-connector"], "error: no AWS region"),
])
def test_aws_setup_problems_are_one_line_with_exit_2(tmp_path, args, expected):
    done = subprocess.run([COMMAND, *args], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                          env=_no_aws_configuration(tmp_path))
    assert done.returncode == EXIT_USAGE
    assert done.stderr.startswith(expected) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stdout == ""


def test_version_and_help():
    version = subprocess.run([COMMAND, "--version"], capture_output=True, text=True, timeout=30)
    assert version.stdout.strip() == f"ml-connector {importlib.metadata.version('ml-connector')}"
    doctor = subprocess.run([COMMAND, "doctor", "--help"], capture_output=True, text=True, timeout=30)
    assert "--json" in doctor.stdout and "--stack NAME" in doctor.stdout


def test_demo_command_verifies_what_it_moved(capsys):
    assert main(["demo", "--customers", "30", "--suppliers", "5", "--edits", "3"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Cycle 2 (changes) : read" in out and "sent 3 messages" in out
    assert "OK: Marketo holds exactly the mapped Visma data (35 companies, 0 duplicates)" in out
