"""Payment facts per customer, for the connector-side payment status (Visma has no such field).

Facts come from two Visma sources: open invoices past their due date (amount, count, highest dunning
level) and customer balances (``/v1/customer/balance``, read as a delta since the last poll). They are
kept per customer ``internalId`` in the state table (only for customers with a non-zero fact): a customer
number can be changed, and a balance read only as a delta must survive that. So a customer
whose payment situation changes without its own record changing (an invoice falls due, a payment
arrives) is detected and re-sent. Both sources are streamed into the poll's ledger (``sync/ledger.py``)
and merged there, so no per-customer dict is held.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import Any, Protocol

from pydantic import BaseModel

from ml_connector.sync.ports import VismaReader
from ml_connector.visma.models import parse_visma_datetime

INVOICES_PATH = "/v1/customerinvoice"
BALANCES_PATH = "/v1/customer/balance"


class PaymentFacts(BaseModel):
    balance: float = 0.0
    overdue_amount: float = 0.0
    overdue_invoices: int = 0
    max_dunning_level: int = 0


class KnownPaymentFacts(Protocol):
    """Payment facts of a customer (its internalId and current number): the poll's ledger, or the stored
    facts (quarantine retry)."""

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts: ...


class StoredPaymentFacts:
    """The facts the last complete poll stored, for rebuilding a record outside a poll."""

    def __init__(self, stored: Iterable[tuple[int, dict[str, Any]]]) -> None:
        self._facts = {internal_id: PaymentFacts.model_validate(values) for internal_id, values in stored}

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts:
        return self._facts.get(internal_id, PaymentFacts())


def payment_status(status: str | None, facts: dict[str, Any] | None) -> str:
    """The rule (README, "Payment status"): holds first, then dunning, overdue, open balance, current."""
    if status in ("CreditHold", "OnHold", "HoldPayments"):
        return "on_hold"
    if status == "Inactive":
        return "inactive"
    facts = facts or {}
    if (facts.get("max_dunning_level") or 0) >= 1:
        return "in_dunning"
    if (facts.get("overdue_invoices") or 0) > 0:
        return "overdue"
    if (facts.get("balance") or 0) > 0:
        return "open_balance"
    return "current"


class PaymentReader:
    """Reads the two payment sources from Visma."""

    def __init__(self, client: VismaReader, page_size: int = 1000) -> None:
        self._client = client
        self._page_size = page_size

    def overdue_invoices(self, today: date) -> Iterator[tuple[str, float, int]]:
        """Open invoices past due, streamed: (customer number, open balance, dunning level)."""
        params = {"status": "Open", "documentDueDate": today.isoformat(), "documentDueDateCondition": "<"}
        for invoice in self._client.records(INVOICES_PATH, params, self._page_size):
            number = _customer_number(invoice)
            balance = _number(invoice.get("balance"))
            if number is None or balance <= 0 or not _past_due(invoice.get("documentDueDate"), today):
                continue  # the filter is the server's; we only count what is really open and past due
            yield number, balance, int(_number(invoice.get("dunningLetterLevel")))

    def balances(self, since: datetime | None) -> Iterator[tuple[int | None, str, float]]:
        """Customer balances changed since ``since`` (all when None), streamed: (internalId when the row has
        it, customer number, balance). The client writes ``since`` in the connection's time zone."""
        params: dict[str, Any] = {}
        if since is not None:
            params = {"lastModifiedDateTime": since, "lastModifiedDateTimeCondition": ">="}
        for row in self._client.records(BALANCES_PATH, params, self._page_size):
            number = _customer_number(row)
            if number is not None:
                yield _customer_id(row), number, round(_number(row.get("balance")), 2)


def _customer_number(row: dict[str, Any]) -> str | None:
    customer = row.get("customer")
    if isinstance(customer, dict) and customer.get("number"):
        return str(customer["number"])
    return str(row["customerNumber"]) if row.get("customerNumber") else None


def _customer_id(row: dict[str, Any]) -> int | None:
    customer = row.get("customer")
    internal_id = customer.get("internalId") if isinstance(customer, dict) else None
    return internal_id if isinstance(internal_id, int) and not isinstance(internal_id, bool) else None


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _past_due(value: Any, today: date) -> bool:
    try:
        return parse_visma_datetime(str(value)).date() < today
    except ValueError:
        return False
