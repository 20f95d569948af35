"""Issue 15 through the local stack: writes stamped earlier than the overlap (a Visma app-server clock lagging
by half an hour) are found by the next deep sweep; a tenant whose naive stamps are local time gets the right
``vismaLastModified`` in Marketo."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

SWEEP_INTERVAL_S = 20


@pytest.fixture(scope="module")
def lagging(local_stack, tmp_path_factory):
    log = tmp_path_factory.mktemp("sweep") / "lambda.log"
    environment = local_stack(seed=61, customers=50, suppliers=10, log_path=log,
                              extra_env={"VISMA_SWEEP_INTERVAL_SECONDS": str(SWEEP_INTERVAL_S)})
    environment.cycle("full load")
    return environment, log


def test_writes_stamped_before_the_overlap_are_found_by_the_next_sweep(lagging):
    env, log = lagging
    swept_at = time.monotonic()  # the full load counts as a sweep
    env.visma.store.edit_random(1, rng_seed=61, entity="supplier")
    env.visma.store.edit_random(1, rng_seed=61, entity="customer")
    env.cycle("recent edits")  # the watermarks are now a moment ago
    env.visma.set_clock_skew(-1800)  # the app server's clock half an hour behind: older than the 5-minute overlap
    edited = {i for _, i in env.visma.store.edit_random(4, rng_seed=62, entity="customer")}
    env.visma.set_clock_skew(0)
    normal = next(e for e in env.cycle("normal poll").poll if e["entity"] == "customer")
    assert not normal.get("deep_sweep"), "the test ran too slowly: the sweep interval had passed"
    missed = {int(k.rsplit("-", 1)[1]) for k in env.verify().mismatched}
    assert missed == edited  # the hazard: the overlap does not reach them
    time.sleep(max(0.0, SWEEP_INTERVAL_S - (time.monotonic() - swept_at)))
    swept = next(e for e in env.cycle("sweep").poll if e["entity"] == "customer")
    assert env.verify().ok, env.verify().summary()  # within one sweep interval
    assert swept["deep_sweep"] and swept["messages_sent"] == len(edited)
    assert swept["late_writes"] == len(edited)
    assert 1800 - 300 - 60 < swept["late_write_seconds"] < 1800 - 300 + 60
    assert env.verify().ok, env.verify().summary()
    assert '"LateWriteSeconds"' in log.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def local_time(local_stack):
    environment = local_stack(seed=63, customers=40, suppliers=10, visma_options={"local_time_minutes": 60},
                              extra_env={"VISMA_TIME_ZONE": "Europe/Oslo"})
    environment.cycle("full load")
    return environment


def test_naive_local_stamps_give_the_right_last_modified_in_marketo(local_time):
    env = local_time
    naive = [c["internalId"] for c in env.visma.store.records("customer")
             if "+" not in c["lastModifiedDateTime"] and not c["lastModifiedDateTime"].endswith("Z")]
    before = datetime.now(UTC) - timedelta(seconds=1)
    for internal_id in naive[:3]:
        env.visma.store.update("customer", internal_id, name=f"Lokal {internal_id} AS")
    after = datetime.now(UTC) + timedelta(seconds=1)
    report = env.cycle("edits stamped in local time")
    assert report.messages_sent == 3
    held = {c["externalCompanyId"]: c for c in env.marketo.store.companies()}
    for internal_id in naive[:3]:
        company = held[f"visma-1234567-customer-{internal_id}"]
        assert company["company"] == f"Lokal {internal_id} AS"
        stamped = datetime.fromisoformat(str(company["vismaLastModified"]).replace("Z", "+00:00"))
        assert before <= stamped <= after, (company["vismaLastModified"], before, after)
    assert env.cycle("quiet").messages_sent == 0


def test_a_local_time_stack_verifies_against_its_own_zone(local_time):
    assert local_time.verify().ok, local_time.verify().summary()
