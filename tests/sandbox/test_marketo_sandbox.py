"""The Marketo sandbox speaks Marketo's REST protocol (reference/marketo.md §1-6), checked over plain HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.marketo import MarketoSandbox

DESCRIBE = "/rest/v1/companies/describe.json"
COMPANIES = "/rest/v1/companies.json"
SUPPLIERS = "/rest/v1/customobjects/vismaSupplier_c.json"


class Api:
    """Plain HTTP against one sandbox: a token from identity, then Bearer calls."""

    def __init__(self, sb: MarketoSandbox) -> None:
        self.sb = sb
        self.token = self.identity().json()["access_token"]

    def identity(self, method: str = "GET", **creds: str) -> requests.Response:
        params = {"grant_type": "client_credentials", **self.sb.credentials, **creds}
        return requests.request(method, f"{self.sb.url}/identity/oauth/token", params=params, timeout=5)

    def raw(self, method: str, path: str, token: str | None = "", **kwargs: Any) -> requests.Response:
        bearer = self.token if token == "" else token
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        return requests.request(method, f"{self.sb.url}{path}", headers=headers, timeout=5, **kwargs)

    def call(self, method: str, path: str, token: str | None = "", **kwargs: Any) -> dict[str, Any]:
        reply = self.raw(method, path, token, **kwargs)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def sync(self, records: list[Any], path: str = COMPANIES, **body: Any) -> dict[str, Any]:
        return self.call("POST", path, json={"input": records, **body})

    def query(self, path: str = COMPANIES, **params: Any) -> dict[str, Any]:
        return self.call("GET", path, params=params)


def code(body: dict[str, Any]) -> str | None:
    """The response-level code, or None for a success."""
    return None if body["success"] else body["errors"][0]["code"]


def outcomes(body: dict[str, Any]) -> list[tuple[int, str, str | None]]:
    return [(r["seq"], r["status"], r["reasons"][0]["code"] if "reasons" in r else None) for r in body["result"]]


@pytest.fixture(scope="module")
def sb() -> Iterator[MarketoSandbox]:
    # A generous rate limit: this module's many calls must not trip 606 by accident.
    with MarketoSandbox(rate_limit=(10_000, 20.0)) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: MarketoSandbox) -> Iterator[Api]:
    sb.faults.clear()
    yield Api(sb)
    sb.faults.clear()


# -- identity ----------------------------------------------------------------------------------------

def test_identity_reuses_the_live_token_with_its_remaining_lifetime_then_mints_a_new_one() -> None:
    with MarketoSandbox(token_ttl=2) as sb:
        api = Api(sb)
        first = api.identity().json()
        assert first["access_token"] == api.token and first["token_type"] == "bearer"
        assert first["expires_in"] in (1, 2) and first["scope"]
        time.sleep(1.1)
        again = api.identity("POST").json()  # POST with query parameters works too
        assert again["access_token"] == api.token and again["expires_in"] == 0
        time.sleep(1.0)
        fresh = api.identity().json()
        assert fresh["access_token"] != api.token and fresh["expires_in"] == 2
        assert code(api.call("GET", DESCRIBE)) == "602"
        assert code(api.call("GET", DESCRIBE, token=fresh["access_token"])) is None
        assert sb.stats.snapshot()["token_requests"] == 4


def test_identity_refuses_bad_credentials_and_accepts_a_form_body(sb: MarketoSandbox) -> None:
    api = Api(sb)
    unknown = api.identity(client_id="nobody")
    assert unknown.status_code == 401
    assert unknown.json() == {"error": "unauthorized", "error_description": "No client with requested id: nobody"}
    wrong = api.identity(client_secret="wrong")
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    form = requests.post(f"{sb.url}/identity/oauth/token", timeout=5,
                         data={"grant_type": "client_credentials", **sb.credentials})
    assert form.status_code == 200 and form.json()["access_token"] == api.token


def test_identity_calls_are_not_rest_calls(sb: MarketoSandbox) -> None:
    api = Api(sb)
    before = sb.stats.snapshot()
    api.identity()
    after = sb.stats.snapshot()
    assert after["token_requests"] == before["token_requests"] + 1
    assert (after["calls_total"], after["calls_counted"]) == (before["calls_total"], before["calls_counted"])


def test_expire_and_revoke_tokens() -> None:
    with MarketoSandbox() as sb:
        api = Api(sb)
        sb.expire_tokens()
        assert code(api.call("GET", DESCRIBE)) == "602"
        api.token = api.identity().json()["access_token"]
        assert code(api.call("GET", DESCRIBE)) is None
        sb.revoke_tokens()
        assert code(api.call("GET", DESCRIBE)) == "601"


# -- token on REST calls -----------------------------------------------------------------------------

def test_token_errors_are_response_level_and_not_counted(api: Api, sb: MarketoSandbox) -> None:
    before = sb.stats.snapshot()
    missing = api.call("GET", DESCRIBE, token=None)
    assert missing["success"] is False and missing["errors"] == [{"code": "600", "message": "Empty access token"}]
    assert missing["requestId"].count("#") == 1
    invalid = api.call("GET", DESCRIBE, token="not-a-token")
    assert invalid["errors"][0] == {"code": "601", "message": "Access token invalid"}
    after = sb.stats.snapshot()
    assert after["calls_total"] == before["calls_total"] + 2
    assert after["calls_counted"] == before["calls_counted"]


def test_token_in_the_url_is_refused_even_with_a_header(api: Api, sb: MarketoSandbox) -> None:
    before = sb.stats.snapshot()["token_in_url_refused"]
    body = api.call("GET", DESCRIBE, params={"access_token": api.token})
    assert code(body) == "601" and "Authorization header" in body["errors"][0]["message"]
    assert code(api.call("GET", DESCRIBE, token=None, params={"access_token": api.token})) == "601"
    assert sb.stats.snapshot()["token_in_url_refused"] == before + 2


# -- companies: describe and sync ----------------------------------------------------------------------

def test_describe_companies(api: Api) -> None:
    body = api.call("GET", DESCRIBE)
    assert body["success"] is True and body["warnings"] == [] and len(body["result"]) == 1
    meta = body["result"][0]
    assert (meta["name"], meta["idField"], meta["dedupeFields"]) == ("Company", "id", ["externalCompanyId"])
    assert meta["searchableFields"] == [["externalCompanyId"], ["id"], ["company"]]
    fields = {f["name"]: f for f in meta["fields"]}
    assert fields["externalCompanyId"] == {"name": "externalCompanyId", "displayName": "External Company Id",
                                           "dataType": "string", "length": 100, "updateable": False,
                                           "crmManaged": False}
    assert fields["company"]["length"] == 255 and fields["company"]["updateable"] is True
    assert not fields["id"]["updateable"] and not fields["createdAt"]["updateable"]
    assert (fields["vismaCurrency"]["length"], fields["vismaBalance"]["dataType"]) == (3, "currency")
    assert fields["vismaContactEmail"]["dataType"] == "email"
    assert "length" not in fields["numberOfEmployees"]


def test_create_then_update_with_seq_and_id(api: Api, sb: MarketoSandbox) -> None:
    created = api.sync([{"externalCompanyId": "cu-1", "company": "Fjord AS", "vismaStatus": "Active"},
                        {"externalCompanyId": "cu-2", "company": "Nord AB", "numberOfEmployees": "12"}])
    assert [(r["seq"], r["status"]) for r in created["result"]] == [(0, "created"), (1, "created")]
    ids = [r["id"] for r in created["result"]]
    assert all(isinstance(i, int) for i in ids) and ids[0] != ids[1]
    updated = api.sync([{"externalCompanyId": "cu-2", "vismaStatus": ""},
                        {"externalCompanyId": "cu-1", "vismaStatus": "OnHold", "vismaLastModified":
                         "2025-03-14T10:41:27+01:00"}])
    assert [(r["seq"], r["id"], r["status"]) for r in updated["result"]] == [(0, ids[1], "updated"),
                                                                            (1, ids[0], "updated")]
    held = {c["externalCompanyId"]: c for c in sb.store.companies()}
    assert held["cu-1"]["company"] == "Fjord AS" and held["cu-1"]["vismaStatus"] == "OnHold"
    assert held["cu-1"]["vismaLastModified"] == "2025-03-14T09:41:27Z"
    assert held["cu-2"]["vismaStatus"] is None and held["cu-2"]["numberOfEmployees"] == 12
    assert held["cu-1"]["id"] == ids[0] and held["cu-1"]["createdAt"] and held["cu-1"]["updatedAt"]
    same = api.sync([{"externalCompanyId": "cu-1", "vismaStatus": "OnHold"}])
    assert same["result"] == [{"seq": 0, "id": ids[0], "status": "updated"}]


def test_bad_records_are_skipped_while_the_rest_are_written(api: Api, sb: MarketoSandbox) -> None:
    body = api.sync([
        {"externalCompanyId": "sk-1", "company": "Good"},
        {"company": "no key"},
        {"externalCompanyId": "sk-2", "noSuchField": 1},
        {"externalCompanyId": "sk-3", "vismaCurrency": "NOKK"},
        {"externalCompanyId": "sk-4", "numberOfEmployees": "many"},
        {"externalCompanyId": "sk-5", "vismaLastModified": "yesterday"},
        {"externalCompanyId": "sk-6", "id": 5},
        {"externalCompanyId": "sk-1", "company": "Twice"},
        {"externalCompanyId": "sk-7", "createdAt": "2025-01-01T00:00:00Z"},
        {"externalCompanyId": "sk-8", "vismaBalance": 12.5},
    ])
    assert body["success"] is True
    assert outcomes(body) == [(0, "created", None), (1, "skipped", "1003"), (2, "skipped", "1006"),
                              (3, "skipped", "1001"), (4, "skipped", "1001"), (5, "skipped", "1001"),
                              (6, "skipped", "1003"), (7, "skipped", "1036"), (8, "skipped", "1003"),
                              (9, "created", None)]
    reasons = {r["seq"]: r["reasons"][0]["message"] for r in body["result"] if "reasons" in r}
    assert reasons[1] == "Value for required field 'externalCompanyId' not specified"
    assert reasons[2] == "Field 'noSuchField' not found"
    assert reasons[3] == "Value for field 'vismaCurrency' exceeds maximum length 3"
    assert reasons[7] == "Duplicate value for externalCompanyId"
    assert "'id'" in reasons[6] and "'createdAt'" in reasons[8]
    held = {c["externalCompanyId"]: c for c in sb.store.companies() if c["externalCompanyId"].startswith("sk-")}
    assert set(held) == {"sk-1", "sk-8"} and held["sk-1"]["company"] == "Good"


def test_create_only_update_only_and_dedupe_by_id(api: Api) -> None:
    assert outcomes(api.sync([{"externalCompanyId": "mo-1"}], action="updateOnly")) == [(0, "skipped", "1004")]
    created = api.sync([{"externalCompanyId": "mo-1"}], action="createOnly")["result"][0]
    assert created["status"] == "created"
    assert outcomes(api.sync([{"externalCompanyId": "mo-1"}], action="createOnly")) == [(0, "skipped", "1005")]
    by_id = api.sync([{"id": created["id"], "company": "Renamed"}, {"id": 999_999, "company": "Ghost"}],
                     action="updateOnly", dedupeBy="idField")
    assert outcomes(by_id) == [(0, "updated", None), (1, "skipped", "1004")]
    refused = api.sync([{"id": created["id"]}], action="createOnly", dedupeBy="idField")
    assert outcomes(refused) == [(0, "skipped", "1003")]
    assert code(api.sync([{"externalCompanyId": "mo-2"}], action="upsert")) == "1003"


def test_whole_call_errors_run_nothing(api: Api, sb: MarketoSandbox) -> None:
    before = len(sb.store.companies())
    too_many = api.sync([{"externalCompanyId": f"big-{i}"} for i in range(301)])
    assert too_many["errors"] == [{"code": "1003", "message": "Batch size exceeds 300"}]
    assert too_many["result"] == [] and too_many["success"] is False
    assert api.sync([{"externalCompanyId": f"ok-{i}"} for i in range(300)])["success"] is True
    assert code(api.sync([])) == "701"
    assert code(api.call("POST", COMPANIES, data="input=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})) == "612"
    assert code(api.call("POST", COMPANIES, data="{not json", headers={"Content-Type": "application/json"})) == "609"
    huge = api.raw("POST", COMPANIES, json={"input": [{"externalCompanyId": "h", "company": "x" * 1_100_000}]})
    assert huge.status_code == 413
    assert len(sb.store.companies()) == before + 300


def test_the_1_mb_limit_is_on_the_body_bytes_received(api: Api, sb: MarketoSandbox) -> None:
    """413 beyond 1,000,000 bytes ("1 MB", reference §4, read as the stricter decimal), counted in bytes as
    received, not in characters: JSON whitespace pads a body to the exact size."""
    headers = {"Content-Type": "application/json"}
    small = b'{"input":[{"externalCompanyId":"limit-1"}]}'
    at_limit = api.raw("POST", COMPANIES, data=small + b" " * (1_000_000 - len(small)), headers=headers)
    assert at_limit.status_code == 200 and at_limit.json()["success"] is True
    over = api.raw("POST", COMPANIES, data=small + b" " * (1_000_001 - len(small)), headers=headers)
    assert over.status_code == 413
    text = json.dumps({"input": [{"externalCompanyId": "limit-2", "company": "ø" * 500_000}]}, ensure_ascii=False)
    assert len(text) < 1_000_000 < len(text.encode("utf-8"))
    assert api.raw("POST", COMPANIES, data=text.encode("utf-8"), headers=headers).status_code == 413
    assert sb.stats.snapshot()["body_bytes"][-3:] == [1_000_000, 1_000_001, len(text.encode("utf-8"))]


def test_unknown_paths_and_methods(api: Api) -> None:
    assert code(api.call("GET", "/rest/v1/leads/nothing.json")) == "610"
    assert code(api.call("DELETE", COMPANIES)) == "605"
    assert code(api.call("GET", "/rest/v1/customobjects/nope_c/describe.json")) == "610"
    assert api.raw("GET", COMPANIES, params={"filterType": "id", "filterValues": "1" * 9000}).status_code == 414


def test_method_get_is_accepted_in_a_form_body_as_in_the_query_string(api: Api) -> None:
    """Marketo's recipe for 414: POST with the query string as a form body that carries ``_method=GET``
    (developers.marketo.com, "REST API Exception and Error Handling", part 1); a query, nothing written."""
    api.sync([{"externalCompanyId": "mg-1", "company": "Method Get AS"}])
    form = {"filterType": "externalCompanyId", "filterValues": "mg-1", "fields": "company"}
    in_body = api.call("POST", COMPANIES, data={"_method": "GET", **form})
    in_query = api.call("POST", COMPANIES, params={"_method": "GET"}, data=form)
    assert in_body["success"] is True and in_body["result"] == in_query["result"]
    assert [r["company"] for r in in_body["result"]] == ["Method Get AS"]
    found = api.call("POST", SUPPLIERS, data={"_method": "get", "filterType": "vismaKey", "filterValues": "none"})
    assert found["success"] is True and found["result"] == []
    # Without _method a form body is a sync call with the wrong content type.
    assert code(api.call("POST", COMPANIES, data=form)) == "612"


# -- companies: query --------------------------------------------------------------------------------

def test_query_fields_default_fields_and_paging(api: Api) -> None:
    api.sync([{"externalCompanyId": f"q-{i}", "company": f"Q{i}", "vismaSegment": "Retail" if i % 2 else None}
              for i in range(5)])
    values = "q-0,q-1,q-2,q-3,q-4,q-none"
    default = api.query(filterType="externalCompanyId", filterValues="q-1")["result"][0]
    assert set(default) == {"seq", "id", "externalCompanyId", "createdAt", "updatedAt"}
    first = api.query(filterType="externalCompanyId", filterValues=values, fields="company,vismaSegment",
                      batchSize=2)
    assert [r["seq"] for r in first["result"]] == [0, 1] and first["nextPageToken"]
    assert first["result"][0] == {"seq": 0, "id": first["result"][0]["id"], "company": "Q0"}  # null left out
    assert first["result"][1]["vismaSegment"] == "Retail"
    pages = [first]
    while "nextPageToken" in pages[-1]:
        pages.append(api.call("POST", COMPANIES, params={"_method": "GET"}, data={
            "filterType": "externalCompanyId", "filterValues": values, "fields": "company", "batchSize": 2,
            "nextPageToken": pages[-1]["nextPageToken"]}))
    assert [r["company"] for p in pages for r in p["result"]] == ["Q0", "Q1", "Q2", "Q3", "Q4"]
    by_id = api.query(filterType="id", filterValues=str(first["result"][0]["id"]), fields="externalCompanyId")
    assert by_id["result"][0]["externalCompanyId"] == "q-0"


def test_query_refusals_and_empty_result(api: Api) -> None:
    assert api.query(filterType="externalCompanyId", filterValues="nobody")["result"] == []
    assert code(api.query(filterType="vismaStatus", filterValues="x")) == "1003"
    assert code(api.query(filterType="id", filterValues=",".join(str(i) for i in range(301)))) == "1003"
    assert code(api.query(filterType="id", filterValues="1", fields="bogus")) == "1006"
    assert code(api.query(filterType="id", filterValues="1", nextPageToken="garbage")) == "1003"


# -- limits ------------------------------------------------------------------------------------------

def test_rate_limit_gives_606_and_the_window_slides() -> None:
    with MarketoSandbox(rate_limit=(5, 1.0)) as sb:
        api = Api(sb)
        codes = [code(api.call("GET", DESCRIBE)) for _ in range(7)]
        assert codes == [None] * 5 + ["606", "606"]
        message = api.call("GET", DESCRIBE)["errors"][0]["message"]
        assert message == "Max rate limit '5' exceeded with in '1' secs"
        time.sleep(1.05)
        assert code(api.call("GET", DESCRIBE)) is None
        stats = sb.stats.snapshot()
        # 5 + 1 successes and the three 606 refusals: a refusal is charged too (reference §3a exempts only
        # 601/602/604/605/608/611), so it cannot be used to probe the window for free.
        assert stats["calls_counted"] == 9 and stats["errors_by_code"] == {"606": 3}


def test_concurrency_limit_gives_615() -> None:
    with MarketoSandbox(max_concurrency=2, latency=0.3) as sb:
        api = Api(sb)
        start = threading.Barrier(4)
        codes: list[str | None] = []

        def one() -> None:
            start.wait()
            codes.append(code(api.call("GET", DESCRIBE)))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(codes, key=str) == ["615", "615", None, None]
        stats = sb.stats.snapshot()
        # The two 615 refusals are charged as well as the two calls that ran (615 is not a starred code).
        assert stats["max_concurrency_seen"] == 2 and stats["calls_counted"] == 4


def test_daily_quota_gives_607_and_usage_reports_counted_calls() -> None:
    with MarketoSandbox(daily_quota=100) as sb:
        api = Api(sb)
        api.call("GET", DESCRIBE)
        api.call("GET", DESCRIBE, token="bad")  # 601: not counted
        usage = api.call("GET", "/rest/v1/stats/usage.json")["result"][0]
        assert usage["total"] == 2 and usage["users"][0]["count"] == 2 and usage["date"].endswith("T00:00:00Z")
        sb.set_daily_usage(100)
        assert api.call("GET", DESCRIBE)["errors"] == [{"code": "607", "message": "Daily quota reached"}]
        sb.reset_quota()
        assert code(api.call("GET", DESCRIBE)) is None


def test_refused_calls_count_against_the_window_and_the_quota() -> None:
    """Only 601, 602, 604, 605, 608 and 611 are documented as not counted (reference §3a, §4); the
    conservative reading charges every other answer, the limit refusals 606, 607 and 615 included."""
    with MarketoSandbox(rate_limit=(4, 60.0), daily_quota=100) as sb:
        api = Api(sb)
        for fault in ("606", "607", "615"):
            sb.faults.inject(fault)
            assert code(api.call("GET", DESCRIBE)) == fault
        for fault in ("604", "605", "608", "611"):
            sb.faults.inject(fault)
            assert code(api.call("GET", DESCRIBE)) == fault
        assert sb.limits.daily_used == 3
        assert code(api.call("GET", DESCRIBE)) is None  # the 4th counted call fills the window
        assert code(api.call("GET", DESCRIBE)) == "606"  # the window's own refusal is charged too
        assert sb.limits.daily_used == 5 and sb.stats.snapshot()["calls_counted"] == 5
    with MarketoSandbox(daily_quota=2) as sb:
        api = Api(sb)
        sb.set_daily_usage(2)
        assert [code(api.call("GET", DESCRIBE)) for _ in range(2)] == ["607", "607"]
        assert sb.limits.daily_used == 4


def test_a_burst_of_connections_is_answered_promptly_by_the_concurrency_rule() -> None:
    """The listen backlog must not decide concurrency: 30 connections at once all get a prompt answer
    (10 run, the rest 615), none waits for a TCP SYN retry (1 s or more)."""
    burst = 30
    with MarketoSandbox(latency=0.3, rate_limit=(10_000, 20.0)) as sb:
        api = Api(sb)
        start = threading.Barrier(burst)
        answers: list[tuple[str | None, float]] = []

        def one() -> None:
            start.wait()
            began = time.monotonic()
            with requests.Session() as session:  # a new connection each
                reply = session.get(f"{sb.url}{DESCRIBE}", headers={"Authorization": f"Bearer {api.token}"},
                                    timeout=10)
            answers.append((code(reply.json()), time.monotonic() - began))

        threads = [threading.Thread(target=one) for _ in range(burst)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [c for c, _ in answers]
        assert len(answers) == burst and set(codes) <= {None, "615"} and "615" in codes
        assert codes.count(None) >= 10
        slowest = max(elapsed for _, elapsed in answers)
        assert slowest < 0.9, f"slowest answer took {slowest:.2f}s: a connection waited in the backlog"


# -- CRM-enabled instance ----------------------------------------------------------------------------

def test_crm_enabled_refuses_company_sync_but_describes_and_queries() -> None:
    with MarketoSandbox(crm_enabled=True) as sb:
        api = Api(sb)
        assert api.sync([{"externalCompanyId": "x"}])["errors"][0]["code"] == "1018"
        fields = {f["name"]: f for f in api.call("GET", DESCRIBE)["result"][0]["fields"]}
        assert fields["company"]["crmManaged"] is True and fields["id"]["crmManaged"] is False
        assert api.query(filterType="externalCompanyId", filterValues="x")["success"] is True
        assert outcomes(api.sync([{"vismaKey": "crm-1"}], path=SUPPLIERS)) == [(0, "created", None)]
        assert sb.store.companies() == []


# -- custom objects ------------------------------------------------------------------------------------

def test_custom_object_types_and_describe(api: Api) -> None:
    types = api.call("GET", "/rest/v1/customobjects.json")["result"]
    assert "vismaSupplier_c" in {t["name"] for t in types} and all("fields" not in t for t in types)
    only = api.call("GET", "/rest/v1/customobjects.json", params={"names": "vismaSupplier_c"})["result"]
    assert [t["displayName"] for t in only] == ["Visma supplier"]
    meta = api.call("GET", "/rest/v1/customobjects/vismaSupplier_c/describe.json")["result"][0]
    assert (meta["idField"], meta["dedupeFields"], meta["state"]) == ("marketoGUID", ["vismaKey"], "approved")
    assert meta["searchableFields"] == [["vismaKey"], ["marketoGUID"]]
    fields = {f["name"]: f for f in meta["fields"]}
    assert fields["marketoGUID"]["length"] == 36 and not fields["marketoGUID"]["updateable"]
    assert fields["vismaNumber"]["length"] == 30 and fields["email"]["dataType"] == "email"


def test_custom_object_sync_and_query(api: Api, sb: MarketoSandbox) -> None:
    body = api.sync([{"vismaKey": "s-1", "name": "Fjordtrans AS", "city": "Bergen"},
                     {"vismaKey": "s-2", "nope": 1}, {"vismaKey": "s-1", "name": "again"}], path=SUPPLIERS)
    assert outcomes(body) == [(0, "created", None), (1, "skipped", "1006"), (2, "skipped", "1036")]
    guid = body["result"][0]["marketoGUID"]
    assert len(guid) == 36 and "id" not in body["result"][0]
    again = api.sync([{"vismaKey": "s-1", "city": "Oslo"}], path=SUPPLIERS)["result"][0]
    assert (again["marketoGUID"], again["status"]) == (guid, "updated")
    held = [r for r in sb.store.custom_objects("vismaSupplier_c") if r["vismaKey"] == "s-1"]
    assert len(held) == 1 and held[0]["city"] == "Oslo" and held[0]["marketoGUID"] == guid
    found = api.query(SUPPLIERS, filterType="vismaKey", filterValues="s-1,s-2", fields="name,city")["result"]
    assert found == [{"seq": 0, "marketoGUID": guid, "name": "Fjordtrans AS", "city": "Oslo"}]
    by_guid = api.query(SUPPLIERS, filterType="marketoGUID", filterValues=guid)["result"][0]
    assert by_guid["vismaKey"] == "s-1"
    assert code(api.sync([{"vismaKey": "x"}], path="/rest/v1/customobjects/nope_c.json")) == "610"


def test_custom_object_types_can_be_added_and_queried_by_compound_key() -> None:
    cars = {"displayName": "Car", "dedupe_fields": ["make", "vin"],
            "fields": {"make": {"dataType": "string", "length": 40}, "vin": {"dataType": "string", "length": 17},
                       "year": {"dataType": "integer"}}}
    with MarketoSandbox(custom_objects={"car_c": cars}, company_fields={"tier": {"dataType": "string"}}) as sb:
        api = Api(sb)
        path = "/rest/v1/customobjects/car_c.json"
        assert outcomes(api.sync([{"make": "Volvo", "vin": "V1", "year": 2020}, {"make": "Volvo"}], path=path)) == [
            (0, "created", None), (1, "skipped", "1003")]
        found = api.call("POST", path, params={"_method": "GET"},
                         json={"filterType": "dedupeFields", "fields": ["year"],
                               "input": [{"make": "Volvo", "vin": "V1"}, {"make": "Saab", "vin": "V1"}]})
        assert [r["year"] for r in found["result"]] == [2020]
        assert outcomes(api.sync([{"externalCompanyId": "t-1", "tier": "gold"}])) == [(0, "created", None)]
        names = {t["name"] for t in api.call("GET", "/rest/v1/customobjects.json")["result"]}
        assert {"car_c", "vismaSupplier_c"} <= names


# -- faults and stats -----------------------------------------------------------------------------------

def test_injected_codes_and_http_statuses(api: Api, sb: MarketoSandbox) -> None:
    before = sb.stats.snapshot()
    sb.faults.inject("611", times=2)
    first, second, third = (api.sync([{"externalCompanyId": "f-1"}]) for _ in range(3))
    assert (code(first), code(second), code(third)) == ("611", "611", None)
    sb.faults.inject(502)
    bad_gateway = api.raw("GET", DESCRIBE)
    assert bad_gateway.status_code == 502 and "Bad Gateway" in bad_gateway.text
    sb.faults.inject("713", path_contains="customobjects")
    assert code(api.call("GET", DESCRIBE)) is None
    assert code(api.query(SUPPLIERS, filterType="vismaKey", filterValues="x")) == "713"
    after = sb.stats.snapshot()
    # 611 is one of the codes Marketo does not count; 713 is counted; HTTP 502 never reached the API.
    assert after["calls_counted"] - before["calls_counted"] == 3
    assert after["errors_by_code"]["611"] - before["errors_by_code"].get("611", 0) == 2
    assert after["http_errors_by_status"]["502"] >= 1
    assert after["sync_calls"] - before["sync_calls"] == 1
    with pytest.raises(ValueError):
        sb.faults.inject("nonsense")


def test_timeout_after_apply_writes_but_never_answers(api: Api, sb: MarketoSandbox) -> None:
    sb.faults.inject("timeout_after_apply")
    with pytest.raises(requests.ConnectionError):
        api.sync([{"externalCompanyId": "late-1", "company": "Late"}])
    held = [c for c in sb.store.companies() if c["externalCompanyId"] == "late-1"]
    assert len(held) == 1 and held[0]["company"] == "Late"
    retry = api.sync([{"externalCompanyId": "late-1", "company": "Late"}])
    assert retry["result"][0] == {"seq": 0, "id": held[0]["id"], "status": "updated"}


def test_stats_count_calls_records_and_reset() -> None:
    with MarketoSandbox() as sb:
        api = Api(sb)
        api.sync([{"externalCompanyId": "st-1"}, {"externalCompanyId": "st-2", "x": 1}, {"company": "no key"}])
        api.sync([{"externalCompanyId": "st-1"}])
        api.call("GET", DESCRIBE, token="bad")
        api.sync([{"externalCompanyId": str(i)} for i in range(301)])
        stats = sb.stats.snapshot()
        assert {k: stats[k] for k in ("sync_calls", "records_created", "records_updated", "records_skipped",
                                      "calls_total", "calls_counted", "token_requests")} == {
            "sync_calls": 2, "records_created": 1, "records_updated": 1, "records_skipped": 2,
            "calls_total": 4, "calls_counted": 3, "token_requests": 1}
        assert stats["skipped_by_code"] == {"1006": 1, "1003": 1}
        assert stats["errors_by_code"] == {"601": 1, "1003": 1}
        assert stats["max_concurrency_seen"] == 1
        sb.stats.reset()
        cleared = sb.stats.snapshot()
        assert cleared["calls_total"] == 0 and cleared["errors_by_code"] == {} and cleared["max_concurrency_seen"] == 0


def test_concurrent_writers_with_one_key_make_one_record() -> None:
    with MarketoSandbox(latency=(0.0, 0.02), seed=7) as sb:
        api = Api(sb)
        results: list[str] = []

        def write(n: int) -> None:
            body = api.sync([{"externalCompanyId": "shared", "company": f"Writer {n}"}])
            results.append(body["result"][0]["status"])

        threads = [threading.Thread(target=write, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(results) == ["created"] + ["updated"] * 7
        assert len(sb.store.companies()) == 1
