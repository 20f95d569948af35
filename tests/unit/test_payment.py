from __future__ import annotations

import pytest

from ml_connector.sync.ledger import PollLedger
from ml_connector.sync.payment import PaymentFacts, payment_status


@pytest.mark.parametrize(("status", "facts", "expected"), [
    ("CreditHold", {"max_dunning_level": 3}, "on_hold"),
    ("OnHold", None, "on_hold"),
    ("HoldPayments", None, "on_hold"),
    ("Inactive", {"overdue_invoices": 2}, "inactive"),
    ("Active", {"overdue_invoices": 1, "max_dunning_level": 2}, "in_dunning"),
    ("Active", {"overdue_invoices": 1, "max_dunning_level": 0, "balance": 10}, "overdue"),
    ("Active", {"balance": 99.5}, "open_balance"),
    ("Active", {"balance": -20}, "current"),
    ("Active", None, "current"),
    (None, {}, "current"),
])
def test_payment_status_rule(status, facts, expected):
    assert payment_status(status, facts) == expected


def _merge(stored, invoices, balances, read=()):
    """stored: {internalId: (number, facts)}; balances: (internalId, number, balance); read: (internalId, number)."""
    ledger = PollLedger()
    ledger.load_stored((i, n, f) for i, (n, f) in stored.items())
    ledger.add_overdue_invoices(invoices)
    ledger.set_balances(balances)
    for internal_id, number in read:
        ledger.note_read(internal_id, number)
    ledger.merge_payment_facts()
    return ledger


def test_merge_keeps_stored_balances_and_clears_paid_invoices():
    stored = {1: ("C1", PaymentFacts(balance=100, overdue_amount=100, overdue_invoices=1, max_dunning_level=1)),
              2: ("C2", PaymentFacts(balance=50))}
    with _merge(stored, [("C3", 20.0, 0)], [(1, "C1", 0.0), (3, "C3", 20.0)]) as ledger:
        assert ledger.facts_for(1, "C1") == PaymentFacts()  # paid: no balance, nothing overdue any more
        assert ledger.facts_for(2, "C2") == PaymentFacts(balance=50)  # unchanged balance carried over
        assert ledger.facts_for(3, "C3") == PaymentFacts(balance=20, overdue_amount=20, overdue_invoices=1)
        assert ledger.facts_for(4, "C4") == PaymentFacts()  # never had a fact
        changed = [row for chunk in ledger.changed_facts() for row in chunk]
        assert changed == [(1, "C1", PaymentFacts()), (3, "C3", ledger.facts_for(3, "C3"))]


def test_a_renumbered_customer_keeps_its_balance_and_takes_the_invoices_of_its_new_number():
    """Issue 15 case 3: facts are kept by internalId; a balance is read only as a delta, so it must survive a
    number change; overdue invoices name the customer by its number now."""
    stored = {5: ("OLD-5", PaymentFacts(balance=100.0, overdue_amount=40.0, overdue_invoices=1))}
    with _merge(stored, [("NEW-5", 40.0, 1)], [], read=[(5, "NEW-5")]) as ledger:
        now = PaymentFacts(balance=100.0, overdue_amount=40.0, overdue_invoices=1, max_dunning_level=1)
        assert ledger.facts_for(5, "NEW-5") == now
        assert [row for chunk in ledger.changed_facts() for row in chunk] == [(5, "NEW-5", now)]
        assert list(ledger.refresh_numbers()) == []  # read in this poll: nothing to fetch


def test_overdue_invoices_sum_per_customer_with_highest_dunning_level():
    invoices = [("C7", 10.10, 0), ("C8", 5.0, 1), ("C7", 20.21, 2), ("C7", 0.01, 1)]
    with _merge({}, invoices, [(7, "C7", 30.32), (7, "C7", 31.0)]) as ledger:  # the later balance row wins
        assert ledger.facts_for(7, "C7") == PaymentFacts(balance=31.0, overdue_amount=30.32, overdue_invoices=3,
                                                         max_dunning_level=2)
        assert ledger.facts_for(8, "C8") == PaymentFacts(overdue_amount=5.0, overdue_invoices=1, max_dunning_level=1)
        # C8 has overdue invoices but no stored facts and no balance row: fetched by number.
        assert list(ledger.refresh_numbers()) == ["C7", "C8"]


def test_a_balance_row_without_internal_id_counts_by_number():
    with _merge({9: ("C9", PaymentFacts(balance=5.0))}, [], [(None, "C9", 7.5)]) as ledger:
        assert ledger.facts_for(9, "C9") == PaymentFacts(balance=7.5)


def test_refresh_numbers_skip_customers_read_in_the_poll_and_unchanged_ones():
    stored = {n: (f"{n:04}", PaymentFacts(balance=n)) for n in range(1, 1201)}
    balances = [(n, f"{n:04}", float(n + 1) if n % 2 else float(n)) for n in range(1, 1201)]  # odd ones changed
    read = [(n, f"{n:04}") for n in range(1, 1201, 3)]
    with _merge(stored, [], balances, read) as ledger:
        refresh = list(ledger.refresh_numbers())
        assert refresh == [f"{n:04}" for n in range(1, 1201) if n % 2 and (n - 1) % 3]
        assert sum(len(chunk) for chunk in ledger.changed_facts()) == 600


def test_window_counts_unique_ids_and_bad_rows_per_pass():
    with PollLedger() as ledger:
        ledger.start_pass()
        for internal_id in [*range(2500), 5, 17, 2499]:  # the same rows on two pages count once
            ledger.note_seen(internal_id, "2026-01-01T00:00:00.000000Z")
        ledger.note_bad("raw-abc")
        ledger.note_bad("raw-abc")
        assert ledger.unique_count() == 2501
        ledger.start_pass()
        ledger.note_seen(1, "2026-01-01T00:00:00.000000Z")
        ledger.note_seen(9999, "2026-01-01T00:00:00.000000Z")
        assert ledger.unique_count() == 2
        # A later pass is checked against the ids of the earlier ones: 9999 was missed although stamped before.
        assert ledger.missed_earlier("2026-01-02T00:00:00.000000Z") == 1
        assert ledger.missed_earlier("2025-12-31T00:00:00.000000Z") == 0


def test_ledger_file_is_removed_on_close(tmp_path):
    ledger = PollLedger(str(tmp_path))
    assert list(tmp_path.iterdir())
    ledger.close()
    assert not list(tmp_path.iterdir())
