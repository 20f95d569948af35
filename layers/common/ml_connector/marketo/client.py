"""Marketo REST client for companies and custom objects.

- The host comes from the Munchkin ID (``https://{munchkin}.mktorest.com``), validated against its
  pattern, so no setting can send calls or credentials elsewhere; only a loopback sandbox may override it.
- The token goes only in ``Authorization: Bearer``; it is cached per (instance, client id) for the
  container and refreshed ahead of expiry. HTTP 401 and codes 601/602 force one refresh and one retry.
- Every call takes a slot from the call limiter (our budget of the instance's limits). 606/615 back
  off long enough to clear the rate window; transient codes back off exponentially; 607 and 1018 raise
  their own errors; anything else fails clearly with Marketo's code and message.
- A sync call sends the body ``payload.sync_body`` encodes (the one the batching measured). A body over
  Marketo's limit (HTTP 413, or over it before sending) is split in halves down to single records; a
  record too big alone is reported skipped. The caller sees one call's results, in input (``seq``) order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import requests

from ml_connector.config import MUNCHKIN_PATTERN, is_loopback
from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.marketo.errors import (
    LIMIT_CODES,
    TOKEN_CODES,
    TRANSIENT_CODES,
    MarketoAuthError,
    MarketoError,
    MarketoTimeBudgetExceeded,
    error_for,
)
from ml_connector.marketo.limits import CallLimiter, LocalCallLimiter
from ml_connector.marketo.models import MarketoCredentials, ObjectDescription, Reason, SyncResult
from ml_connector.marketo.payload import (
    COMPANIES,
    DEFAULT_ACTION,
    JSON_CONTENT_TYPE,
    LEADS,
    MAX_BODY_BYTES,
    sync_body,
    sync_envelope,
)
from ml_connector.observability import emit, logger
from ml_connector.retry import Backoff, TimeBudget, TimeBudgetExceeded
from ml_connector.tokens import Token, TokenCache

MAX_ATTEMPTS = 6
# Sync Custom Objects may run 120 s on Marketo's side; other calls 60 s or less.
WRITE_TIMEOUT = 125.0
READ_TIMEOUT = 35.0
TOO_LARGE = "413"  # HTTP 413, as the code request() raises it with

_tokens = TokenCache()


def _check_batch(items: list[Any]) -> None:
    if len(items) > 300:
        raise ValueError(f"{len(items)} records in one call: Marketo takes at most 300")


def forget_tokens() -> None:
    _tokens.clear()


def instance_url(munchkin_id: str, endpoint_override: str | None = None) -> str:
    if not MUNCHKIN_PATTERN.match(munchkin_id):
        raise ValueError(f"invalid Munchkin ID {munchkin_id!r}: must look like 123-ABC-456")
    if endpoint_override:
        if not is_loopback(endpoint_override):
            raise ValueError("endpoint_override is allowed only for loopback sandbox URLs")
        return endpoint_override.rstrip("/")
    return f"https://{munchkin_id}.mktorest.com"


class MarketoClient:
    def __init__(
        self,
        munchkin_id: str,
        credentials: MarketoCredentials,
        *,
        endpoint_override: str | None = None,
        session: requests.Session | None = None,
        limiter: CallLimiter | None = None,
        deadline: Deadline = NO_DEADLINE,
        backoff: Backoff | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = instance_url(munchkin_id, endpoint_override)
        self.munchkin_id = munchkin_id
        self._credentials = credentials
        self._session = session or requests.Session()
        self.limiter = limiter or LocalCallLimiter()
        self._budget = TimeBudget(deadline, margin=5.0, sleep=sleep)
        self._backoff = backoff or Backoff(base=1.0, cap=30.0, max_attempts=MAX_ATTEMPTS)
        self.calls = 0
        self.token_refreshes = 0
        self.retried_codes: dict[str, int] = {}

    # -- writes ------------------------------------------------------------------------------
    def sync_companies(self, records: list[dict[str, Any]], action: str = DEFAULT_ACTION) -> list[SyncResult]:
        return self._sync("/rest/v1/companies.json", sync_envelope(COMPANIES, action=action), records)

    def sync_custom_objects(self, api_name: str, records: list[dict[str, Any]],
                            action: str = DEFAULT_ACTION) -> list[SyncResult]:
        return self._sync(f"/rest/v1/customobjects/{api_name}.json", sync_envelope(api_name, action=action), records)

    def sync_leads(self, records: list[dict[str, Any]], lookup_field: str = "email",
                   action: str = DEFAULT_ACTION) -> list[SyncResult]:
        """Sync Leads; results carry no ``seq`` but follow the input order, so position is the seq."""
        return self._sync("/rest/v1/leads.json", sync_envelope(LEADS, lookup_field, action), records)

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        """Upsert into a mapping target: ``companies``, ``leads`` or a custom object's API name."""
        if target == COMPANIES:
            return self.sync_companies(records)
        if target == LEADS:
            return self.sync_leads(records, lookup_field=dedupe_field)
        return self.sync_custom_objects(target, records)

    def _sync(self, path: str, envelope: dict[str, Any], records: list[dict[str, Any]]) -> list[SyncResult]:
        if len(records) > 300:
            raise ValueError(f"{len(records)} records in one call: Marketo takes at most 300")
        return self._sync_part(path, envelope, records, first_seq=0)

    def _sync_part(self, path: str, envelope: dict[str, Any], records: list[dict[str, Any]],
                   first_seq: int) -> list[SyncResult]:
        """Results for ``records`` (input positions from ``first_seq``): one call, or its halves if too large."""
        body = sync_body(envelope, records)
        data = self._post_sync(path, body) if len(body) <= MAX_BODY_BYTES else None
        if data is None:
            return self._split(path, envelope, records, first_seq, len(body))
        return [SyncResult.model_validate({**r, "seq": first_seq + int(r.get("seq", i))})
                for i, r in enumerate(data.get("result") or [])]

    def _post_sync(self, path: str, body: bytes) -> dict[str, Any] | None:
        """The success body, or None when Marketo refused the body as too large."""
        try:
            return self.request("POST", path, body=body, timeout=WRITE_TIMEOUT)
        except MarketoError as exc:
            if exc.code == TOO_LARGE:
                return None
            raise

    def _split(self, path: str, envelope: dict[str, Any], records: list[dict[str, Any]], first_seq: int,
               size: int) -> list[SyncResult]:
        if len(records) == 1:
            reason = Reason(code=TOO_LARGE, message=f"request too large for Marketo (HTTP 413): {size} bytes with "
                                                    f"this record alone; the limit is {MAX_BODY_BYTES} bytes")
            return [SyncResult(seq=first_seq, status="skipped", reasons=[reason])]
        logger.warning("Marketo sync body too large; splitting it", extra={"path": path, "records": len(records),
                                                                            "bytes": size})
        half = len(records) // 2
        return (self._sync_part(path, envelope, records[:half], first_seq)
                + self._sync_part(path, envelope, records[half:], first_seq + half))

    # -- deletes -----------------------------------------------------------------------------
    def delete_records(self, target: str, dedupe_field: str, keys: list[str]) -> list[SyncResult]:
        """Delete companies or custom-object records by dedupe key (at most 300); ``deleted`` or ``skipped``
        (1013: no such record) per key, in input order."""
        if target == LEADS:
            raise ValueError("leads are deleted by Marketo id (delete_leads)")
        _check_batch(keys)
        path = ("/rest/v1/companies/delete.json" if target == COMPANIES
                else f"/rest/v1/customobjects/{target}/delete.json")
        body = json.dumps({"deleteBy": "dedupeFields", "input": [{dedupe_field: k} for k in keys]}).encode("utf-8")
        data = self.request("POST", path, body=body)
        return [SyncResult.model_validate({**r, "seq": int(r.get("seq", i))})
                for i, r in enumerate(data.get("result") or [])]

    def delete_leads(self, ids: list[int]) -> list[SyncResult]:
        """Delete Leads by id (at most 300); results carry no ``seq`` but follow the input order."""
        _check_batch(ids)
        body = json.dumps({"input": [{"id": int(i)} for i in ids]}).encode("utf-8")
        data = self.request("POST", "/rest/v1/leads/delete.json", body=body)
        return [SyncResult.model_validate({**r, "seq": i}) for i, r in enumerate(data.get("result") or [])]

    # -- reads -------------------------------------------------------------------------------
    def describe_companies(self) -> ObjectDescription:
        return self._describe("/rest/v1/companies/describe.json")

    def describe_custom_object(self, api_name: str) -> ObjectDescription:
        return self._describe(f"/rest/v1/customobjects/{api_name}/describe.json")

    def describe_leads(self) -> ObjectDescription:
        """Lead fields from describe2 (which reports updateable); leads dedupe on any single searchable field."""
        return ObjectDescription.of_leads(self._describe("/rest/v1/leads/describe2.json"))

    def describe_target(self, target: str) -> ObjectDescription:
        if target == COMPANIES:
            return self.describe_companies()
        if target == LEADS:
            return self.describe_leads()
        return self.describe_custom_object(target)

    def _describe(self, path: str) -> ObjectDescription:
        result = self.request("GET", path).get("result") or []
        if not result:
            raise MarketoError("610", f"{path}: describe returned nothing")
        return ObjectDescription.from_describe(result[0])

    def get_companies(self, filter_type: str, values: list[str], fields: list[str]) -> list[dict[str, Any]]:
        return self.query("/rest/v1/companies.json", filter_type, values, fields)

    def get_custom_objects(self, api_name: str, filter_type: str, values: list[str],
                           fields: list[str]) -> list[dict[str, Any]]:
        return self.query(f"/rest/v1/customobjects/{api_name}.json", filter_type, values, fields)

    def get_records(self, target: str, filter_type: str, values: list[str], fields: list[str]) -> list[dict[str, Any]]:
        path = {COMPANIES: "/rest/v1/companies.json", LEADS: "/rest/v1/leads.json"}.get(
            target, f"/rest/v1/customobjects/{target}.json")
        return self.query(path, filter_type, values, fields)

    def query(self, path: str, filter_type: str, values: list[str], fields: list[str]) -> list[dict[str, Any]]:
        """Records matching ``filter_type in values``, every page; POST with _method=GET keeps long
        filter lists clear of the 8 KB URI limit."""
        found: list[dict[str, Any]] = []
        form = {"filterType": filter_type, "filterValues": ",".join(values), "fields": ",".join(fields),
                "batchSize": "300"}
        while True:
            data = self.request("POST", path, params={"_method": "GET"}, form=form)
            found.extend(data.get("result") or [])
            token = data.get("nextPageToken")
            if not token or not data.get("result"):
                return found
            form = {**form, "nextPageToken": token}

    # -- transport ---------------------------------------------------------------------------
    def request(self, method: str, path: str, *, params: dict[str, str] | None = None,
                body: bytes | None = None, form: dict[str, str] | None = None, timeout: float = READ_TIMEOUT
                ) -> dict[str, Any]:
        """One logical call: limiter slot, bearer header, retries by the error table. The success body.
        ``body`` is JSON already encoded (payload.sync_body), sent as is; ``form`` a form-encoded body."""
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            code, message, data = self._attempt(method, path, params, body, form, timeout)
            if code is None:
                assert data is not None
                return data
            if code in TOKEN_CODES and not refreshed:
                refreshed = True
                self._drop_token()
                continue
            retryable = code in LIMIT_CODES or code in TRANSIENT_CODES
            if not retryable or attempt >= self._backoff.max_attempts:
                raise error_for(code, message)
            self._retry_wait(code, attempt, path)

    def _attempt(self, method: str, path: str, params: dict[str, str] | None, body: bytes | None,
                 form: dict[str, str] | None, timeout: float) -> tuple[str | None, str, dict[str, Any] | None]:
        """(None, "", body) on success, else (code, message, None); HTTP failures become codes too."""
        headers = {"Authorization": f"Bearer {self._token()}"}
        if body is not None:
            headers["Content-Type"] = JSON_CONTENT_TYPE
        try:
            with self.limiter.slot(self._wait):
                self.calls += 1
                response = self._session.request(
                    method, f"{self.base_url}{path}", params=params, data=body if body is not None else form,
                    headers=headers, timeout=self._budget.timeout(timeout))
        except TimeBudgetExceeded as exc:
            raise MarketoTimeBudgetExceeded(f"{method} {path}: {exc}") from exc
        except (requests.Timeout, requests.ConnectionError) as exc:
            return "502", f"no answer ({type(exc).__name__})", None
        if response.status_code == 401:
            return "601", "HTTP 401", None
        if response.status_code >= 500:
            return "502", f"HTTP {response.status_code}", None
        if response.status_code != 200:
            return str(response.status_code), f"HTTP {response.status_code}: {response.text[:200]}", None
        data = response.json()
        if data.get("success"):
            return None, "", data
        errors = data.get("errors") or [{"code": "unknown", "message": "success:false without errors"}]
        emit("MarketoErrors", 1, code=str(errors[0].get("code")))
        return str(errors[0].get("code")), str(errors[0].get("message") or ""), None

    def _retry_wait(self, code: str, attempt: int, path: str) -> None:
        self.retried_codes[code] = self.retried_codes.get(code, 0) + 1
        # 606/615: the instance is saturated (perhaps by other integrations); wait out most of the window.
        floor = self.limiter.budget.window_seconds / 2 if code in LIMIT_CODES else 0.0
        delay = self._backoff.delay(attempt, floor=floor)
        logger.warning("Marketo call failed; retrying", extra={"path": path, "code": code, "attempt": attempt,
                                                              "wait_s": round(delay, 2)})
        self._wait(delay, f"Marketo {code} on {path}")

    def _wait(self, seconds: float, why: str) -> None:
        try:
            self._budget.wait(seconds, why)
        except TimeBudgetExceeded as exc:
            raise MarketoTimeBudgetExceeded(str(exc)) from exc

    # -- tokens ------------------------------------------------------------------------------
    def _key(self) -> tuple[str, str]:
        return (self.base_url, self._credentials.client_id)

    def _token(self) -> str:
        return _tokens.get(self._key(), self._fetch_token)

    def _drop_token(self) -> None:
        _tokens.drop(self._key())

    def _fetch_token(self) -> Token:
        for _ in range(3):
            data = self._identity()
            lifetime = float(data.get("expires_in") or 0)
            if lifetime > 5:
                self.token_refreshes += 1
                emit("TokenRefreshes", 1, system="marketo")
                return Token.issued(str(data["access_token"]), lifetime)
            # Identity hands back the current token until it expires: wait it out, then ask again.
            self._wait(lifetime + 1, "Marketo token about to expire")
        raise MarketoAuthError("identity", "Marketo kept returning an expiring token")

    def _identity(self) -> dict[str, Any]:
        c = self._credentials
        params = {"grant_type": "client_credentials", "client_id": c.client_id,
                  "client_secret": c.client_secret.get_secret_value()}
        try:
            # The spec lists query parameters; a form body (used in production by Segment's destination)
            # keeps the client secret out of URLs and access logs.
            response = self._session.post(f"{self.base_url}/identity/oauth/token", data=params,
                                          timeout=self._budget.timeout(READ_TIMEOUT))
        except TimeBudgetExceeded as exc:
            raise MarketoTimeBudgetExceeded(f"identity: {exc}") from exc
        except requests.RequestException as exc:
            raise MarketoAuthError("identity", f"token request failed: {type(exc).__name__}") from exc
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code != 200 or not data.get("access_token"):
            detail = data.get("error_description") or data.get("error") or f"HTTP {response.status_code}"
            raise MarketoAuthError("identity", f"Marketo refused the client credentials: {detail}")
        return dict(data)
