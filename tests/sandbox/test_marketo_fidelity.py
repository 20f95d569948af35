"""The Marketo sandbox speaks Marketo's protocol: checked with plain HTTP, no client of ours."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import requests

from sandbox.marketo import MarketoSandbox


@pytest.fixture
def mk() -> Iterator[MarketoSandbox]:
    with MarketoSandbox(token_ttl=3600) as sandbox:
        yield sandbox


def token(sb: MarketoSandbox) -> dict[str, object]:
    reply = requests.get(f"{sb.url}/identity/oauth/token", params={"grant_type": "client_credentials",
                                                                 **sb.credentials}, timeout=5)
    assert reply.status_code == 200
    return reply.json()


def call(sb: MarketoSandbox, method: str, path: str, bearer: str | None = None, headers: dict | None = None,
         **kwargs: object) -> dict:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
    reply = requests.request(method, f"{sb.url}{path}", headers=headers, timeout=5, **kwargs)
    assert reply.status_code == 200
    return reply.json()


def sync(sb: MarketoSandbox, bearer: str, records: list[dict], **body: object) -> dict:
    return call(sb, "POST", "/rest/v1/companies.json", bearer, json={"input": records, **body})


def test_identity_reuses_the_live_token_and_refuses_bad_credentials(mk: MarketoSandbox) -> None:
    first, second = token(mk), token(mk)
    assert first["access_token"] == second["access_token"] and first["token_type"] == "bearer"
    assert 3590 <= int(second["expires_in"]) <= 3600
    bad = requests.post(f"{mk.url}/identity/oauth/token", params={"grant_type": "client_credentials",
                                                                "client_id": "x", "client_secret": "y"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
    mk.expire_tokens()
    assert token(mk)["access_token"] != first["access_token"]


def test_token_errors_and_token_in_url(mk: MarketoSandbox) -> None:
    good = str(token(mk)["access_token"])
    assert call(mk, "GET", "/rest/v1/companies/describe.json")["errors"][0]["code"] == "600"
    assert call(mk, "GET", "/rest/v1/companies/describe.json", "nope")["errors"][0]["code"] == "601"
    in_url = call(mk, "GET", "/rest/v1/companies/describe.json", params={"access_token": good})
    assert in_url["success"] is False and in_url["errors"][0]["code"] == "601"
    assert mk.stats.snapshot()["token_in_url_refused"] == 1
    mk.expire_tokens()
    assert call(mk, "GET", "/rest/v1/companies/describe.json", good)["errors"][0]["code"] == "602"


def test_sync_results_are_per_record_in_input_order(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    body = sync(mk, bearer, [
        {"externalCompanyId": "a", "company": "A"},
        {"company": "no key"},
        {"externalCompanyId": "b", "numberOfEmployees": "many"},
        {"externalCompanyId": "a", "company": "A again"},
        {"externalCompanyId": "c", "id": 5},
        {"externalCompanyId": "d", "vismaLastModified": "yesterday"},
        {"externalCompanyId": "e", "company": "x" * 256},
        {"externalCompanyId": "f", "vismaPaymentStatus": None},
    ])
    assert body["success"] is True
    codes = [(r["seq"], r["status"], (r.get("reasons") or [{}])[0].get("code")) for r in body["result"]]
    assert codes == [(0, "created", None), (1, "skipped", "1003"), (2, "skipped", "1001"), (3, "skipped", "1036"),
                     (4, "skipped", "1003"), (5, "skipped", "1001"), (6, "skipped", "1001"), (7, "created", None)]
    assert {c["externalCompanyId"] for c in mk.store.companies()} == {"a", "f"}


def test_whole_call_errors_run_nothing(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    too_many = sync(mk, bearer, [{"externalCompanyId": str(i)} for i in range(301)])
    assert too_many["success"] is False and too_many["errors"][0]["code"] == "1003"
    assert sync(mk, bearer, [])["errors"][0]["code"] == "701"
    bad_type = call(mk, "POST", "/rest/v1/companies.json", bearer, data="input=x",
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert bad_type["errors"][0]["code"] == "612"
    assert mk.store.companies() == []


def test_create_only_and_update_only(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    assert sync(mk, bearer, [{"externalCompanyId": "z"}], action="updateOnly")["result"][0]["reasons"][0][
        "code"] == "1004"
    sync(mk, bearer, [{"externalCompanyId": "z"}])
    assert sync(mk, bearer, [{"externalCompanyId": "z"}], action="createOnly")["result"][0]["reasons"][0][
        "code"] == "1005"


def test_rate_limit_gives_606() -> None:
    with MarketoSandbox(rate_limit=(5, 5.0)) as sb:
        bearer = str(token(sb)["access_token"])
        codes = [(call(sb, "GET", "/rest/v1/companies/describe.json", bearer).get("errors") or [{}])[0].get("code")
                 for _ in range(7)]
        assert codes == [None] * 5 + ["606", "606"]


def test_concurrency_limit_gives_615() -> None:
    with MarketoSandbox(max_concurrency=2, latency=0.3) as sb:
        bearer = str(token(sb)["access_token"])
        codes: list[str | None] = []

        def one() -> None:
            reply = call(sb, "GET", "/rest/v1/companies/describe.json", bearer)
            codes.append((reply.get("errors") or [{}])[0].get("code"))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes, key=str) == sorted([None, None, "615", "615"], key=str)
        assert sb.stats.snapshot()["max_concurrency_seen"] == 2


def test_daily_quota_gives_607(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    mk.set_daily_usage(50_000)
    assert call(mk, "GET", "/rest/v1/companies/describe.json", bearer)["errors"][0]["code"] == "607"
    mk.reset_quota()
    assert call(mk, "GET", "/rest/v1/companies/describe.json", bearer)["success"] is True


def test_timeout_after_apply_writes_but_never_answers(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    mk.faults.inject("timeout_after_apply")
    with pytest.raises(requests.ConnectionError):
        sync(mk, bearer, [{"externalCompanyId": "late"}])
    assert [c["externalCompanyId"] for c in mk.store.companies()] == ["late"]


def test_query_pages_and_custom_object_types(mk: MarketoSandbox) -> None:
    bearer = str(token(mk)["access_token"])
    sync(mk, bearer, [{"externalCompanyId": f"q{i}", "company": f"Q{i}"} for i in range(5)])
    page = call(mk, "GET", "/rest/v1/companies.json", bearer, params={
        "filterType": "externalCompanyId", "filterValues": "q0,q1,q2,q3", "fields": "company", "batchSize": 3})
    assert len(page["result"]) == 3 and page["nextPageToken"]
    rest = call(mk, "POST", "/rest/v1/companies.json", bearer, params={"_method": "GET"}, data={
        "filterType": "externalCompanyId", "filterValues": "q0,q1,q2,q3", "fields": "company",
        "batchSize": 3, "nextPageToken": page["nextPageToken"]})
    assert [r["company"] for r in rest["result"]] == ["Q3"]
    types = call(mk, "GET", "/rest/v1/customobjects.json", bearer)["result"]
    assert {t["name"] for t in types} >= {"vismaSupplier_c"} and all(t["idField"] == "marketoGUID" for t in types)
    assert call(mk, "GET", "/rest/v1/customobjects/nope_c/describe.json", bearer)["errors"][0]["code"] == "610"
