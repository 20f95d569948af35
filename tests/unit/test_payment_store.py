"""Stored payment facts, several customers to an item: the in-memory twin and the DynamoDB store (on moto) keep
the same contract, a poll reads only the facts it needs (its reads do not grow with the customers ever stored),
and PAYID# items of an older version are converted once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from moto_tables import Tables
from sync_fakes import CONNECTION, NOW, FakeOutbox, FakeVisma, customer, customer_mapping, minutes

from ml_connector.state import State
from ml_connector.state.dynamodb import keys as state_keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.ports import PaymentFactsStore
from ml_connector.sync.payment import BALANCES_PATH, INVOICES_PATH, PaymentReader
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink

OVERDUE = {"number": "C|7", "balance": 1200.5, "overdue_amount": 800.25, "overdue_invoices": 2.0,
           "max_dunning_level": 1.0}
BALANCE_ONLY = {"number": "C8", "balance": 99.0, "overdue_amount": 0.0, "overdue_invoices": 0.0,
                "max_dunning_level": 0.0}


@pytest.fixture
def store(memory_or_dynamodb_state: State) -> PaymentFactsStore:
    return memory_or_dynamodb_state.payments


def test_the_overdue_and_the_asked_buckets_are_read_and_changes_keep_the_neighbours(store):
    store.put("c1", [(7, OVERDUE), (8, BALANCE_ONLY), (700, {**BALANCE_ONLY, "number": "C700"})])  # buckets 0, 10
    assert dict(store.overdue("c1")) == {7: OVERDUE}
    assert dict(store.get("c1", [8])) == {7: OVERDUE, 8: BALANCE_ONLY}  # the bucket's neighbours come along
    c700 = {**BALANCE_ONLY, "number": "C700"}
    assert dict(store.get("c1", [8, 200, 700])) == {7: OVERDUE, 8: BALANCE_ONLY, 700: c700}
    assert dict(store.get("c2", [8])) == {}
    paid = {**OVERDUE, "overdue_amount": 0.0, "overdue_invoices": 0.0, "max_dunning_level": 0.0}
    store.put("c1", [(7, paid)], overdue_before={7})
    assert dict(store.overdue("c1")) == {}
    assert dict(store.get("c1", [7])) == {7: paid, 8: BALANCE_ONLY}
    store.put("c1", [(8, {**BALANCE_ONLY, "balance": 0.0})])  # all zero: the entry goes
    assert dict(store.all("c1")) == {7: paid, 700: c700}


def test_an_emptied_overdue_item_is_deleted(tables):
    """Or the query of the overdue items every poll makes would read more and more empty ones."""
    table = tables.table()
    state = tables.state(table)
    state.payments.put("c1", [(7, OVERDUE), (8, OVERDUE)])
    state.payments.put("c1", [(7, BALANCE_ONLY)], overdue_before={7})
    assert len(list(table.query(state_keys.overdue_payments("c1")))) == 1
    state.payments.put("c1", [(8, BALANCE_ONLY)], overdue_before={8})
    assert list(table.query(state_keys.overdue_payments("c1"))) == []


def test_payid_items_of_the_older_version_are_converted_once(tables):
    table = tables.table()
    state = tables.state(table)
    legacy = state_keys.legacy_payments("c1")
    table.put_many([{**state_keys.key(legacy, 7), "number": "C|7", "balance": Decimal("1200.5"),
                     "overdue_amount": Decimal("800.25"), "overdue_invoices": 2, "max_dunning_level": 1},
                    {**state_keys.key(legacy, 8), "number": "C8", "balance": 99}])
    assert dict(state.payments.overdue("c1")) == {7: OVERDUE}
    assert dict(state.payments.all("c1")) == {7: OVERDUE, 8: BALANCE_ONLY}
    table.delete_many([state_keys.key(legacy, 7)])
    assert dict(state.payments.overdue("c1")) == {7: OVERDUE}  # converted once: PAYID# is not read again


class PaymentSource:
    """Visma's /v1/customer/balance rows (their delta by lastModifiedDateTime) and overdue invoices."""

    def __init__(self) -> None:
        self.balances: list[tuple[int, float, datetime]] = []
        self.invoices: list[dict[str, Any]] = []
        self.asked: list[datetime | None] = []  # the balance delta's lastModifiedDateTime, each time it is read

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000
                ) -> Iterator[dict[str, Any]]:
        if path == INVOICES_PATH:
            yield from self.invoices
        elif path == BALANCES_PATH:
            since = (params or {}).get("lastModifiedDateTime")
            self.asked.append(since)
            yield from ({"customer": {"internalId": i, "number": f"C{i}"}, "balance": b}
                        for i, b, at in self.balances if since is None or at >= since)


def _poll(state: State, visma: FakeVisma, source: PaymentSource) -> EntityPollReport:
    poller = Poller(state, QueueSink(state, FakeOutbox()), clock=lambda: NOW, safety_margin=5)
    report = poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping(),
                                payments=PaymentReader(source))  # type: ignore[arg-type]
    assert report.complete
    return report


def _store_balances(table: StateTable, internal_ids: range) -> None:
    """Customers with a balance, as earlier polls stored them (``balance||||number`` in the PAYB# item of their
    bucket), written whole: moto takes ~70 ms for each update ``put`` would make."""
    buckets: dict[int, dict[str, Any]] = {}
    for i in internal_ids:
        bucket = state_keys.payment_bucket(i)
        item = buckets.setdefault(bucket, state_keys.key(state_keys.payment_buckets("c1"),
                                                         state_keys.payment_bucket_sk(bucket)))
        item[str(i)] = f"{i % 90 + 1}||||C{i}"
    table.put_many(buckets.values())


def _delta_poll_reads(tables: Tables, stored_customers: int) -> dict[str, float]:
    """Read units of a poll that reads 20 changed customers (each in a bucket of its own, 5 of them overdue),
    with ``stored_customers`` customers' facts stored by earlier polls."""
    table = tables.table()
    state = tables.state(table)
    _store_balances(table, range(1, stored_customers + 1))
    state.watermarks.advance("c1", "customer", NOW - minutes(30), {})
    changed = [100 * k + 50 for k in range(20)]
    visma, source = FakeVisma([customer(i, f"Kunde {i}", NOW - minutes(5)) for i in changed]), PaymentSource()
    for i in changed:
        visma.records[i]["number"] = f"C{i}"
    due = (NOW - timedelta(days=3)).strftime("%Y-%m-%dT00:00:00")
    source.invoices = [{"customer": {"number": f"C{i}"}, "balance": 10.0, "documentDueDate": due,
                       "dunningLetterLevel": 0} for i in changed[:5]]
    source.balances = [(i, 5.0, NOW - minutes(4)) for i in changed]
    before = tables.units.snapshot()["read"]
    _poll(state, visma, source)
    after = tables.units.snapshot()["read"]
    assert dict(state.payments.overdue("c1")).keys() == set(changed[:5])
    return {f: round(v - before.get(f, 0.0), 3) for f, v in after.items() if v != before.get(f, 0.0)}


def test_a_polls_reads_do_not_grow_with_the_customers_stored_before(tables):
    small = _delta_poll_reads(tables, 2_000)
    large = _delta_poll_reads(tables, 20_000)
    assert large == small, (small, large)
    # Buckets close together are one range read: less than the half unit per customer met a read by key costs.
    assert small["PAYB"] < 20 * 0.5


def test_a_poll_stopped_between_its_two_writes_heals_on_the_next_change(tables):
    """The overdue entry was written, the bucket not (the poll ended in between): the overdue entry is the one a
    poll keeps, so when the customer pays, both are written and it is not fetched again poll after poll."""
    table = tables.table()
    state = tables.state(table)
    overdue = {"number": "C7", "balance": 100.0, "overdue_amount": 50.0, "overdue_invoices": 1.0,
               "max_dunning_level": 0.0}
    state.payments.put("c1", [(7, overdue)])
    table.put({**state_keys.key(state_keys.payment_buckets("c1"), state_keys.payment_bucket_sk(0)), "7": "100||||C7"})
    state.watermarks.advance("c1", "customer", NOW - minutes(30), {})
    state.sweeps.done("c1", "customer", NOW - minutes(1))  # no deep sweep: the customer is not in the window
    visma = FakeVisma([{**customer(7, "Skyldig AS", NOW - timedelta(days=30)), "number": "C7"}])
    paid = _poll(state, visma, PaymentSource())  # no overdue invoice any more
    assert paid.payment_refreshes == 1
    assert dict(state.payments.overdue("c1")) == {}
    assert dict(state.payments.get("c1", [7]))[7]["overdue_invoices"] == 0
    assert _poll(state, visma, PaymentSource()).payment_refreshes == 0


def test_balances_are_read_since_the_last_complete_poll_not_since_the_last_customer_edit(tables):
    """Customers last changed an hour ago (the watermark), invoices since: the balance delta is read from the
    last complete poll's start less the overlap, so the balances an earlier poll merged are not read again (nor
    their stored facts), while one changed since is still found and its customer sent."""
    table = tables.table()
    state = tables.state(table)
    merged = range(1, 41)
    state.payments.put("c1", [(i, {"number": f"C{i}", "balance": 5.0}) for i in merged])
    state.watermarks.complete("c1", "customer", NOW - minutes(15), NOW - minutes(60), swept=True, summary={})
    visma = FakeVisma([{**customer(i, f"Kunde {i}", NOW - minutes(90)), "number": f"C{i}"} for i in [*merged, 3000]])
    source = PaymentSource()
    source.balances = [(i, 5.0, NOW - minutes(30)) for i in merged] + [(3000, 7.0, NOW - minutes(2))]
    with tables.metered() as spent:
        report = _poll(state, visma, source)
    assert source.asked == [NOW - minutes(15) - timedelta(seconds=CONNECTION.visma.overlap_seconds)]
    assert report.payment_refreshes == 1 and report.messages_sent == 1
    assert dict(state.payments.get("c1", [3000]))[3000]["balance"] == 7.0
    assert spent["read"]["PAYB"] == 0.5  # the one bucket of the changed customer
