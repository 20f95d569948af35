"""Payment status end to end: derived from status, overdue invoices and balances, and re-sent when only
the payment situation changes (the customer record itself untouched)."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from localrun.environment import expected_payment_facts
from ml_connector.visma.models import parse_visma_datetime

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_stack):
    environment = local_stack(seed=41, customers=150, suppliers=10)
    environment.cycle("full load")
    yield environment


def companies(env):
    return {c["vismaNumber"]: c for c in env.marketo.store.companies() if c["vismaEntity"] == "customer"}


def test_full_load_carries_every_payment_status(env):
    statuses = Counter(c["vismaPaymentStatus"] for c in companies(env).values())
    assert {"current", "overdue", "in_dunning", "open_balance", "on_hold"} <= set(statuses), statuses
    assert env.verify().ok, env.verify().summary()


def test_a_payment_resends_the_unchanged_customer(env):
    facts = expected_payment_facts(env.visma)
    overdue = sorted(n for n, f in facts.items() if f["overdue_invoices"] and
                     companies(env)[n]["vismaStatus"] == "Active")[:3]
    assert len(overdue) == 3
    records_before = {n: env.visma.store.find("customer", n)["timeStamp"] for n in overdue}
    for number in overdue:
        assert env.visma.store.settle_invoices(number) > 0
    report = env.cycle("payments arrived")
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["payment_refreshes"] == 3  # fetched although their records did not change
    assert {n: env.visma.store.find("customer", n)["timeStamp"] for n in overdue} == records_before
    after = companies(env)
    assert {after[n]["vismaPaymentStatus"] for n in overdue} == {"current"}
    assert all(after[n]["vismaBalance"] == 0 and after[n]["vismaOverdueAmount"] == 0 for n in overdue)
    assert report.updated == 3
    assert env.verify().ok, env.verify().summary()


def test_no_payment_change_means_no_refresh(env):
    report = env.cycle("quiet")
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["payment_refreshes"] == 0 and report.marketo_calls == 0


def test_a_renumbered_customer_keeps_its_balance_and_payment_status(env):
    """Issue 15 case 3: facts were kept by customer number and balances are read only as a delta, so a
    renumbered customer with a balance went to vismaBalance 0 and status current until its balance changed."""
    env.visma.store.edit_random(2, rng_seed=43, entity="customer")
    env.cycle("recent edits")  # the customer watermark is now a moment ago (the seeded stamps are months old)
    before = companies(env)
    # A balance that no poll reads again: stamped before the window the next poll reads.
    window_start = env.state().watermarks.get(env.stack.parameters["ConnectionId"], "customer") - timedelta(minutes=10)
    settled = {r["customer"]["number"] for r in env.visma.store.balances()
               if parse_visma_datetime(r["lastModified"]) < window_start}
    number = next(n for n, c in sorted(before.items()) if c["vismaPaymentStatus"] == "open_balance" and n in settled)
    internal_id = env.visma.store.find("customer", number)["internalId"]
    env.visma.store.update("customer", internal_id, number=f"R-{number}")  # changeCustomerCd
    report = env.cycle("renumbered")
    customer = next(e for e in report.poll if e["entity"] == "customer")
    assert customer["messages_sent"] == 1
    after = companies(env)[f"R-{number}"]
    assert after["vismaBalance"] == before[number]["vismaBalance"] > 0
    assert after["vismaPaymentStatus"] == "open_balance"
    env.cycle("quiet")
    assert companies(env)[f"R-{number}"]["vismaPaymentStatus"] == "open_balance"
    assert env.verify().ok, env.verify().summary()
