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


def _merge(stored, invoices, balances):
    ledger = PollLedger()
    ledger.load_stored(stored.items())
    ledger.add_overdue_invoices(invoices)
    ledger.set_balances(balances)
    ledger.merge_payment_facts()
    return ledger


def test_merge_keeps_stored_balances_and_clears_paid_invoices():
    stored = {"1": PaymentFacts(balance=100, overdue_amount=100, overdue_invoices=1, max_dunning_level=1),
              "2": PaymentFacts(balance=50)}
    with _merge(stored, [("3", 20.0, 0)], [("1", 0.0), ("3", 20.0)]) as ledger:
        assert ledger.facts_for("1") == PaymentFacts()  # paid: no balance, nothing overdue any more
        assert ledger.facts_for("2") == PaymentFacts(balance=50)  # unchanged balance carried over
        assert ledger.facts_for("3") == PaymentFacts(balance=20, overdue_amount=20, overdue_invoices=1)
        assert ledger.facts_for("4") == PaymentFacts()  # never had a fact
        changed = [pair for chunk in ledger.changed_facts() for pair in chunk]
        assert changed == [("1", PaymentFacts()), ("3", ledger.facts_for("3"))]


def test_overdue_invoices_sum_per_customer_with_highest_dunning_level():
    invoices = [("7", 10.10, 0), ("8", 5.0, 1), ("7", 20.21, 2), ("7", 0.01, 1)]
    with _merge({}, invoices, [("7", 30.32), ("7", 31.0)]) as ledger:  # the later balance row wins
        assert ledger.facts_for("7") == PaymentFacts(balance=31.0, overdue_amount=30.32, overdue_invoices=3,
                                                     max_dunning_level=2)
        assert ledger.facts_for("8") == PaymentFacts(overdue_amount=5.0, overdue_invoices=1, max_dunning_level=1)


def test_refresh_numbers_skip_customers_read_in_the_poll_and_unchanged_ones():
    stored = {f"{n:04}": PaymentFacts(balance=n) for n in range(1200)}
    balances = [(f"{n:04}", float(n + 1) if n % 2 else float(n)) for n in range(1200)]  # odd ones changed
    with _merge(stored, [], balances) as ledger:
        for n in range(0, 1200, 3):
            ledger.note_read_number(f"{n:04}")
        refresh = list(ledger.refresh_numbers())
        assert refresh == [f"{n:04}" for n in range(1200) if n % 2 and n % 3]
        assert sum(len(chunk) for chunk in ledger.changed_facts()) == 600


def test_window_counts_unique_ids_and_bad_rows_per_pass():
    with PollLedger() as ledger:
        ledger.start_pass()
        for internal_id in [*range(2500), 5, 17, 2499]:  # the same rows on two pages count once
            ledger.note_seen(internal_id)
        ledger.note_bad("raw-abc")
        ledger.note_bad("raw-abc")
        assert ledger.unique_count() == 2501
        ledger.start_pass()
        ledger.note_seen(1)
        assert ledger.unique_count() == 1


def test_ledger_file_is_removed_on_close(tmp_path):
    ledger = PollLedger(str(tmp_path))
    assert list(tmp_path.iterdir())
    ledger.close()
    assert not list(tmp_path.iterdir())
