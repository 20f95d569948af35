"""The Marketo sandbox: identity and REST endpoints for companies, custom objects and leads on 127.0.0.1.

Every REST call goes through the same pipeline, in Marketo's order as far as the reference tells it:
gateway limits (HTTP 414/413) -> token (header only; 600/601/602) -> instance limits (607/606/615) ->
in flight (latency, injected faults, the endpoint) -> envelope. Every call is charged to the rate window
and the daily quota except those answering a code Marketo documents as not counted (errors.NOT_COUNTED).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from sandbox.http import Latency, Request, Response, SandboxServer
from sandbox.marketo.auth import Tokens, identity_params, identity_response, make_credentials
from sandbox.marketo.endpoints import Handler, RestApi
from sandbox.marketo.errors import NOT_COUNTED, MarketoError, envelope
from sandbox.marketo.faults import TIMEOUT_AFTER_APPLY, Faults
from sandbox.marketo.limits import Limits
from sandbox.marketo.schema import build_schemas, lead_schema
from sandbox.marketo.stats import Stats
from sandbox.marketo.store import MarketoStore

MAX_BODY = 1_000_000  # 413 beyond "1 MB" of body bytes (reference §4); the decimal reading is the stricter
MAX_URI = 8 * 1024  # 414 beyond 8 KB


class MarketoSandbox:
    def __init__(self, munchkin_id: str = "123-ABC-456", *, token_ttl: float = 3600, port: int = 0,
                 rate_limit: tuple[int, float] = (100, 20.0), max_concurrency: int = 10, daily_quota: int = 50_000,
                 latency: float | tuple[float, float] = 0.0, company_fields: dict[str, Any] | None = None,
                 custom_objects: dict[str, Any] | None = None, lead_fields: dict[str, Any] | None = None,
                 crm_enabled: bool = False, seed: int = 0) -> None:
        self.munchkin_id = munchkin_id
        self.credentials = make_credentials(munchkin_id, seed)
        self.store = MarketoStore(build_schemas(company_fields, custom_objects), seed, lead_schema(lead_fields))
        self.stats = Stats()
        self.faults = Faults()
        self.limits = Limits(rate_limit, max_concurrency, daily_quota)
        self.tokens = Tokens(token_ttl)
        self._api = RestApi(self.store, self.stats, self.limits, crm_enabled)
        self._latency = Latency(latency, seed)
        self._server = SandboxServer("marketo", port)
        self._register_routes()

    # -- lifecycle ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> MarketoSandbox:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> MarketoSandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls -----------------------------------------------------------------------------------
    @property
    def crm_enabled(self) -> bool:
        return self._api.crm_enabled

    @crm_enabled.setter
    def crm_enabled(self, value: bool) -> None:
        self._api.crm_enabled = value

    def issued_tokens(self) -> list[str]:
        return self.tokens.issued()

    def expire_tokens(self) -> None:
        """Every issued token is expired: the next REST call with one answers 602."""
        self.tokens.expire_all()

    def revoke_tokens(self) -> None:
        """Every issued token is unknown: the next REST call with one answers 601."""
        self.tokens.revoke_all()

    def set_daily_usage(self, used: int) -> None:
        self.limits.set_daily_usage(used)

    def reset_quota(self) -> None:
        self.limits.set_daily_usage(0)

    # -- routing -----------------------------------------------------------------------------------------
    def _register_routes(self) -> None:
        for method in ("GET", "POST"):
            self._server.route(method, "/identity/oauth/token", self._identity)
        for method, pattern, handler in self._api.routes():
            self._server.route(method, pattern, self._rest(handler))
        for method in ("GET", "POST", "PUT", "DELETE"):
            self._server.route(method, "/rest/.*", self._rest(self._api.unrouted))

    def _identity(self, request: Request) -> Response:
        self.stats.add("token_requests")  # identity calls are not counted toward the limits
        return identity_response(identity_params(request), self.credentials, self.tokens)

    def _rest(self, handler: Handler) -> Any:
        return lambda request: self._serve(request, handler)

    # -- the REST pipeline --------------------------------------------------------------------------------
    def _serve(self, request: Request, handler: Handler) -> Response:
        self.stats.add("calls_total")
        if request.body:
            self.stats.body(len(request.body))
        status = _gateway_status(request)
        if status is not None:
            return self._http_error(status)
        try:
            self._authenticate(request)
            slot = self.limits.enter()
        except MarketoError as error:  # refused by the token check (not counted) or a limit (counted)
            self._tally(error.code not in NOT_COUNTED)
            return self._failure(error)
        self.stats.concurrency(slot.in_flight)
        counted = False
        try:
            self._latency.sleep()  # inside the in-flight section, so concurrency is real
            response, counted = self._run(request, handler)
            return response
        finally:
            self.limits.leave(slot, counted)
            self._tally(counted)

    def _tally(self, counted: bool) -> None:
        if counted:
            self.stats.add("calls_counted")

    def _authenticate(self, request: Request) -> None:
        if "access_token" in request.query:
            # The access_token query parameter was removed on 2026-08-31 (reference §1): header only.
            self.stats.add("token_in_url_refused")
            raise MarketoError("601", "Access token invalid: send it in the Authorization header")
        self.tokens.check(request.bearer_token())

    def _run(self, request: Request, handler: Handler) -> tuple[Response, bool]:
        """The response, and whether the call counts toward the limits."""
        fault = self.faults.take(request.path)
        if isinstance(fault, int):
            return self._http_error(fault), False
        if fault is not None and fault != TIMEOUT_AFTER_APPLY:
            error = MarketoError(fault, self.limits.rate_message() if fault == "606" else None)
            return self._failure(error), fault not in NOT_COUNTED
        try:
            response = Response(200, envelope(True, **handler(request)))
            code = None
        except MarketoError as error:
            response, code = self._failure(error), error.code
        if fault == TIMEOUT_AFTER_APPLY:
            response = Response(drop_connection=True)  # applied, but the client never hears back
        return response, code not in NOT_COUNTED

    def _failure(self, error: MarketoError) -> Response:
        self.stats.error(error.code)
        return Response(200, envelope(False, errors=[{"code": error.code, "message": error.message}]))

    def _http_error(self, status: int) -> Response:
        self.stats.http_error(status)
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        return Response(status, f"<html><body><h1>{status} {phrase}</h1></body></html>",
                        {"Content-Type": "text/html; charset=utf-8"})


def _gateway_status(request: Request) -> int | None:
    """HTTP-level refusals before the API sees the call (reference §3: only 413 and 414 in practice)."""
    if len(request.path) + len(request.raw_query) + 1 > MAX_URI:
        return 414
    if len(request.body) > MAX_BODY:
        return 413
    return None
