"""Contacts link to their company in Marketo through the customer's key.

A Visma contact names its business account by customer *number*; the company's Marketo key is built
from the customer's *internalId*. The poller remembers number -> internalId for every customer it sends
(DynamoDB), so resolving a page of contacts costs one batch read; a number not seen yet (a customer
synced before this was kept, or one outside the window) is asked of Visma once and cached.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from ml_connector.state.ports import CustomerNumbers
from ml_connector.sync.mapping import EntityMapping
from ml_connector.sync.ports import VismaReader
from ml_connector.visma.errors import VismaError


class CompanyKeys:
    """The Marketo company key of a customer, by customer number (None when there is no such customer)."""

    def __init__(self, numbers: CustomerNumbers, client: VismaReader, *, connection: str, company_id: str,
                 customer_mapping: EntityMapping) -> None:
        self._numbers = numbers
        self._client = client
        self._connection = connection
        self._company_id = company_id
        self._mapping = customer_mapping
        self._ids: dict[str, int | None] = {}

    def prefetch(self, numbers: Iterable[object]) -> None:
        """Resolve a page's business accounts in one batch read before its contacts are mapped."""
        wanted = {str(n) for n in numbers if isinstance(n, str) and n} - self._ids.keys()
        if wanted:
            self._ids.update(self._numbers.internal_ids(self._connection, "customer", wanted))

    def key_for(self, number: object) -> str | None:
        if not isinstance(number, str) or not number:
            return None
        if number not in self._ids:
            self.prefetch([number])
        if number not in self._ids:
            self._ids[number] = self._ask_visma(number)
        internal_id = self._ids[number]
        if internal_id is None:
            return None
        return self._mapping.key(company_id=self._company_id, entity="customer", internal_id=internal_id)

    def _ask_visma(self, number: str) -> int | None:
        try:
            customer = self._client.get(f"/v1/customer/{quote(number, safe='')}")
        except VismaError as exc:
            if exc.status == 404:
                return None  # a supplier's contact, or a customer since deleted
            raise
        internal_id = customer.get("internalId") if isinstance(customer, dict) else None
        return internal_id if isinstance(internal_id, int) else None
