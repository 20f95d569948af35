"""The REST endpoints (reference §5-7): describe, sync and query for Company, custom objects and Leads,
the custom object type list and daily usage. A handler returns the success body's ``result`` (and paging
keys) or raises MarketoError for a response-level failure; the server adds auth, limits and the envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from sandbox.http import Request
from sandbox.marketo.auth import SCOPE
from sandbox.marketo.errors import MarketoError
from sandbox.marketo.limits import Limits
from sandbox.marketo.schema import COMPANY, LeadSchema, ObjectSchema
from sandbox.marketo.stats import LEADS, Stats
from sandbox.marketo.store import Key, MarketoStore, Record

Body = dict[str, Any]
Handler = Callable[[Request], Body]
MAX_BATCH = 300  # records per sync, values per query filter and records per query page (reference §4)
ACTIONS = ("createOrUpdate", "createOnly", "updateOnly")
DEDUPE_BY = ("dedupeFields", "idField")
CST = timezone(timedelta(hours=-6))  # the daily quota resets at 12:00 AM CST
CUSTOM_OBJECT = r"/rest/v1/customobjects/(?P<api>[A-Za-z0-9_]+)"
LEAD_ACTIONS = ("createOrUpdate", "createOnly", "updateOnly", "createDuplicate")  # [SWAG SyncLeadRequest]
LEAD_DEFAULT_FIELDS = ["email", "updatedAt", "createdAt", "lastName", "firstName"]  # plus id [LEADS]
PARTITIONS = ("Default",)  # the one lead partition of an instance without partitions set up


class RestApi:
    def __init__(self, store: MarketoStore, stats: Stats, limits: Limits, crm_enabled: bool) -> None:
        self.store = store
        self.stats = stats
        self.limits = limits
        self.crm_enabled = crm_enabled
        self._routes: list[tuple[str, str, Handler]] = [
            ("GET", r"/rest/v1/companies/describe\.json", lambda r: self.describe(COMPANY)),
            ("GET", r"/rest/v1/companies\.json", lambda r: self.query(COMPANY, r)),
            ("POST", r"/rest/v1/companies\.json", lambda r: self.sync_or_query(COMPANY, r)),
            ("GET", r"/rest/v1/customobjects\.json", self.list_types),
            ("GET", CUSTOM_OBJECT + r"/describe\.json", lambda r: self.describe(self._custom(r))),
            ("GET", CUSTOM_OBJECT + r"\.json", lambda r: self.query(self._custom(r), r)),
            ("POST", CUSTOM_OBJECT + r"\.json", lambda r: self.sync_or_query(self._custom(r), r)),
            ("GET", r"/rest/v1/leads/describe\.json", self.describe_leads),
            ("GET", r"/rest/v1/leads/describe2\.json", self.describe_leads2),
            ("GET", r"/rest/v1/leads\.json", self.query_leads),
            ("POST", r"/rest/v1/leads\.json", self.sync_or_query_leads),
            ("POST", r"/rest/v1/companies/delete\.json", lambda r: self.delete(COMPANY, r)),
            ("POST", CUSTOM_OBJECT + r"/delete\.json", lambda r: self.delete(self._custom(r), r)),
            ("POST", r"/rest/v1/leads/delete\.json", self.delete_leads),
            ("GET", r"/rest/v1/stats/usage\.json", self.usage),
        ]

    def routes(self) -> list[tuple[str, str, Handler]]:
        return list(self._routes)

    def unrouted(self, request: Request) -> Body:
        """A known path with another method is 605; anything else under /rest is 610."""
        if any(re.fullmatch(pattern, request.path) for _, pattern, _ in self._routes):
            raise MarketoError("605")
        raise MarketoError("610")

    # -- metadata -------------------------------------------------------------------------------------
    def describe(self, api_name: str) -> Body:
        self.stats.add("describe_calls")
        return {"result": [self.store.schemas[api_name].metadata(self.crm_enabled)]}

    def list_types(self, request: Request) -> Body:
        wanted = set(_values(request.query.get("names")))
        return {"result": [schema.metadata(self.crm_enabled, with_fields=False)
                           for name, schema in self.store.schemas.items()
                           if name != COMPANY and (not wanted or name in wanted)]}

    def usage(self, request: Request) -> Body:
        used = self.limits.daily_used
        day = datetime.now(CST).strftime("%Y-%m-%dT00:00:00Z")
        return {"result": [{"date": day, "total": used, "users": [{"userId": SCOPE, "count": used}]}]}

    # -- records -----------------------------------------------------------------------------------------
    def sync_or_query(self, api_name: str, request: Request) -> Body:
        if _is_query(request):
            return self.query(api_name, request)
        return self.sync(api_name, request)

    def _check_writable(self, api_name: str) -> None:
        if self.crm_enabled and api_name == COMPANY:
            raise MarketoError("1018", "CRM Enabled: the Company API is read-only while native CRM sync is on")

    def sync(self, api_name: str, request: Request) -> Body:
        body = _json_body(request)
        self._check_writable(api_name)
        inputs = _inputs(body)
        action = _choice(body, "action", ACTIONS)
        dedupe_by = _choice(body, "dedupeBy", DEDUPE_BY)
        self.stats.add("sync_calls")
        results = self.store.sync(api_name, inputs, action, dedupe_by)
        self.stats.records(results, api_name)
        return {"result": results}

    def delete(self, api_name: str, request: Request) -> Body:
        """Delete Companies / Custom Objects (reference §5-6): ``{deleteBy, input[<=300]}``, per-record results."""
        body = _json_body(request)
        self._check_writable(api_name)
        inputs = _inputs(body)
        delete_by = _choice(body, "deleteBy", DEDUPE_BY)
        self.stats.add("delete_calls")
        results = self.store.delete(api_name, inputs, delete_by)
        self.stats.deleted(results, "companies" if api_name == COMPANY else api_name)
        return {"result": results}

    def delete_leads(self, request: Request) -> Body:
        """Delete Leads: ``{input: [{id}, ...]}`` (at most 300); per-lead ``deleted`` or ``skipped``."""
        inputs = _inputs(_json_body(request))
        self.stats.add("delete_calls")
        results = self.store.delete_leads(inputs)
        self.stats.deleted(results, LEADS)
        return {"result": results}

    def query(self, api_name: str, request: Request) -> Body:
        self.stats.add("query_calls")
        params = _query_params(request)
        schema = self.store.schemas[api_name]
        names, wanted = _filter(schema, params)
        fields = _fields(schema, params.get("fields"))
        size = _batch_size(params.get("batchSize"))
        offset = _page_offset(params.get("nextPageToken"))
        matches = self.store.find(api_name, names, wanted)
        page = matches[offset:offset + size]
        body: Body = {"result": [{"seq": seq, **_project(schema, row, fields)} for seq, row in enumerate(page)]}
        if offset + size < len(matches):
            body["nextPageToken"] = _page_token(offset + size)
        return body

    # -- leads (reference §7) ----------------------------------------------------------------------------
    def describe_leads(self, request: Request) -> Body:
        """Describe Lead: one ``LeadAttribute`` per field (superseded by Describe Lead2, still served)."""
        self.stats.add("describe_calls")
        return {"result": self.store.lead_schema.describe()}

    def describe_leads2(self, request: Request) -> Body:
        self.stats.add("describe_calls")
        return {"result": [self.store.lead_schema.describe2(self.crm_enabled)]}

    def sync_or_query_leads(self, request: Request) -> Body:
        if _is_query(request):
            return self.query_leads(request)
        return self.sync_leads(request)

    def sync_leads(self, request: Request) -> Body:
        """Sync Leads. Leads stay writable with a native CRM sync on: it is the way in for people then."""
        body = _json_body(request)
        inputs = _inputs(body)
        action = _choice(body, "action", LEAD_ACTIONS)
        lookup_field = _lead_field(self.store.lead_schema, body.get("lookupField") or "email", "Lookup field")
        partition = body.get("partitionName")
        if partition not in (None, "", *PARTITIONS):
            raise MarketoError("1003", f"Invalid partitionName '{partition}'")
        self.stats.add("sync_calls")
        results = self.store.sync_leads(inputs, action, lookup_field)
        self.stats.records(results, LEADS)
        return {"result": results}

    def query_leads(self, request: Request) -> Body:
        """Get Leads by Filter Type: ``{id, <fields>}`` per lead (no ``seq``), 300 a page, ``nextPageToken``."""
        self.stats.add("query_calls")
        params = _query_params(request)
        schema = self.store.lead_schema
        if not params.get("filterType"):
            raise MarketoError("701", "filterType cannot be blank")
        filter_type = _lead_field(schema, params["filterType"], "filterType")
        values = _values(params.get("filterValues"))
        if not values:
            raise MarketoError("701", "filterValues cannot be blank")
        if len(values) > MAX_BATCH:
            raise MarketoError("1003", f"filterValues exceeds {MAX_BATCH} values")
        fields = _values(params.get("fields")) or LEAD_DEFAULT_FIELDS
        for name in fields:
            if name not in schema.fields:
                raise MarketoError("1006", f"Field '{name}' not found")
        size = _batch_size(params.get("batchSize"))
        offset = _page_offset(params.get("nextPageToken"))
        matches = self.store.find_leads(filter_type, values)
        body: Body = {"result": [{"id": row["id"], **{name: row[name] for name in fields if row.get(name) is not None}}
                                 for row in matches[offset:offset + size]]}
        if offset + size < len(matches):
            body["nextPageToken"] = _page_token(offset + size)
        return body

    def _custom(self, request: Request) -> str:
        api_name = request.params["api"]
        if api_name == COMPANY or api_name not in self.store.schemas:
            raise MarketoError("610", "Requested resource not found")
        return api_name


# -- request parsing ---------------------------------------------------------------------------------

def _media_type(request: Request) -> str:
    return (request.header("content-type") or "").split(";")[0].strip().lower()


def _is_json(request: Request) -> bool:
    return _media_type(request) == "application/json"


def _is_query(request: Request) -> bool:
    """POST with ``_method=GET`` is a query with its parameters in the body (avoids 414 on long URIs).
    Marketo takes ``_method`` in the query string or in a form-encoded body (developers.marketo.com, "REST
    API Exception and Error Handling", part 1)."""
    method = request.query.get("_method")
    if method is None and _media_type(request) == "application/x-www-form-urlencoded":
        method = request.form().get("_method")
    return (method or "").upper() == "GET"


def _json_body(request: Request) -> dict[str, Any]:
    if not _is_json(request):
        raise MarketoError("612", "Invalid Content Type: send application/json")
    try:
        body = request.json()
    except (ValueError, UnicodeDecodeError):
        raise MarketoError("609") from None
    if not isinstance(body, dict):
        raise MarketoError("609", "Invalid JSON: expected an object")
    return body


def _query_params(request: Request) -> dict[str, Any]:
    """Query string, plus a form-encoded or JSON body (``_method=GET``; JSON carries compound-key lookups)."""
    params: dict[str, Any] = dict(request.query)
    if request.body:
        params.update(_json_body(request) if _is_json(request) else request.form())
    return params


def _inputs(body: dict[str, Any]) -> list[Any]:
    """A sync call's ``input``: 701 when blank, 1003 when not an array or over 300 records."""
    inputs = body.get("input")
    if not inputs:
        raise MarketoError("701", "input cannot be blank")
    if not isinstance(inputs, list):
        raise MarketoError("1003", "input must be an array of records")
    if len(inputs) > MAX_BATCH:
        raise MarketoError("1003", f"Batch size exceeds {MAX_BATCH}")
    return inputs


def _lead_field(schema: LeadSchema, raw: Any, what: str) -> str:
    """A lead field to look up or filter by: 1006 when there is no such field, 1011 when it is not searchable."""
    name = str(raw)
    if name not in schema.fields:
        raise MarketoError("1006", f"Field '{name}' not found")
    if name not in schema.searchable():
        raise MarketoError("1011", f"{what} '{name}' not supported")
    return name


def _values(raw: Any) -> list[str]:
    """A comma-separated string (query/form) or a JSON array, as non-empty strings."""
    items = raw if isinstance(raw, list) else str(raw or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def _choice(body: dict[str, Any], name: str, allowed: tuple[str, ...]) -> str:
    value = body.get(name) or allowed[0]
    if value not in allowed:
        raise MarketoError("1003", f"Invalid {name} '{value}': use one of {', '.join(allowed)}")
    return str(value)


def _filter(schema: ObjectSchema, params: dict[str, Any]) -> tuple[list[str], set[Key]]:
    """The fields a query filters on and the wanted value tuples."""
    filter_type = str(params.get("filterType") or "")
    if not filter_type:
        raise MarketoError("701", "filterType cannot be blank")
    if filter_type == "dedupeFields":
        names = list(schema.dedupe_fields)
    elif schema.filterable(filter_type):
        names = [filter_type]
    else:
        raise MarketoError("1003", f"Invalid filterType '{filter_type}'")
    lookup = params.get("input")
    if isinstance(lookup, list):  # JSON body: [{k1: v1, k2: v2}, ...] for compound keys
        keys = [tuple(str(item.get(n, "")) for n in names) for item in lookup if isinstance(item, dict)]
    elif len(names) > 1:
        raise MarketoError("1003", "A compound dedupe key is looked up with a JSON body 'input'")
    else:
        keys = [(value,) for value in _values(params.get("filterValues"))]
    if not keys:
        raise MarketoError("701", "filterValues cannot be blank")
    if len(keys) > MAX_BATCH:
        raise MarketoError("1003", f"filterValues exceeds {MAX_BATCH} values")
    return names, set(keys)


def _fields(schema: ObjectSchema, raw: Any) -> list[str]:
    """Requested fields, or Marketo's default: id field, dedupe fields, createdAt, updatedAt."""
    fields = _values(raw) or [*schema.dedupe_fields, "createdAt", "updatedAt"]
    for name in fields:
        if name not in schema.fields:
            raise MarketoError("1006", f"Field '{name}' not found")
    return fields


def _project(schema: ObjectSchema, row: Record, fields: list[str]) -> Record:
    """Id field plus the requested fields; a null field is left out (reference §5: implicitly null)."""
    out = {schema.id_field: row[schema.id_field]}
    out.update({name: row[name] for name in fields if row.get(name) is not None})
    return out


def _batch_size(raw: Any) -> int:
    if raw in (None, ""):
        return MAX_BATCH
    try:
        size = int(raw)
    except (TypeError, ValueError):
        raise MarketoError("1003", f"Invalid batchSize '{raw}'") from None
    if size < 1:
        raise MarketoError("1003", f"Invalid batchSize '{raw}'")
    return min(size, MAX_BATCH)


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _page_offset(token: Any) -> int:
    if not token:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise MarketoError("1003", "Invalid nextPageToken") from None
