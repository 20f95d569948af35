"""VismaSandbox: Visma Connect's token endpoint and the ERP API on one local HTTP server.

Every ERP call goes through the same gate, in this order: stats, injected delay, injected response
(failure or throttle), the rate limit, the bearer token (company tenant, unexpired), the optional
``ipp-company-id`` header, then the endpoint. Every ERP response carries the rate-limit headers.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from types import TracebackType
from typing import Any

from sandbox.http import Handler, Latency, Request, Response, SandboxServer
from sandbox.visma.api import ErpApi
from sandbox.visma.clock import SandboxClock
from sandbox.visma.connect import Token, TokenService, identity_for
from sandbox.visma.data import Generator, base_ms_for
from sandbox.visma.errors import DENIED, ApiError, message_body
from sandbox.visma.faults import Faults
from sandbox.visma.ratelimit import Decision, FixedWindowLimiter
from sandbox.visma.store import VismaStore


class VismaStats:
    """Call counters, for asserting how a client used the API."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()

    def count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1

    def erp_call(self, path: str) -> None:
        with self._lock:
            self._counts["erp_calls"] += 1
            self._by_path[path] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"token_requests": self._counts["token_requests"], "erp_calls": self._counts["erp_calls"],
                    "by_path": dict(self._by_path), "rate_limited": self._counts["rate_limited"],
                    "faults_served": self._counts["faults_served"]}


class VismaSandbox:
    def __init__(self, seed: int = 7, customers: int = 2000, suppliers: int = 500, *, max_page_size: int = 1000,
                 token_ttl: int = 3600, port: int = 0, company_id: str = "1234567",
                 rate_limit: tuple[int, float] | None = None, clock_skew_seconds: float = 0.0,
                 latency: float | tuple[float, float] = 0.0, refuse_company_header: bool = False,
                 local_time_minutes: int | None = None) -> None:
        """``refuse_company_header``: a Visma Connect gateway that fixes the company by ``tenant_id`` and
        refuses ``ipp-company-id`` (IPP 12002). ``local_time_minutes``: a tenant whose naive stamps and filter
        values are local time (that standard UTC offset, with EU summer time), not UTC."""
        if customers < 0 or suppliers < 0 or max_page_size < 1 or token_ttl < 1:
            raise ValueError("customers/suppliers must be >= 0, max_page_size and token_ttl >= 1")
        self.company_id = company_id
        self.max_page_size = max_page_size
        self.clock = SandboxClock(clock_skew_seconds, local_time_minutes)
        self._refuse_company_header = refuse_company_header
        self._tokens = TokenService(identity_for(seed), token_ttl)
        self.store = VismaStore(Generator(seed, base_ms_for(self.clock.now_ms())), self.clock, customers, suppliers)
        self.faults = Faults()
        self.stats = VismaStats()
        self._limiter = FixedWindowLimiter(rate_limit)
        # Steady service time per ERP call (seconds, or a uniform range): the benchmark's realistic latency.
        self._latency = Latency(latency, seed)
        self._server = SandboxServer("visma", port)
        self._server.route("POST", "/connect/token", self._token)
        for pattern, handler in ErpApi(self.store, self.faults, max_page_size).routes():
            # ERP paths are case-insensitive (ASP.NET routing): /v1/paymentMethod == /v1/paymentmethod.
            self._server.route("GET", f"(?i:{pattern})", self._gate(handler))

    # -- lifecycle ----------------------------------------------------------------------------------
    def start(self) -> VismaSandbox:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> VismaSandbox:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- connection details -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    @property
    def token_url(self) -> str:
        return f"{self.url}/connect/token"

    @property
    def credentials(self) -> dict[str, str]:
        identity = self._tokens.identity
        return {"client_id": identity.client_id, "client_secret": identity.client_secret,
                "tenant_id": identity.company_tenant, "company_id": self.company_id}

    @property
    def customer_tenant_id(self) -> str:
        return self._tokens.identity.customer_tenant

    # -- switches -----------------------------------------------------------------------------------
    def issued_tokens(self) -> list[str]:
        return self._tokens.issued()

    def expire_tokens(self) -> None:
        """Every token issued so far is expired: the next ERP call with one answers 401."""
        self._tokens.expire_all()

    def set_clock_skew(self, seconds: float) -> None:
        self.clock.set_skew(seconds)

    def refuse_company_header(self, enabled: bool = True) -> None:
        self._refuse_company_header = enabled

    # -- request handling ---------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        self.stats.count("token_requests")
        return self._tokens.handle(request)

    def _gate(self, handler: Handler) -> Handler:
        def serve(request: Request) -> Response:
            self.stats.erp_call(request.path)
            self._latency.sleep()
            token = self._tokens.lookup(request.bearer_token())
            key = (self.company_id, token.client_id if token else "anonymous")
            delay = self.faults.take_delay(request.path)
            if delay is not None:
                self.stats.count("faults_served")
                time.sleep(delay)
            injected = self.faults.take_response(request.path)
            if injected is not None:
                self.stats.count("faults_served")
                return _with_rate_headers(injected, self._limiter.peek(key))
            decision = self._limiter.hit(key)
            if not decision.allowed:
                self.stats.count("rate_limited")
                return _with_rate_headers(_throttled(decision.reset_seconds), decision)
            try:
                self._authorize(request, token)
                response = handler(request)
            except ApiError as exc:
                response = exc.response()
            return _with_rate_headers(response, decision)

        return serve

    def _authorize(self, request: Request, token: Token | None) -> None:
        if token is None or not token.valid() or token.tenant_id != self._tokens.identity.company_tenant:
            raise ApiError(401, DENIED, headers={"WWW-Authenticate": "Bearer"})
        company = request.header("ipp-company-id")
        if company is not None and (self._refuse_company_header or company.strip() != self.company_id):
            raise ApiError(400, "Invalid parameter exception: ipp-company-id", shape="ipp", fault_code="12002")


def _throttled(retry_after: int) -> Response:
    return Response(429, message_body(f"Rate limit is exceeded. Try again in {retry_after} seconds."),
                    {"Retry-After": str(retry_after)})


def _with_rate_headers(response: Response, decision: Decision) -> Response:
    response.headers = {**decision.headers(), **response.headers}
    return response
