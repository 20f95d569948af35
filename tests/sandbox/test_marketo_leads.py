"""Leads in the Marketo sandbox (reference/marketo.md §7, swagger syncLeadUsingPOST / getLeadsByFilterUsingGET /
describeUsingGET_2 / describeUsingGET_6), checked over plain HTTP with no client of ours."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests

from sandbox.marketo import MarketoSandbox

LEADS = "/rest/v1/leads.json"
DESCRIBE = "/rest/v1/leads/describe.json"
DESCRIBE2 = "/rest/v1/leads/describe2.json"
# Adobe's official Lead Database spec, vendored from ../shared/reference/specs/ so the check always runs.
SPEC = Path(__file__).resolve().parents[2] / "sandbox" / "marketo" / "specs" / "marketo-mapi.swagger.json"


class Api:
    def __init__(self, sb: MarketoSandbox) -> None:
        self.sb = sb
        reply = requests.get(f"{sb.url}/identity/oauth/token",
                             params={"grant_type": "client_credentials", **sb.credentials}, timeout=5)
        self.token = reply.json()["access_token"]

    def call(self, method: str, path: str, token: str | None = "", **kwargs: Any) -> dict[str, Any]:
        bearer = self.token if token == "" else token
        headers = {**kwargs.pop("headers", {}), **({"Authorization": f"Bearer {bearer}"} if bearer else {})}
        reply = requests.request(method, f"{self.sb.url}{path}", headers=headers, timeout=5, **kwargs)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def sync(self, records: list[Any], **body: Any) -> dict[str, Any]:
        return self.call("POST", LEADS, json={"input": records, **body})

    def get(self, **params: Any) -> dict[str, Any]:
        return self.call("GET", LEADS, params=params)


def code(body: dict[str, Any]) -> str | None:
    return None if body["success"] else body["errors"][0]["code"]


def outcomes(body: dict[str, Any]) -> list[tuple[str, str | None]]:
    return [(r["status"], r["reasons"][0]["code"] if "reasons" in r else None) for r in body["result"]]


@pytest.fixture
def sb() -> Iterator[MarketoSandbox]:
    with MarketoSandbox(rate_limit=(10_000, 20.0)) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: MarketoSandbox) -> Api:
    return Api(sb)


# -- sync ----------------------------------------------------------------------------------------------

def test_create_then_update_by_email_answers_id_and_status_in_input_order(api: Api, sb: MarketoSandbox) -> None:
    created = api.sync([{"email": "ann@example.com", "firstName": "Ann", "vismaContactId": "C1"},
                        {"email": "bob@example.com", "lastName": "Berg", "vismaCustomerNumber": "10002"}])
    assert created["success"] is True and created["errors"] == []
    first, second = created["result"]
    assert first["status"] == "created" and second["status"] == "created" and first["id"] != second["id"]
    assert "seq" not in first  # lead results carry no seq (reference §3)
    updated = api.sync([{"email": "bob@example.com", "title": "CFO"}, {"email": "ANN@example.com", "phone": "+46 8 1"}])
    assert updated["result"] == [{"id": second["id"], "status": "updated"}, {"id": first["id"], "status": "updated"}]
    ann = sb.store.lead_by_email("ann@example.com")
    assert ann is not None and ann["phone"] == "+46 8 1" and ann["firstName"] == "Ann" and ann["vismaContactId"] == "C1"
    assert ann["createdAt"] and ann["updatedAt"] and ann["unsubscribed"] is False
    # Matched ignoring case, then stored as sent (the lookup field too).
    assert [lead["email"] for lead in sb.store.leads()] == ["ANN@example.com", "bob@example.com"]
    assert sb.store.lead_by_email("nobody@example.com") is None


def test_create_only_and_update_only_skip_with_1005_and_1004(api: Api) -> None:
    api.sync([{"email": "known@example.com"}])
    assert outcomes(api.sync([{"email": "known@example.com"}, {"email": "new@example.com"}], action="createOnly")) == [
        ("skipped", "1005"), ("created", None)]
    update_only = api.sync([{"email": "ghost@example.com"}, {"email": "known@example.com"}], action="updateOnly")
    assert outcomes(update_only) == [("skipped", "1004"), ("updated", None)]
    skipped = api.sync([{"email": "ghost@example.com"}], action="updateOnly")["result"][0]
    assert skipped == {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]}


def test_unknown_field_skips_that_record_with_1006_and_writes_the_others(api: Api, sb: MarketoSandbox) -> None:
    body = api.sync([{"email": "a@example.com", "firstName": "A"},
                     {"email": "b@example.com", "shoeSize": 44},
                     {"email": "c@example.com", "lastName": "C"}])
    assert body["success"] is True
    assert outcomes(body) == [("created", None), ("skipped", "1006"), ("created", None)]
    assert body["result"][1]["reasons"][0]["message"] == "Field 'shoeSize' not found"
    assert sorted(lead["email"] for lead in sb.store.leads()) == ["a@example.com", "c@example.com"]


def test_record_level_problems(api: Api) -> None:
    api.sync([{"email": "twin@example.com", "firstName": "One"}])
    api.sync([{"email": "twin@example.com", "firstName": "Two"}], action="createDuplicate")
    body = api.sync([
        {"email": "twin@example.com", "title": "x"},  # two leads match the lookup
        {"firstName": "no email"},  # no lookup value
        {"email": "", "firstName": "blank email"},
        {"email": "d@example.com", "id": 7},  # id is only a lookup key (with updateOnly)
        {"email": "e@example.com", "createdAt": "2024-01-01T00:00:00Z"},  # read-only field
        {"email": "f@example.com", "unsubscribed": "maybe"},  # not a boolean
        "not an object",
    ])
    assert outcomes(body) == [("skipped", "1007"), ("skipped", "1003"), ("skipped", "1003"), ("skipped", "1003"),
                              ("skipped", "1003"), ("skipped", "1001"), ("skipped", "1003")]
    assert body["result"][0]["reasons"][0]["message"] == "Multiple lead match lookup criteria"


def test_lookup_by_id_only_with_update_only(api: Api, sb: MarketoSandbox) -> None:
    lead_id = api.sync([{"email": "id@example.com"}])["result"][0]["id"]
    body = api.sync([{"id": lead_id, "email": "renamed@example.com"}, {"id": 99_999, "firstName": "x"}],
                    action="updateOnly", lookupField="id")
    assert body["result"] == [{"id": lead_id, "status": "updated"},
                              {"status": "skipped", "reasons": [{"code": "1004", "message": "Lead not found"}]}]
    assert sb.store.lead_by_email("renamed@example.com") is not None
    assert outcomes(api.sync([{"id": lead_id}], lookupField="id")) == [("skipped", "1003")]
    assert outcomes(api.sync([{"email": "x@example.com", "vismaContactId": "K9"}], lookupField="vismaContactId")) == [
        ("created", None)]


def test_whole_call_errors_write_nothing(api: Api, sb: MarketoSandbox) -> None:
    too_many = api.sync([{"email": f"p{i}@example.com"} for i in range(301)])
    assert too_many["success"] is False and code(too_many) == "1003" and too_many["result"] == []
    assert code(api.sync([])) == "701"
    assert code(api.sync([{"email": "a@example.com"}], action="upsert")) == "1003"
    assert code(api.sync([{"email": "a@example.com"}], lookupField="nope")) == "1006"
    assert code(api.sync([{"email": "a@example.com"}], lookupField="unsubscribed")) == "1011"
    assert code(api.sync([{"email": "a@example.com"}], partitionName="Elsewhere")) == "1003"
    form = api.call("POST", LEADS, data="input=x", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert code(form) == "612"
    assert sb.store.leads() == []
    assert api.sync([{"email": f"p{i}@example.com"} for i in range(300)], partitionName="Default")["success"]
    assert len(sb.store.leads()) == 300


def test_unsubscribed_is_stored_as_sent_so_false_resubscribes(api: Api, sb: MarketoSandbox) -> None:
    api.sync([{"email": "opt@example.com", "unsubscribed": True, "unsubscribedReason": "asked to"}])
    lead = sb.store.lead_by_email("opt@example.com")
    assert lead is not None and lead["unsubscribed"] is True and lead["unsubscribedReason"] == "asked to"
    api.sync([{"email": "opt@example.com", "firstName": "Olle"}])  # not sent: left alone
    lead = sb.store.lead_by_email("opt@example.com")
    assert lead is not None and lead["unsubscribed"] is True
    api.sync([{"email": "opt@example.com", "unsubscribed": False}])  # the hazard: Marketo re-subscribes
    lead = sb.store.lead_by_email("opt@example.com")
    assert lead is not None and lead["unsubscribed"] is False


# -- query and describe ---------------------------------------------------------------------------------

def test_get_leads_by_filter_type_with_fields_and_paging(api: Api) -> None:
    api.sync([{"email": f"q{i}@example.com", "firstName": f"Q{i}", "vismaCustomerNumber": "C7"} for i in range(5)])
    default = api.get(filterType="email", filterValues="Q0@example.com,q1@example.com,none@example.com")
    assert default["success"] is True
    assert [r["email"] for r in default["result"]] == ["q0@example.com", "q1@example.com"]
    assert set(default["result"][0]) == {"id", "email", "firstName", "createdAt", "updatedAt"}  # null lastName left out
    page = api.get(filterType="vismaCustomerNumber", filterValues="C7", fields="email,unsubscribed", batchSize=3)
    assert len(page["result"]) == 3 and page["nextPageToken"]
    assert set(page["result"][0]) == {"id", "email", "unsubscribed"}
    rest = api.call("POST", LEADS, params={"_method": "GET"}, data={
        "filterType": "vismaCustomerNumber", "filterValues": "C7", "fields": "email", "batchSize": 3,
        "nextPageToken": page["nextPageToken"]})
    assert [r["email"] for r in rest["result"]] == ["q3@example.com", "q4@example.com"] and "nextPageToken" not in rest
    by_id = api.get(filterType="id", filterValues=str(page["result"][0]["id"]), fields="firstName")
    assert by_id["result"] == [{"id": page["result"][0]["id"], "firstName": "Q0"}]
    assert api.get(filterType="email", filterValues="none@example.com")["result"] == []



def test_get_leads_with_method_get_in_a_form_body(api: Api, sb: MarketoSandbox) -> None:
    """``_method=GET`` may travel in the form body instead of the query string; it is a query, not a sync."""
    api.sync([{"email": "mg@example.com", "firstName": "Mette"}])
    found = api.call("POST", LEADS, data={"_method": "GET", "filterType": "email", "filterValues": "mg@example.com",
                                          "fields": "firstName"})
    assert found["success"] is True and [r["firstName"] for r in found["result"]] == ["Mette"]
    assert len(sb.store.leads()) == 1

def test_get_leads_refusals(api: Api) -> None:
    assert code(api.get(filterValues="a@example.com")) == "701"
    assert code(api.get(filterType="email")) == "701"
    assert code(api.get(filterType="email", filterValues=",".join(f"{i}@x.io" for i in range(301)))) == "1003"
    assert code(api.get(filterType="email", filterValues="a@x.io", fields="shoeSize")) == "1006"
    assert code(api.get(filterType="firstName", filterValues="Ann")) == "1011"


def test_describe_lists_standard_and_custom_fields_with_marketo_types(api: Api) -> None:
    body = api.call("GET", DESCRIBE)
    assert body["success"] is True
    fields = {f["rest"]["name"]: f for f in body["result"]}
    expected = {"email": "email", "firstName": "string", "lastName": "string", "phone": "phone", "title": "string",
                "company": "string", "unsubscribed": "boolean", "unsubscribedReason": "string",
                "marketingSuspended": "boolean", "leadSource": "string", "vismaCustomerNumber": "string",
                "vismaContactId": "string", "id": "integer", "createdAt": "datetime", "updatedAt": "datetime"}
    assert {name: fields[name]["dataType"] for name in expected} == expected
    assert {name for name, f in fields.items() if f["rest"]["readOnly"]} == {"id", "createdAt", "updatedAt"}
    assert fields["company"]["id"] == 2 and fields["company"]["soap"] == {"name": "Company", "readOnly": False}
    assert len({f["id"] for f in body["result"]}) == len(body["result"])
    two = api.call("GET", DESCRIBE2)["result"][0]
    assert two["name"] == "API Lead" and ["email"] in two["searchableFields"] and ["vismaContactId"] in two[
        "searchableFields"]
    updateable = {f["name"]: f["updateable"] for f in two["fields"]}
    assert updateable["email"] is True and updateable["id"] is False


def test_lead_fields_can_be_extended_per_instance() -> None:
    with MarketoSandbox(lead_fields={"vismaSegment": {"dataType": "string", "length": 50}}) as sb:
        api = Api(sb)
        assert "vismaSegment" in {f["rest"]["name"] for f in api.call("GET", DESCRIBE)["result"]}
        assert outcomes(api.sync([{"email": "s@example.com", "vismaSegment": "A"}])) == [("created", None)]


# -- gates: auth, limits, faults, stats ---------------------------------------------------------------------

def test_token_errors_as_for_other_endpoints(api: Api, sb: MarketoSandbox) -> None:
    record = {"input": [{"email": "t@example.com"}]}
    assert code(api.call("POST", LEADS, token=None, json=record)) == "600"
    assert code(api.call("POST", LEADS, token="bogus", json=record)) == "601"
    assert code(api.call("GET", DESCRIBE, token="bogus")) == "601"
    sb.expire_tokens()
    assert code(api.call("GET", LEADS, params={"filterType": "email", "filterValues": "t@example.com"})) == "602"
    assert sb.store.leads() == []


def test_lead_calls_count_toward_the_limits() -> None:
    with MarketoSandbox(rate_limit=(3, 60.0), daily_quota=100) as sb:
        api = Api(sb)
        answers = [code(api.sync([{"email": f"r{i}@example.com"}])) for i in range(4)]
        assert answers == [None, None, None, "606"]
        assert sb.limits.daily_used == 4  # the 606 refusal is charged too (not a starred code, §3a)
        assert code(api.call("GET", DESCRIBE)) == "606"
    with MarketoSandbox(daily_quota=2) as sb:
        api = Api(sb)
        assert code(api.call("GET", DESCRIBE)) is None and code(api.get(filterType="email", filterValues="x")) is None
        assert code(api.sync([{"email": "late@example.com"}])) == "607"
        assert sb.store.leads() == []


def test_faults_apply_to_lead_calls(api: Api, sb: MarketoSandbox) -> None:
    sb.faults.inject("611", path_contains="/leads")
    assert code(api.sync([{"email": "f@example.com"}])) == "611"
    sb.faults.inject("timeout_after_apply", path_contains="/leads.json")
    with pytest.raises(requests.ConnectionError):
        api.sync([{"email": "late@example.com"}])
    assert [lead["email"] for lead in sb.store.leads()] == ["late@example.com"]


def test_stats_count_lead_calls_and_outcomes(api: Api, sb: MarketoSandbox) -> None:
    api.sync([{"email": "s1@example.com"}, {"email": "s2@example.com"}])
    api.sync([{"email": "s1@example.com"}, {"email": "s3@example.com", "nope": 1}])
    api.get(filterType="email", filterValues="s1@example.com")
    api.call("GET", DESCRIBE)
    snap = sb.stats.snapshot()
    assert (snap["leads_created"], snap["leads_updated"], snap["leads_skipped"]) == (2, 1, 1)
    assert snap["by_object"]["leads"] == {"sync_calls": 2, "records_created": 2, "records_updated": 1,
                                          "records_skipped": 1}
    assert snap["sync_calls"] == 2 and snap["query_calls"] == 1 and snap["describe_calls"] == 1
    assert snap["skipped_by_code"] == {"1006": 1}


# -- the official spec (swagger 2.0, AdobeDocs/marketo-apis static/swagger-mapi.json) ------------------------

@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text())


def check(spec: dict[str, Any], definition: str, instance: Any) -> None:
    schema = {"$ref": f"#/definitions/{definition}", "definitions": spec["definitions"]}
    jsonschema.Draft4Validator(schema).validate(instance)


def test_requests_and_responses_validate_against_the_spec(api: Api, spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert paths[LEADS]["post"]["operationId"] == "syncLeadUsingPOST"
    assert paths[LEADS]["get"]["operationId"] == "getLeadsByFilterUsingGET"
    assert paths[DESCRIBE]["get"]["responses"]["200"]["schema"]["$ref"].endswith("/ResponseOfLeadAttribute")
    assert paths[DESCRIBE2]["get"]["responses"]["200"]["schema"]["$ref"].endswith("/ResponseOfLeadAttribute2")
    request = {"action": "createOrUpdate", "lookupField": "email", "asyncProcessing": False,
               "input": [{"email": "v@example.com", "unsubscribed": False}, {"email": "w@example.com", "bad": 1}]}
    check(spec, "SyncLeadRequest", request)
    synced = api.call("POST", LEADS, json=request)
    check(spec, "ResponseOfLead", synced)
    check(spec, "ResponseOfLead", api.sync([{"email": "v@example.com"}], action="createOnly"))
    check(spec, "ResponseOfLead", api.get(filterType="email", filterValues="v@example.com", fields="email,phone"))
    check(spec, "ResponseOfLead", api.sync([{"email": "x@example.com"}] * 301))  # a response-level error
    check(spec, "ResponseOfLeadAttribute", api.call("GET", DESCRIBE))
    check(spec, "ResponseOfLeadAttribute2", api.call("GET", DESCRIBE2))
