"""Visma.net ERP read client: Visma Connect tokens, paging in both list shapes, deltas, rate limits, retries.

- Tokens are cached per (token URL, client, tenant) for the container and refreshed ahead of expiry;
  a 401 forces one refresh and one retry.
- Paging follows every page: the effective page size is min(requested, metadata.maxPageSize) and the
  walk stops on totalCount or an empty page, never on a short page (a silently capped page looks short).
- ``ipp-company-id`` is sent unless turned off; a gateway that fixes the company by ``tenant_id`` may
  refuse it (IPP fault 12002): the call is retried once without it, and the process remembers that
  for the connection (logged once).
- Datetime parameters are written as wall time in the connection's time zone (Visma's stamps are naive).
- 429/5xx/timeouts are retried with capped, jittered exponential backoff (Retry-After honoured), a
  bounded number of times; X-RateLimit-Remaining/-Reset pace the calls before the hourly budget runs
  out; every wait stays inside the invocation's remaining time (VismaTimeBudgetExceeded otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import quote

import requests
from pydantic import ValidationError

from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.observability import emit, logger
from ml_connector.retry import Backoff, RepeatedFailures, TimeBudget, TimeBudgetExceeded
from ml_connector.tokens import Token, TokenCache
from ml_connector.visma.errors import VismaAuthError, VismaError, VismaTimeBudgetExceeded, error_message
from ml_connector.visma.models import ContactDto, VismaCredentials, VismaPage, format_visma_datetime

DEFAULT_BASE_URL = "https://api.finance.visma.net"
DEFAULT_TOKEN_URL = "https://connect.visma.com/connect/token"
ENTITY_PATHS = {"customer": "/v1/customer", "supplier": "/v1/supplier", "contact": "/v1/contact"}
RETRYABLE_STATUS = {429, 500, 502, 503, 504}
# Below this share of the hourly budget, calls are spread over the time left in the window.
RATE_RESERVE = 0.1
# Visma's IPP fault for a refused ipp-company-id ("Invalid parameter exception: ipp-company-id").
COMPANY_HEADER_REFUSED = "12002"

_tokens = TokenCache()
_failures = RepeatedFailures()
# Connections (API, tenant, company) whose gateway refused ipp-company-id: later calls go without it.
_header_refused: set[tuple[str, str, str]] = set()


def forget_tokens() -> None:
    """Drop the container's cached tokens and what it learnt about gateways (tests, credential rotation)."""
    _tokens.clear()
    _header_refused.clear()


class VismaClient:
    def __init__(
        self,
        credentials: VismaCredentials,
        *,
        base_url: str = DEFAULT_BASE_URL,
        token_url: str = DEFAULT_TOKEN_URL,
        send_company_header: bool = True,
        session: requests.Session | None = None,
        timeout: float = 60.0,
        deadline: Deadline = NO_DEADLINE,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
        failures: RepeatedFailures | None = None,
        time_zone: tzinfo = UTC,
    ) -> None:
        self._credentials = credentials
        self._base_url = base_url.rstrip("/")
        self._token_url = token_url
        self._send_company_header = send_company_header
        self._session = session or requests.Session()
        self._timeout = timeout
        self._budget = TimeBudget(deadline, margin=5.0, sleep=sleep)
        self._backoff = backoff or Backoff()
        self._failures = failures or _failures
        self.time_zone = time_zone
        self.calls = 0
        self.token_refreshes = 0
        self.retries = 0

    # -- paging ------------------------------------------------------------------------------
    def iter_pages(self, entity: str, *, modified_since: datetime | None = None, page_size: int = 1000,
                   condition: str = ">=", params: dict[str, Any] | None = None,
                   first_page: int = 1) -> Iterator[VismaPage]:
        """Every page of customers or suppliers changed since ``modified_since`` (all when None), from
        ``first_page`` on (a window continued by another invocation)."""
        query = dict(params or {})
        if modified_since is not None:
            query["lastModifiedDateTime"] = modified_since
            query["lastModifiedDateTimeCondition"] = condition
        yield from self.pages(ENTITY_PATHS[entity], query, page_size, first_page)

    def pages(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000,
              first_page: int = 1) -> Iterator[VismaPage]:
        """Walk a paged list endpoint in either shape (bare array with per-item metadata, or the
        ``{pageNumber, pageSize, totalCount, records}`` wrapper)."""
        number = first_page
        previous: _PageMark | None = None
        while True:
            page = to_page(self.get(path, {**(params or {}), "pageNumber": number, "pageSize": page_size}), number)
            if not page.records or _PageMark.of(page.records) == previous:
                return  # empty, or an endpoint that ignores paging and sent the same list again
            yield page
            if page.total_count:
                effective = min(page_size, page.max_page_size or page_size)
                if number * effective >= page.total_count:
                    return
            elif len(page.records) < page_size:
                return  # no totals to go by (short reference lists): a short page is the last
            previous = _PageMark.of(page.records)
            del page  # memory: one page at a time, not this one while the next is fetched
            number += 1

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000
                ) -> Iterator[dict[str, Any]]:
        for page in self.pages(path, params, page_size):
            yield from page.records
            del page  # memory: see pages()

    def contacts(self, customer_number: str) -> list[ContactDto]:
        """A customer's contact persons with their consent flags (``noMarketing``, ``noMassMail``,
        ``doNotEmail``); a malformed contact is left out rather than failing the customer."""
        body = self.get(f"/v1/customer/{quote(customer_number, safe='')}/contact")
        contacts = []
        for raw in body if isinstance(body, list) else []:
            try:
                contacts.append(ContactDto.model_validate(raw))
            except ValidationError:
                logger.warning("malformed Visma contact skipped", extra={"customer": customer_number})
        return contacts

    # -- the company header ----------------------------------------------------------------
    @property
    def sends_company_header(self) -> bool:
        """Whether calls carry ``ipp-company-id``: on unless turned off or refused by this connection's gateway."""
        return self._send_company_header and self._connection() not in _header_refused

    def _connection(self) -> tuple[str, str, str]:
        return (self._base_url, self._credentials.tenant_id, self._credentials.company_id)

    def _header_was_refused(self, response: requests.Response, sent_header: bool) -> bool:
        """A refused ipp-company-id: remember to go without it (logged once per connection)."""
        if not sent_header or response.status_code != 400:
            return False
        _, code = error_message(response.content, response.headers.get("Content-Type"))
        if code != COMPANY_HEADER_REFUSED:
            return False
        _header_refused.add(self._connection())
        logger.warning("Visma refused ipp-company-id (IPP 12002): this connection's calls go without it; the "
                       "token's tenant_id fixes the company", extra={"base_url": self._base_url})
        return True

    # -- one call ----------------------------------------------------------------------------
    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """GET with auth, retries and pacing; the parsed JSON body."""
        params = self._formatted(params)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            sent_header = self.sends_company_header
            response = self._send(path, params, attempt)
            if response is None:  # timeout or connection error, already waited
                continue
            if self._header_was_refused(response, sent_header):
                continue  # once: the header is not sent again
            if response.status_code == 401 and not refreshed:
                refreshed = True
                self._drop_token()
                continue
            if response.status_code == 401:
                raise self._unauthorized(response)
            if response.status_code in RETRYABLE_STATUS and attempt < self._backoff.max_attempts:
                self._wait_to_retry(response, attempt, path, params)
                continue
            if response.status_code >= 400:
                raise self._error(response, path)
            self._pace(response)
            return response.json()

    def _send(self, path: str, params: dict[str, Any] | None, attempt: int) -> requests.Response | None:
        try:
            timeout = self._budget.timeout(self._timeout)
        except TimeBudgetExceeded as exc:
            raise VismaTimeBudgetExceeded(f"GET {path}: {exc}") from exc
        headers = {"Authorization": f"Bearer {self._token()}", "Accept": "application/json"}
        if self.sends_company_header:
            headers["ipp-company-id"] = self._credentials.company_id
        self.calls += 1
        try:
            return self._session.get(f"{self._base_url}{path}", params=params, headers=headers, timeout=timeout)
        except (requests.Timeout, requests.ConnectionError) as exc:
            if attempt >= self._backoff.max_attempts:
                raise VismaError(f"GET {path}: no answer after {attempt} attempts ({type(exc).__name__})") from exc
            self._wait(self._retry_delay(path, params, self._backoff.delay(attempt)),
                       f"GET {path} after {type(exc).__name__}")
            return None

    def _formatted(self, params: dict[str, Any] | None) -> dict[str, Any] | None:
        """Datetime parameters as Visma filter values, in the connection's time zone."""
        if not params:
            return params
        return {k: format_visma_datetime(v, self.time_zone) if isinstance(v, datetime) else v
                for k, v in params.items()}

    def _wait_to_retry(self, response: requests.Response, attempt: int, path: str,
                       params: dict[str, Any] | None) -> None:
        hint = _seconds(response.headers.get("Retry-After"))
        logger.warning("Visma call failed; retrying", extra={"path": path, "status": response.status_code,
                                                            "attempt": attempt, "retry_after": hint})
        emit("VismaRetries", 1, status=str(response.status_code))
        delay = self._backoff.delay(attempt, hint)
        if response.status_code != 429:  # a 429 says itself when to come back
            delay = self._retry_delay(path, params, delay)
        self._wait(delay, f"GET {path} answered {response.status_code}")

    def _retry_delay(self, path: str, params: dict[str, Any] | None, backoff: float) -> float:
        """The backoff; when this very request already failed twice in five minutes, Visma would refuse a
        third try for minutes: rather than sleep a Lambda that long, stop cleanly (the next run resumes)."""
        # The same request: same API, same company, same path and parameters.
        request = f"{self._base_url}|{self._credentials.company_id}|{path}?{sorted((params or {}).items())}"
        self._failures.record(request)
        hold = self._failures.wait_before_retry(request)
        if hold > self._backoff.cap:
            raise VismaTimeBudgetExceeded(f"GET {path} failed twice within five minutes; not retried for "
                                          f"{hold:.0f}s (Visma refuses a third try); the next run resumes")
        return max(backoff, hold)

    def _wait(self, seconds: float, why: str) -> None:
        self.retries += 1
        try:
            self._budget.wait(seconds, why)
        except TimeBudgetExceeded as exc:
            raise VismaTimeBudgetExceeded(str(exc)) from exc

    def _pace(self, response: requests.Response) -> None:
        """Spread the calls left in the rate-limit window over the time left in it, before it runs out."""
        limit = _seconds(response.headers.get("X-RateLimit-Limit"))
        remaining = _seconds(response.headers.get("X-RateLimit-Remaining"))
        reset = _seconds(response.headers.get("X-RateLimit-Reset"))
        if limit is None or remaining is None or reset is None or remaining > limit * RATE_RESERVE:
            return
        delay = reset if remaining < 1 else reset / remaining
        emit("VismaRateLimitWaits", 1)
        self._wait(delay, "Visma hourly request budget nearly used")

    # -- tokens ------------------------------------------------------------------------------
    def _key(self) -> tuple[str, str, str]:
        return (self._token_url, self._credentials.client_id, self._credentials.tenant_id)

    def _token(self) -> str:
        return _tokens.get(self._key(), self._fetch_token)

    def _drop_token(self) -> None:
        _tokens.drop(self._key())

    def _fetch_token(self) -> Token:
        c = self._credentials
        form = {"grant_type": "client_credentials", "client_id": c.client_id,
                "client_secret": c.client_secret.get_secret_value(), "scope": c.scope, "tenant_id": c.tenant_id}
        try:
            response = self._session.post(self._token_url, data=form, timeout=self._budget.timeout(30.0))
        except TimeBudgetExceeded as exc:
            raise VismaTimeBudgetExceeded(f"token request: {exc}") from exc
        except requests.RequestException as exc:
            raise VismaError(f"Visma Connect token request failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            message, _ = error_message(response.content, response.headers.get("Content-Type"))
            raise VismaAuthError(f"Visma Connect refused the token request (HTTP {response.status_code}): {message}",
                                 status=response.status_code)
        data = response.json()
        if not data.get("access_token"):
            raise VismaAuthError("Visma Connect answered without an access_token")
        self.token_refreshes += 1
        emit("TokenRefreshes", 1, system="visma")
        lifetime = float(data.get("expires_in") or 3600)
        return Token.issued(str(data["access_token"]), lifetime)

    # -- errors ------------------------------------------------------------------------------
    def _unauthorized(self, response: requests.Response) -> VismaAuthError:
        message, code = error_message(response.content, response.headers.get("Content-Type"))
        return VismaAuthError(
            f"Visma refused a fresh token (HTTP 401: {message}). The tenant_id in the secret is probably the "
            "customer tenant rather than the company tenant: use the company's tenant id "
            "(Visma Admin > Company > Edit > Configuration > Tenant id).",
            status=401, fault_code=code)

    @staticmethod
    def _error(response: requests.Response, path: str) -> VismaError:
        message, code = error_message(response.content, response.headers.get("Content-Type"))
        detail = f" (fault {code})" if code else ""
        return VismaError(f"GET {path} failed with HTTP {response.status_code}: {message}{detail}",
                          status=response.status_code, fault_code=code)


def to_page(body: Any, number: int) -> VismaPage:
    """A page from either list shape; a bare array carries its totals in each item's ``metadata``."""
    if isinstance(body, dict) and isinstance(body.get("records"), list):
        return VismaPage(page_number=_int(body.get("pageNumber")) or number,
                         total_count=_int(body.get("totalCount")) or 0,
                         max_page_size=_int(body.get("pageSize")), records=body["records"])
    if not isinstance(body, list):
        raise VismaError(f"unexpected list response: {type(body).__name__}")
    records: list[dict[str, Any]] = []
    total, max_size = 0, None
    for item in body:
        if isinstance(item, dict):
            meta = item.get("metadata") or {}
            if isinstance(meta, dict):
                total = max(total, _int(meta.get("totalCount")) or 0)
                max_size = _int(meta.get("maxPageSize")) or max_size
            item = {k: v for k, v in item.items() if k != "metadata"}
        records.append(item)
    return VismaPage(page_number=number, total_count=total, max_page_size=max_size, records=records)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class _PageMark:
    """What is kept of a page to recognise the same list sent again: its size and its two ends, not all of it."""

    size: int
    first: Any
    last: Any

    @classmethod
    def of(cls, records: list[dict[str, Any]]) -> _PageMark:
        return cls(len(records), records[0], records[-1])
