"""The Marketo sandbox: identity and REST endpoints for companies and custom objects on 127.0.0.1.

Error model as documented: identity failures are HTTP 401; REST failures are HTTP 200 with
``success: false`` and a response-level code (nothing ran); per-record problems are ``skipped``
results with reasons while the rest of the call is written.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

from sandbox.http import Request, Response, SandboxServer
from sandbox.marketo.control import MESSAGES, Faults, Limits, Stats, Tokens
from sandbox.marketo.model import MarketoStore, ObjectType, validate_record

MAX_BATCH = 300
MAX_BODY = 1_000_000


class MarketoError(Exception):
    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, "Error")


class MarketoSandbox:
    def __init__(self, munchkin_id: str = "123-ABC-456", *, token_ttl: float = 3600, port: int = 0,
                 rate_limit: tuple[int, float] = (100, 20.0), max_concurrency: int = 10, daily_quota: int = 50_000,
                 latency: float | tuple[float, float] = 0.0, company_fields: dict[str, Any] | None = None,
                 custom_objects: dict[str, Any] | None = None, crm_enabled: bool = False, seed: int = 0) -> None:
        self.munchkin_id = munchkin_id
        self.credentials = {"client_id": f"sandbox-{munchkin_id.lower()}-{seed}",
                            "client_secret": f"secret-{uuid.UUID(int=random.Random(seed).getrandbits(128))}"}
        self.store = MarketoStore(company_fields, custom_objects)
        self.limits = Limits(rate_limit, max_concurrency, daily_quota)
        self.stats = Stats(self.limits)
        self.faults = Faults()
        self.tokens = Tokens(token_ttl)
        self.crm_enabled = crm_enabled
        self._latency = latency
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._server = SandboxServer("marketo", port)
        self._routes()

    # -- lifecycle ------------------------------------------------------------------------------
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

    # -- test controls ----------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        self.tokens.expire_all()

    def revoke_tokens(self) -> None:
        self.tokens.revoke_all()

    def set_daily_usage(self, used: int) -> None:
        self.limits.daily_used = used

    def reset_quota(self) -> None:
        self.limits.daily_used = 0

    # -- routing ----------------------------------------------------------------------------------
    def _routes(self) -> None:
        s = self._server
        s.route("GET", "/identity/oauth/token", self._identity)
        s.route("POST", "/identity/oauth/token", self._identity)
        s.route("GET", "/rest/v1/companies/describe.json", self._rest(lambda r: self._describe("companies")))
        s.route("POST", "/rest/v1/companies.json", self._rest(lambda r: self._sync_or_query(r, "companies")))
        s.route("GET", "/rest/v1/companies.json", self._rest(lambda r: self._query(r, "companies")))
        s.route("GET", "/rest/v1/customobjects.json", self._rest(self._list_types))
        s.route("GET", r"/rest/v1/customobjects/(?P<api>[A-Za-z0-9_]+)/describe.json",
                self._rest(lambda r: self._describe(self._custom(r).api_name)))
        s.route("POST", r"/rest/v1/customobjects/(?P<api>[A-Za-z0-9_]+).json",
                self._rest(lambda r: self._sync_or_query(r, self._custom(r).api_name)))
        s.route("GET", r"/rest/v1/customobjects/(?P<api>[A-Za-z0-9_]+).json",
                self._rest(lambda r: self._query(r, self._custom(r).api_name)))
        s.route("GET", "/rest/v1/stats/usage.json", self._rest(self._usage))
        for method in ("GET", "POST"):
            s.route(method, "/rest/.*", self._rest(self._not_found))

    def _identity(self, request: Request) -> Response:
        params = {**request.query, **(request.form() if request.body else {})}
        self.stats.add("token_requests")
        if params.get("grant_type") != "client_credentials":
            return Response(400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"})
        if params.get("client_id") != self.credentials["client_id"]:
            return Response(401, {"error": "unauthorized",
                                  "error_description": "No client with requested id: " + str(params.get("client_id"))})
        if params.get("client_secret") != self.credentials["client_secret"]:
            return Response(401, {"error": "invalid_client", "error_description": "Bad client credentials"})
        token, expires_in = self.tokens.issue()
        return Response(200, {"access_token": token, "token_type": "bearer", "expires_in": expires_in,
                              "scope": "apiuser@example.com"})

    def _rest(self, handler: Any) -> Any:
        """Wrap a REST handler with Marketo's auth, limits, faults and response envelope."""

        def run(request: Request) -> Response:
            self.stats.add("calls_total")
            if "access_token" in request.query:
                # The query parameter was removed on 2026-08-31; only the Authorization header works.
                self.stats.add("token_in_url_refused")
                return self._failure("601", "Access token invalid: send it in the Authorization header")
            auth = self.tokens.check(request.bearer_token())
            if auth:
                return self._failure(auth)
            limited = self.limits.enter()
            if limited:
                return self._failure(limited)
            code: str | None = None
            try:
                self._sleep_latency()
                fault = self.faults.take(request.path)
                if fault is not None and fault != "timeout_after_apply":
                    code = str(fault)
                    return (Response(fault, {"message": "Bad Gateway"}) if isinstance(fault, int)
                            else self._failure(str(fault)))
                result = handler(request)
                self.stats.add("calls_counted")
                if fault == "timeout_after_apply":
                    return Response(drop_connection=True)
                return result if isinstance(result, Response) else self._success(result)
            except MarketoError as exc:
                code = exc.code
                return self._failure(exc.code, exc.message)
            finally:
                self.limits.leave(code)

        return run

    def _sleep_latency(self) -> None:
        latency = self._latency
        if isinstance(latency, tuple):
            with self._rng_lock:
                latency = self._rng.uniform(*latency)
        if latency > 0:
            time.sleep(latency)

    def _failure(self, code: str, message: str | None = None) -> Response:
        self.stats.error(code)
        text = message or MESSAGES.get(code, "Error").format(calls=self.limits.calls, window=int(self.limits.window))
        return Response(200, {"requestId": _request_id(), "success": False, "errors": [{"code": code,
                                                                                        "message": text}]})

    @staticmethod
    def _success(body: dict[str, Any]) -> Response:
        return Response(200, {"requestId": _request_id(), "success": True, **body})

    # -- handlers ---------------------------------------------------------------------------------
    def _custom(self, request: Request) -> ObjectType:
        obj = self.store.objects.get(request.params["api"])
        if obj is None or obj.api_name == "companies":
            raise MarketoError("610", "Requested resource not found")
        return obj

    def _not_found(self, request: Request) -> dict[str, Any]:
        raise MarketoError("610", "Requested resource not found")

    def _describe(self, api_name: str) -> dict[str, Any]:
        self.stats.add("describe_calls")
        return {"result": [self.store.objects[api_name].describe(self.crm_enabled)]}

    def _list_types(self, request: Request) -> dict[str, Any]:
        wanted = set(filter(None, request.query.get("names", "").split(",")))
        result = []
        for obj in self.store.objects.values():
            if obj.api_name != "companies" and (not wanted or obj.api_name in wanted):
                entry = obj.describe(False)
                entry.pop("fields")
                result.append(entry)
        return {"result": result}

    def _usage(self, request: Request) -> dict[str, Any]:
        return {"result": [{"date": time.strftime("%Y-%m-%d"), "total": self.limits.daily_used,
                            "users": [{"userId": "apiuser@example.com", "count": self.limits.daily_used}]}]}

    def _sync_or_query(self, request: Request, api_name: str) -> Any:
        if request.query.get("_method") == "GET":
            return self._query(request, api_name, request.form())
        return self._sync(request, api_name)

    def _sync(self, request: Request, api_name: str) -> Any:
        if len(request.body) > MAX_BODY:
            return Response(413, "Request Entity Too Large")
        if not (request.header("content-type") or "").startswith("application/json"):
            raise MarketoError("612", "Invalid Content Type")
        try:
            body = request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise MarketoError("609", "Invalid JSON") from exc
        if api_name == "companies" and self.crm_enabled:
            raise MarketoError("1018", "CRM Enabled")
        records = body.get("input") if isinstance(body, dict) else None
        if not records:
            raise MarketoError("701", "input cannot be blank")
        if len(records) > MAX_BATCH:
            raise MarketoError("1003", f"Batch size exceeds {MAX_BATCH}")
        action = body.get("action", "createOrUpdate")
        if action not in ("createOrUpdate", "createOnly", "updateOnly"):
            raise MarketoError("1003", f"Invalid action {action}")
        return {"result": self._apply(self.store.objects[api_name], records, action)}

    def _apply(self, obj: ObjectType, records: list[Any], action: str) -> list[dict[str, Any]]:
        self.stats.add("sync_calls")
        results = []
        seen: set[str] = set()
        with self.store.lock:
            for seq, record in enumerate(records):
                outcome = validate_record(obj, record)
                key = obj.key_of(record) if outcome is None else None
                if key is not None and key in seen:
                    outcome = {"status": "skipped", "reasons": [
                        {"code": "1036", "message": f"Duplicate value for {', '.join(obj.dedupe_fields)}"}]}
                if outcome is None and key is not None:
                    seen.add(key)
                    outcome = self.store.upsert(obj, key, record, action)
                results.append({"seq": seq, **(outcome or {})})
                self._count(results[-1])
        return results

    def _count(self, result: dict[str, Any]) -> None:
        status = result.get("status")
        self.stats.add(f"records_{status}")
        if status == "skipped":
            self.stats.skipped(str(result["reasons"][0]["code"]))

    def _query(self, request: Request, api_name: str, form: dict[str, str] | None = None) -> dict[str, Any]:
        self.stats.add("query_calls")
        params = {**request.query, **(form or {})}
        obj = self.store.objects[api_name]
        filter_type = params.get("filterType", "")
        if [filter_type] not in obj.searchable and filter_type not in obj.dedupe_fields:
            raise MarketoError("1003", f"Invalid filterType '{filter_type}'")
        values = [v for v in params.get("filterValues", "").split(",") if v]
        if not values or len(values) > MAX_BATCH:
            raise MarketoError("1003", "filterValues must hold 1 to 300 values")
        fields = [f for f in params.get("fields", "").split(",") if f] or [
            obj.id_field, *obj.dedupe_fields, "createdAt", "updatedAt"]
        batch = min(int(params.get("batchSize") or MAX_BATCH), MAX_BATCH)
        offset = int(params.get("nextPageToken") or 0)
        with self.store.lock:
            wanted = set(values)
            matches = [r for r in obj.records.values() if str(r.get(filter_type)) in wanted]
        page = matches[offset:offset + batch]
        result = [{obj.id_field: r[obj.id_field], **{f: r[f] for f in fields if r.get(f) is not None}}
                  for r in page]
        body: dict[str, Any] = {"result": result}
        if offset + batch < len(matches):
            body["nextPageToken"] = str(offset + batch)
        return body


def _request_id() -> str:
    return f"{uuid.uuid4().hex[:4]}#{uuid.uuid4().hex[:13]}"
