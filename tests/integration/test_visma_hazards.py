"""No change lost: each paging/clock hazard of the Visma API reproduced in the sandbox, through the real
poller -> SQS -> writer path. After each hazard, every change made before the cycle started is in Marketo."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml_connector.visma.models import parse_visma_datetime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_stack):
    # A small page size makes every window span several pages, so boundaries can shift.
    environment = local_stack(seed=31, customers=180, suppliers=40, visma_options={"max_page_size": 25})
    assert environment.cycle("full load").created == 220
    return environment


@pytest.fixture(autouse=True)
def _faults_off(env):
    env.visma.faults.clear()
    yield
    env.visma.faults.clear()
    env.visma.set_clock_skew(0)


def changed_since(env, started: datetime) -> set[str]:
    """Keys of records Visma changed after ``started`` (during the cycle): they may land next cycle."""
    company = env.visma.credentials["company_id"]
    return {f"visma-{company}-{entity}-{raw['internalId']}" for entity in ("customer", "supplier")
            for raw in env.visma.store.records(entity) if parse_visma_datetime(raw["lastModifiedDateTime"]) >= started}


def assert_converged_except(env, allowed: set[str]) -> None:
    check = env.verify()
    assert not check.duplicates and not check.unexpected, check.summary()
    assert set(check.missing) | set(check.mismatched) <= allowed, check.summary()


def test_rows_shifting_between_pages_are_caught(env):
    before = env.visma.store.edit_random(60, rng_seed=41, entity="customer")  # a window of 3 pages
    env.visma.faults.edit_during_paging("customer", per_page=1)
    started = datetime.now(UTC)
    report = env.cycle("edits while paging")
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["passes"] >= 2, "the shifted window was not detected"
    assert_converged_except(env, changed_since(env, started))
    assert {f"visma-1234567-customer-{i}" for _, i in before}.isdisjoint(env.verify().mismatched)
    env.visma.faults.stop_editing()
    env.cycle("settle")
    assert env.verify().ok, env.verify().summary()


def test_same_record_on_two_pages_is_sent_once(env):
    env.visma.store.edit_random(60, rng_seed=42, entity="customer")
    env.visma.faults.duplicate_across_pages(True)
    report = env.cycle("duplicates across pages")
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["records_read"] > 60  # the repeated rows were read ...
    assert customer["messages_sent"] == 60  # ... and sent once
    assert env.verify().ok, env.verify().summary()


def test_total_count_changing_mid_poll(env):
    env.visma.store.edit_random(40, rng_seed=43, entity="supplier")
    env.visma.faults.change_total_mid_poll(True)
    started = datetime.now(UTC)
    env.cycle("total changes mid-poll")
    assert_converged_except(env, changed_since(env, started))
    env.visma.faults.change_total_mid_poll(False)
    env.cycle("settle")
    assert env.verify().ok, env.verify().summary()


def test_visma_clock_behind_ours_is_covered_by_the_overlap(env):
    # Visma stamps changes 2 minutes in the past relative to our clock: a watermark taken from our
    # clock alone would skip them; the overlap window (5 minutes) re-reads them.
    env.cycle("settle")
    env.visma.set_clock_skew(-120)
    edited = env.visma.store.edit_random(5, rng_seed=44)
    report = env.cycle("skewed clock")
    assert report.messages_sent == 5
    assert {i for _, i in edited} and env.verify().ok, env.verify().summary()


def test_server_errors_throttling_and_expired_tokens_lose_nothing(env):
    env.visma.store.edit_random(8, rng_seed=45)
    env.visma.faults.fail_next(1, status=503)
    env.visma.faults.throttle_next(1, retry_after=1)
    env.visma.expire_tokens()
    report = env.cycle("faults")
    assert report.messages_sent == 8
    assert env.verify().ok, env.verify().summary()


def test_a_request_failing_twice_stops_the_poll_cleanly_and_the_next_resumes(env):
    """Visma throttles a third try of a request that failed twice in five minutes: the poller stops that
    entity cleanly (watermark kept) rather than hammer it or wait past its time budget, and later runs
    catch up. (Failures are remembered per container, so earlier tests' failures of the same request
    count too; hence "at most two calls" and "within a few runs".)"""
    edited = env.visma.store.edit_random(6, rng_seed=46, entity="customer")
    env.visma.faults.fail_next(2, status=503, path_contains="/v1/customer")
    stopped = env.cycle("same request failed twice")
    customer = next(e for e in stopped.poll if e["entity"] == "customer")
    assert customer["stopped_early"] and not customer["complete"] and customer["watermark_after"] is None
    assert customer["visma_calls"] <= 2
    sent = stopped.messages_sent
    for attempt in range(3):
        resumed = env.cycle(f"next run {attempt}")
        sent += resumed.messages_sent
        if next(e for e in resumed.poll if e["entity"] == "customer")["complete"]:
            break
    # What was enqueued before a stop is not sent again; the rest follows.
    assert sent == len(edited)
    assert env.verify().ok, env.verify().summary()


def test_a_shift_that_keeps_the_count_loses_nothing(env):
    """Issue 15 case 1. While the poller pages a window of three pages, a customer it was served on page 1 is
    deleted and an old customer past the page boundary is edited into the window: ``totalCount`` is unchanged,
    the first row of page 2 moves onto page 1 and is not served. The count alone called that complete; a
    read of the window that saw rows enter must now be confirmed by a read that skips nothing.
    (Runs last: the deleted customer stays in Marketo, which the full reconcile of another issue handles.)"""
    env.cycle("settle")
    env.visma.store.edit_random(60, rng_seed=47, entity="customer")
    env.visma.faults.shift_keeping_count("customer")
    started = datetime.now(UTC)
    report = env.cycle("a served row deleted while another enters")
    assert len(env.visma.store.deleted()) == 1, "the shift did not happen"
    deleted = {f"visma-1234567-{entity}-{internal_id}" for entity, internal_id in env.visma.store.deleted()}
    check = env.verify()
    assert not check.duplicates and set(check.unexpected) <= deleted, check.summary()
    assert set(check.missing) | set(check.mismatched) <= changed_since(env, started), check.summary()
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["complete"] and customer["passes"] >= 2
