"""The ERP API's read endpoints (api.finance.visma.net ``/v1/...``). Authentication, rate limits and
faults are applied around these handlers by the server."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sandbox.http import Handler, Request, Response
from sandbox.visma.clock import parse_served_stamp
from sandbox.visma.data import ENTITIES
from sandbox.visma.errors import ApiError, bad_request
from sandbox.visma.faults import Faults
from sandbox.visma.query import (
    DateCondition,
    ListFilter,
    PageRequest,
    date_condition,
    list_filter,
    page_request,
    page_slice,
    with_metadata,
    wrapped,
)
from sandbox.visma.reference import (
    CREDIT_TERMS,
    CUSTOMER_CLASSES,
    CUSTOMER_STATUSES,
    PAYMENT_METHODS,
    SUPPLIER_CLASSES,
    SUPPLIER_STATUSES,
)
from sandbox.visma.store import CONTACT, VismaStore

INVOICE_STATUSES = ("Hold", "Balanced", "Voided", "Scheduled", "Open", "Closed", "PendingPrint", "PendingEmail",
                    "CreditHold", "CcHold", "Reserved")
# Filters per list (customers also filter on mainContact email / phone1; contacts, ContactController's
# "Get a range of Contacts" (CR302000), on businessAccount, email, active and displayName by equality).
LIST_FILTERS: dict[str, dict[str, Any]] = {
    "customer": {"statuses": CUSTOMER_STATUSES, "equality": ("corporateId", "vatRegistrationId", "email", "phone"),
                 "created": True},
    "supplier": {"statuses": SUPPLIER_STATUSES, "equality": ("corporateId", "vatRegistrationId"), "created": False},
    CONTACT: {"statuses": (), "equality": ("businessAccount", "email", "active", "displayName"), "created": False,
              "name": False, "booleans": ("active",)},
}


def _ok(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(200, body, headers or {})


def _tagged(record: dict[str, Any]) -> Response:
    """One record with its rowversion as ``ETag``."""
    return _ok(record, {"ETag": f'"{record.get("timeStamp")}"'})


def _contact_id(raw: str) -> int:
    if not raw.isdigit():
        raise KeyError(raw)  # an id that cannot exist: not found, like an unknown one
    return int(raw)


def _enum(request: Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise bad_request(f"The value '{value}' is not valid for {name}.")
    return value


class ErpApi:
    def __init__(self, store: VismaStore, faults: Faults, max_page_size: int) -> None:
        self.store = store
        self.faults = faults
        self.max_page_size = max_page_size

    def routes(self) -> list[tuple[str, Handler]]:
        """(path pattern, handler); specific paths before the ``{number}`` patterns they would also match."""
        return [
            (r"/v1/customer/customerClass/?", self._small_list(CUSTOMER_CLASSES)),
            (r"/v1/supplier/supplierClass/?", self._small_list(SUPPLIER_CLASSES)),
            (r"/v1/customer/balance/?", self.balances),
            (r"/v1/customer/(?P<number>[^/]+)/contact/?", self.contacts),
            (r"/v1/customer/?", self._list("customer")),
            (r"/v1/supplier/?", self._list("supplier")),
            (r"/v1/customer/(?P<number>[^/]+)", self._one("customer")),
            (r"/v1/supplier/(?P<number>[^/]+)", self._one("supplier")),
            (r"/v1/contact/?", self._list(CONTACT)),
            (r"/v1/contact/(?P<contactId>[^/]+)", self.contact),
            (r"/v1/creditTerm/?", self.credit_terms),
            (r"/v1/paymentmethod/?", self._small_list(PAYMENT_METHODS)),
            (r"/v1/customerinvoice/?", self.invoices),
            (r"/v1/.*", self.not_found),
        ]

    # -- customers and suppliers ----------------------------------------------------------------
    def _list(self, entity: str) -> Handler:
        def handle(request: Request) -> Response:
            flt = list_filter(request.query, **LIST_FILTERS[entity], to_ms=self.store.clock.filter_ms)
            page = self._page(request)
            ties = random.Random() if self.faults.shuffles_ties(entity) else None  # a new order per request
            total, items = self.store.page(entity, flt, page.bounds(self.faults.duplicates), ties)
            self._after_page(entity, request.path, flt, page)
            return _ok(with_metadata(items, total, self.max_page_size))

        return handle

    def _after_page(self, entity: str, path: str, flt: ListFilter, page: PageRequest) -> None:
        """Paging hazards: changes that land between this page and the client's next request."""
        edits = self.faults.paging_edits(entity, path)
        if edits:
            self.store.edit_outside(entity, flt, edits)
        if page.number == 1 and self.faults.grow_total and entity in ENTITIES:
            self.store.insert(entity, **({"status": flt.status} if flt.status else {}))
        if page.number == 1 and entity in ENTITIES and self.faults.wants_count_keeping_shift(entity) \
                and self.store.shift_keeping_count(entity, flt, page.bounds()) is not None:
            self.faults.count_keeping_shift_done(entity)

    def _one(self, entity: str) -> Handler:
        def handle(request: Request) -> Response:
            record = self._lookup(lambda: self.store.find(entity, request.params["number"]), entity,
                                  request.params["number"])
            return _tagged(record)

        return handle

    def contact(self, request: Request) -> Response:
        """``GET /v1/contact/{contactId}``: one contact (404 for an unknown or non-numeric id)."""
        raw = request.params["contactId"]
        return _tagged(self._lookup(lambda: self.store.contact(_contact_id(raw)), CONTACT, raw, key="id"))

    def contacts(self, request: Request) -> Response:
        number = request.params["number"]
        return _ok(self._lookup(lambda: self.store.contacts(number), "customer", number))

    @staticmethod
    def _lookup(read: Callable[[], Any], entity: str, number: str, key: str = "number") -> Any:
        try:
            return read()
        except KeyError:
            raise ApiError(404, f"{entity.capitalize()} with {key} {number} not found.") from None

    # -- reference data, balances, invoices ----------------------------------------------------
    def _small_list(self, items: list[dict[str, Any]]) -> Handler:
        """A short reference list: a bare array without metadata, whole unless paging is asked for. Paging
        parameters are honoured (an empty page past the end) so a client walking until an empty page stops;
        whether Visma pages these endpoints is unconfirmed."""

        def handle(request: Request) -> Response:
            if "pageNumber" not in request.query and "pageSize" not in request.query:
                return _ok(items)
            return _ok(page_slice(items, self._page(request).bounds()))

        return handle

    def credit_terms(self, request: Request) -> Response:
        page = self._page(request)
        modified = date_condition(request.query, "lastModifiedDateTime", self.store.clock.filter_ms)
        created = date_condition(request.query, "createdDateTime", self.store.clock.filter_ms)
        wanted = request.query.get("termsId")
        terms = [t.dto() for t in CREDIT_TERMS if wanted in (None, "", t.terms_id)]
        terms = [t for t in terms if _stamp_holds(modified, t["lastModifiedDateTime"])
                 and _stamp_holds(created, t["createdDateTime"])]
        return _ok(wrapped(page_slice(terms, page.bounds()), page, len(terms)))

    def balances(self, request: Request) -> Response:
        page = self._page(request)
        total, items = self.store.balance_page(
            date_condition(request.query, "lastModifiedDateTime", self.store.clock.filter_ms), page.bounds())
        return _ok(with_metadata(items, total, self.max_page_size))

    def invoices(self, request: Request) -> Response:
        page = self._page(request)
        total, items = self.store.invoice_page(
            page.bounds(),
            customer_number=request.query.get("customer") or None,
            status=_enum(request, "status", INVOICE_STATUSES),
            due=date_condition(request.query, "documentDueDate"),
            modified=date_condition(request.query, "lastModifiedDateTime", self.store.clock.filter_ms),
        )
        return _ok(with_metadata(items, total, self.max_page_size))

    @staticmethod
    def not_found(request: Request) -> Response:
        raise ApiError(404, f"No HTTP resource was found that matches the request URI '{request.path}'.")

    def _page(self, request: Request) -> PageRequest:
        return page_request(request.query, self.max_page_size)


def _stamp_holds(condition: DateCondition | None, stamp: str) -> bool:
    return condition is None or condition.holds(parse_served_stamp(stamp))
