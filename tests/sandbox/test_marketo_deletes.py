"""Deletes in the Marketo sandbox (reference/marketo.md §5-7: Delete Companies, Delete Custom Objects, Delete
Leads), over plain HTTP with no client of ours; then through our client, as a reconcile calls them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.models import MarketoCredentials
from sandbox.marketo import MarketoSandbox

COMPANIES = "/rest/v1/companies.json"
DELETE_COMPANIES = "/rest/v1/companies/delete.json"
DELETE_SUPPLIERS = "/rest/v1/customobjects/vismaSupplier_c/delete.json"
DELETE_LEADS = "/rest/v1/leads/delete.json"


class Api:
    def __init__(self, sb: MarketoSandbox) -> None:
        self.sb = sb
        reply = requests.get(f"{sb.url}/identity/oauth/token",
                             params={"grant_type": "client_credentials", **sb.credentials}, timeout=5)
        self.token = reply.json()["access_token"]

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        reply = requests.request(method, f"{self.sb.url}{path}", headers=headers, timeout=5, **kwargs)
        assert reply.status_code == 200, reply.text
        return reply.json()


@pytest.fixture
def sb() -> Iterator[MarketoSandbox]:
    with MarketoSandbox(rate_limit=(10_000, 20.0)) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: MarketoSandbox) -> Api:
    return Api(sb)


def outcomes(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r["reasons"][0]["code"] if "reasons" in r else None) for r in body["result"]]


def test_delete_companies_by_dedupe_key_answers_per_record_in_input_order(api: Api, sb: MarketoSandbox) -> None:
    created = api.call("POST", COMPANIES, json={"input": [{"externalCompanyId": "a", "company": "A"},
                                                          {"externalCompanyId": "b", "company": "B"}]})
    ids = [r["id"] for r in created["result"]]
    body = api.call("POST", DELETE_COMPANIES, json={"input": [{"externalCompanyId": "b"}, {"externalCompanyId": "x"},
                                                               {"company": "A"}]})
    assert body["success"] is True
    assert body["result"][0] == {"seq": 0, "id": ids[1], "status": "deleted"}
    assert outcomes(body) == [("deleted", None), ("skipped", "1013"), ("skipped", "1003")]
    assert [c["externalCompanyId"] for c in sb.store.companies()] == ["a"]
    by_id = api.call("POST", DELETE_COMPANIES, json={"deleteBy": "idField", "input": [{"id": ids[0]}]})
    assert outcomes(by_id) == [("deleted", None)] and sb.store.companies() == []
    again = api.call("POST", COMPANIES, json={"input": [{"externalCompanyId": "b", "company": "B again"}]})
    assert again["result"][0]["status"] == "created"  # the key is free again
    stats = sb.stats.snapshot()
    assert (stats["delete_calls"], stats["records_deleted"], stats["skipped_by_code"]) == (
        2, 2, {"1013": 1, "1003": 1})


def test_delete_refuses_what_marketo_refuses(api: Api, sb: MarketoSandbox) -> None:
    def code(body: dict[str, Any]) -> str | None:
        return None if body["success"] else body["errors"][0]["code"]

    assert code(api.call("POST", DELETE_COMPANIES, json={"input": []})) == "701"
    too_many = [{"externalCompanyId": str(i)} for i in range(301)]
    assert code(api.call("POST", DELETE_COMPANIES, json={"input": too_many})) == "1003"
    assert code(api.call("POST", DELETE_COMPANIES, json={"deleteBy": "name", "input": [{"a": 1}]})) == "1003"
    assert code(api.call("POST", DELETE_COMPANIES, data="input=x",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})) == "612"
    assert code(api.call("GET", DELETE_COMPANIES)) == "605"
    assert code(api.call("POST", "/rest/v1/customobjects/nope_c/delete.json", json={"input": [{"a": "1"}]})) == "610"
    sb.crm_enabled = True
    assert code(api.call("POST", DELETE_COMPANIES, json={"input": [{"externalCompanyId": "a"}]})) == "1018"


def test_delete_custom_objects_and_leads(api: Api, sb: MarketoSandbox) -> None:
    api.call("POST", "/rest/v1/customobjects/vismaSupplier_c.json", json={"input": [{"vismaKey": "s-1", "name": "S"}]})
    body = api.call("POST", DELETE_SUPPLIERS, json={"input": [{"vismaKey": "s-1"}, {"vismaKey": "s-2"}]})
    assert outcomes(body) == [("deleted", None), ("skipped", "1013")] and body["result"][0]["marketoGUID"]
    assert sb.store.custom_objects("vismaSupplier_c") == []
    lead = api.call("POST", "/rest/v1/leads.json", json={"input": [{"email": "ann@example.com"}]})["result"][0]
    deleted = api.call("POST", DELETE_LEADS, json={"input": [{"id": lead["id"]}, {"id": 424242}]})
    assert deleted["result"] == [{"id": lead["id"], "status": "deleted"},
                                 {"id": 424242, "status": "skipped",
                                  "reasons": [{"code": "1013", "message": "Lead not found"}]}]
    assert sb.store.leads() == []


def test_our_client_deletes_and_reads_back_within_its_budget(sb: MarketoSandbox) -> None:
    client = MarketoClient(sb.munchkin_id, MarketoCredentials.model_validate(sb.credentials),
                           endpoint_override=sb.url)
    client.sync_records("companies", [{"externalCompanyId": k, "company": k.upper()} for k in ("a", "b")],
                        "externalCompanyId")
    held = client.get_records("companies", "externalCompanyId", ["a", "b", "c"], ["externalCompanyId", "company"])
    assert sorted((r["externalCompanyId"], r["company"]) for r in held) == [("a", "A"), ("b", "B")]
    results = client.delete_records("companies", "externalCompanyId", ["b", "c"])
    assert [(r.seq, r.status, [x.code for x in r.reasons]) for r in results] == [
        (0, "deleted", []), (1, "skipped", ["1013"])]
    lead = client.sync_records("leads", [{"email": "bo@example.com"}], "email")[0]
    assert [r.status for r in client.delete_leads([int(str(lead.id)), 99999])] == ["deleted", "skipped"]
    with pytest.raises(ValueError, match="300"):
        client.delete_records("companies", "externalCompanyId", [str(i) for i in range(301)])
    assert client.calls == 5 == sb.stats.snapshot()["calls_counted"]
