from __future__ import annotations

import pytest

from ml_connector.sync.payment import PaymentFacts, changed_facts, merge_facts, payment_status


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


def test_merge_keeps_stored_balances_and_clears_paid_invoices():
    stored = {"1": PaymentFacts(balance=100, overdue_amount=100, overdue_invoices=1, max_dunning_level=1),
              "2": PaymentFacts(balance=50)}
    overdue = {"3": PaymentFacts(overdue_amount=20, overdue_invoices=1)}
    balances = {"1": 0.0, "3": 20.0}
    current = merge_facts(stored, overdue, balances)
    assert current["1"] == PaymentFacts()  # paid: no balance, nothing overdue any more
    assert current["2"] == PaymentFacts(balance=50)  # unchanged balance carried over
    assert current["3"] == PaymentFacts(balance=20, overdue_amount=20, overdue_invoices=1)
    assert set(changed_facts(stored, current)) == {"1", "3"}
