"""Convergence under faults (issue #7), the small seeded run that ``make test`` carries.

Ten cycles of random Visma changes with four random faults each, drawn from Visma (5xx, 429, timeouts,
expired tokens, edits while paging, an outage that crashes the poller), Marketo (601, 602, 606, 615,
5xx, timeout after the write applied, 607 for a cycle or two), issue 15's Visma boundary cases (a served row
deleted while another enters the window, writes stamped half an hour late, a customer with a balance
renumbered) and AWS (writer crash after Marketo
accepted a chunk, poller crash mid-window, SQS duplicates and out-of-order delivery). Then the faults
stop and the queue drains: Marketo must equal the mapping of the final Visma state. A larger run:
``python -m localrun.chaos --cycles 30 --customers 1500 --suppliers 300``; with concurrent writers:
``python -m localrun.chaos --cycles 12 --customers 600 --suppliers 150 --writers 4 --marketo-latency 0.05 3
--hot-records 20``. The concurrent-writers run is test_convergence_concurrent.py (its own file, so
the two runs go to different test workers).
"""

from __future__ import annotations

import pytest

from localrun.chaos import ChaosSettings, run_convergence

pytestmark = [pytest.mark.integration, pytest.mark.heavy]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return run_convergence(ChaosSettings(seed=1, cycles=10), log_path=tmp_path_factory.mktemp("logs") / "chaos.log")


def test_marketo_converges_to_the_final_visma_state(report, capsys):
    with capsys.disabled():
        print("\n" + "\n".join(report.lines()))
    assert report.records_checked >= 200
    assert report.marketo_records == report.records_checked
    assert (report.missing, report.unexpected, report.mismatched, report.duplicates) == (0, 0, 0, 0), report.example


def test_nothing_is_left_behind(report):
    assert report.dead_letter_messages == 0
    assert report.queue_left == 0
    assert report.parked_jobs_left == 0
    assert report.quarantined_without_reason == 0
    # Transient faults must not turn good records into quarantined ones.
    assert report.quarantined == 0


def test_the_fault_mix_really_happened(report):
    """A run whose faults never fired proves nothing: every kind was switched on, and each side saw them."""
    assert report.cycles_run == 10
    assert set(report.faults_armed) == {
        "visma_5xx", "visma_429", "visma_timeout", "visma_token_expired", "visma_edit_during_paging",
        "visma_outage_mid_window", "marketo_601", "marketo_602", "marketo_606", "marketo_615", "marketo_5xx",
        "marketo_timeout_after_apply", "marketo_607_for_a_while", "writer_crash_after_accept",
        "poller_crash_mid_window", "visma_shift_keeping_count", "visma_late_writes", "visma_renumber_with_balance"}
    observed = report.faults_observed
    for code in ("601", "602", "606", "607"):
        assert observed.get(f"marketo {code}", 0) >= 1, code
    assert observed["aws DynamoDB_20120810.UpdateItem"] >= 1  # writer crashed after Marketo accepted
    assert observed["aws AmazonSQS.SendMessageBatch"] >= 1  # poller crashed mid-window
    assert observed["visma faults served"] >= 5
    assert report.poller_crashes >= 2
    assert report.writer_invocation_errors >= 1
    assert report.messages_delivered_twice > 0 and report.messages_held_back > 0
    assert report.visma_changes["edits"] > 0 and report.visma_changes["inserts"] > 0
    assert report.visma_changes["status changes"] > 0
    assert report.visma_changes["late writes"] > 0 and report.visma_changes["renumbered"] > 0


def test_reconciles_remove_from_marketo_what_was_deleted_in_visma(report):
    """Customers and suppliers deleted in Visma every cycle (a customer's contacts with it); one reconcile
    under the faults, one after: with mode ``delete`` Marketo ends holding nothing Visma no longer has."""
    assert report.visma_changes["deletions"] >= report.cycles_run
    assert report.reconciled["deleted_in_visma"] >= report.visma_changes["deletions"]
    assert report.reconciled["deleted_in_marketo"] > 0 and report.reconciled["delete_failed"] == 0
    assert report.deleted_in_visma == 0  # nothing deleted in Visma is left in Marketo
