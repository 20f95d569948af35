"""Payment facts per customer, for the connector-side payment status (Visma has no such field).

Facts come from two Visma sources: open invoices past their due date (amount, count, highest dunning
level) and customer balances (``/v1/customer/balance``, read as a delta since the last poll). They are
kept per customer ``internalId`` in the state table (only for customers with a non-zero fact): a customer
number can be changed, and a balance read only as a delta must survive that. So a customer
whose payment situation changes without its own record changing (an invoice falls due, a payment
arrives) is detected and re-sent. Both sources are streamed into the poll's ledger (``sync/ledger.py``)
and merged there, so no per-customer dict is held; of the stored facts a poll reads only those it needs
(``PollPaymentFacts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from ml_connector.state.ports import PaymentFactsStore
from ml_connector.sync.ports import VismaReader
from ml_connector.visma.models import parse_visma_datetime

if TYPE_CHECKING:
    from ml_connector.sync.ledger import PollLedger

INVOICES_PATH = "/v1/customerinvoice"
BALANCES_PATH = "/v1/customer/balance"


class PaymentFacts(BaseModel):
    balance: float = 0.0
    overdue_amount: float = 0.0
    overdue_invoices: int = 0
    max_dunning_level: int = 0


class KnownPaymentFacts(Protocol):
    """Payment facts of a customer (its internalId and current number): the poll's, or the stored facts
    (quarantine retry)."""

    def prefetch(self, internal_ids: Iterable[object]) -> None:
        """Customers about to be asked for (a page's): their stored facts are read together."""

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts: ...


class _Buckets:
    """Which buckets of stored facts were read: each is read at most once, with the customers it holds."""

    def __init__(self, store: PaymentFactsStore, connection: str) -> None:
        self.store = store
        self.connection = connection
        self._read: set[int] = set()

    def unread(self, internal_ids: Iterable[object]) -> set[int]:
        return {i for i in internal_ids if isinstance(i, int) and not isinstance(i, bool)
                and self.store.bucket(i) not in self._read}

    def read(self, internal_ids: set[int]) -> Iterator[tuple[int, PaymentFacts, str | None]]:
        for internal_id, values in self.store.get(self.connection, internal_ids):
            yield internal_id, PaymentFacts.model_validate(values), values.get("number")
        self._read.update(self.store.bucket(i) for i in internal_ids)


class StoredPaymentFacts:
    """The facts the last complete poll stored, for rebuilding a record outside a poll (read as needed)."""

    def __init__(self, store: PaymentFactsStore, connection: str) -> None:
        self._buckets = _Buckets(store, connection)
        self._facts: dict[int, PaymentFacts] = {}

    def prefetch(self, internal_ids: Iterable[object]) -> None:
        if unread := self._buckets.unread(internal_ids):
            self._facts.update((i, facts) for i, facts, _ in self._buckets.read(unread))

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts:
        self.prefetch([internal_id])
        return self._facts.get(internal_id, PaymentFacts())


class PollPaymentFacts:
    """A poll's payment facts, merged in its ledger. Of the stored facts it reads only what the poll needs: all
    the overdue customers' (to find who is no longer overdue), and the buckets of the customers it meets (each
    page's before it is mapped, those of the balance delta before the merge). So what a poll reads grows with
    its window and the overdue customers, not with every customer ever stored."""

    def __init__(self, ledger: PollLedger, store: PaymentFactsStore, connection: str) -> None:
        self._ledger = ledger
        self._buckets = _Buckets(store, connection)

    def load_overdue(self) -> None:
        store = self._buckets.store
        self._ledger.load_stored((i, v.get("number"), PaymentFacts.model_validate(v))
                                 for i, v in store.overdue(self._buckets.connection))

    def prefetch(self, internal_ids: Iterable[object]) -> None:
        # Not replacing what the overdue entries loaded: after a poll stopped between its two writes they are
        # the newer (``PaymentFactsStore.put``).
        if unread := self._buckets.unread(internal_ids):
            self._ledger.load_stored(((i, n, f) for i, f, n in self._buckets.read(unread)), replace=False)

    def facts_for(self, internal_id: int, number: str) -> PaymentFacts:
        self.prefetch([internal_id])
        return self._ledger.facts_for(internal_id, number)

    def merge(self) -> None:
        for chunk in self._ledger.payment_customer_ids():
            self.prefetch(chunk)
        self._ledger.merge_payment_facts()

    def refresh_numbers(self) -> Iterator[str]:
        return self._ledger.refresh_numbers()

    def store_changes(self) -> None:
        store, connection = self._buckets.store, self._buckets.connection
        for chunk in self._ledger.changed_facts():
            overdue_before = self._ledger.stored_overdue([i for i, _, _ in chunk])
            store.put(connection, ((i, {"number": n, **f.model_dump()}) for i, n, f in chunk), overdue_before)


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
