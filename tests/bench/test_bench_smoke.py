"""The benchmark harness end to end at a small size and low latency: it runs, measures, and reports.

It runs ``python -m bench`` in a child process: the harness patches moto's request routing
(bench/fast_dispatch.py) in the process that hosts it, and that patch must not reach the other tests.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.run import BenchReport
from bench.sqs_requests import EMPTY_RECEIVE

pytestmark = [pytest.mark.integration, pytest.mark.heavy, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
RECORDS = 300


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> tuple[BenchReport, str]:
    out = tmp_path_factory.mktemp("bench")
    args = ["--records", str(RECORDS), "--full-limit-records", "300", "--writers", "2", "--baseline-records", "10",
            "--memory-sizes", "200,400", "--latency", "0", "0.01", "--cold-import-runs", "1",
            "--writer-cpu-chunks", "1",
            "--output", str(out / "benchmarks.md"), "--log-dir", str(out)]  # never docs/benchmarks.md
    subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT, check=True, capture_output=True, timeout=170)
    return BenchReport.model_validate_json((out / "report.json").read_text()), (out / "benchmarks.md").read_text()


def test_every_record_reaches_marketo(outcome: tuple[BenchReport, str]) -> None:
    report, _ = outcome
    full, _, edits = report.cycles
    assert full.records_created == RECORDS
    assert full.surfaced_failures == 0 and edits.surfaced_failures == 0
    assert report.verified, report.verification
    assert edits.records_updated >= 1


def test_writer_cpu_is_measured(outcome: tuple[BenchReport, str]) -> None:
    report, text = outcome
    assert report.writer_cpu is not None and report.writer_cpu.records_written == 300
    assert "Writer CPU ≤ 0.3 s per 300 records" in text


def test_no_op_cycle_writes_nothing(outcome: tuple[BenchReport, str]) -> None:
    report, _ = outcome
    noop = report.cycles[1]
    assert noop.messages_sent == 0
    assert noop.marketo_sync_calls == 0


def test_calls_per_record_near_ideal(outcome: tuple[BenchReport, str]) -> None:
    report, _ = outcome
    full = report.cycles[0]
    # Concurrent writers can split the tail of the queue into one more partial batch.
    assert full.marketo_sync_calls <= math.ceil(RECORDS / 300) + 1
    assert full.visma_record_pages == full.visma_ideal_pages


def test_report_has_every_figure(outcome: tuple[BenchReport, str]) -> None:
    _, text = outcome
    for figure in ("## Targets", "API-bound limit at the default budget", "API-bound limit at the full instance limit",
                   "Marketo calls per record", "Zero Marketo writes on a no-op cycle", "606 / 615 seen",
                   "Visma record pages", "limiter DynamoDB calls", "## Baseline", "subset of 10 records",
                   "## Poller memory", "Poller memory flat in N", "## Cold import", "PollerFunction", "WriterFunction",
                   "GB-s", "Per 1M records", "Machine: ", "Python 3."):
        assert figure in text, figure


def test_sqs_requests_are_counted_as_billed(outcome: tuple[BenchReport, str]) -> None:
    """Records travel in packs of up to 300 a message: the cost counts the requests as billed (each 64 KB chunk of
    a call's payload one), from the calls made, not one per record."""
    report, text = outcome
    full = report.cycles[0]
    assert report.cost is not None
    assert report.cost.sqs_calls + report.cost.sqs_empty_receives == sum(full.sqs_requests.values())
    assert report.cost.sqs_requests == sum(n for action, n in full.sqs_billed.items() if action != EMPTY_RECEIVE)
    assert 1 <= full.sqs_requests.get("SendMessageBatch", 0) < RECORDS / 10
    # a call is billed at least once, and once more per further 64 KB (exact counts: tests/bench/test_sqs_requests.py;
    # this run's deflated packs stay under 64 KB)
    for action in ("SendMessageBatch", "ReceiveMessage"):
        assert full.sqs_billed[action] >= full.sqs_requests[action] >= 1, action
    assert f"{report.cost.sqs_requests:,} SQS requests as billed, from {report.cost.sqs_calls:,} calls" in text
