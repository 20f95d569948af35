"""The Visma.net ERP sandbox through real HTTP: Visma Connect tokens, the ERP list/reference endpoints,
rate limits, faults and paging hazards, and deterministic data."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.visma import VismaSandbox
from sandbox.visma.query import ListFilter

CUSTOMERS, SUPPLIERS, MAX_PAGE = 120, 40, 50
READ = "vismanet_erp_service_api:read"
OFFSET_STAMP = re.compile(r"[+-]\d{2}:\d{2}$")


@pytest.fixture(scope="module")
def sb() -> Iterator[VismaSandbox]:
    with VismaSandbox(seed=7, customers=CUSTOMERS, suppliers=SUPPLIERS, max_page_size=MAX_PAGE) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def _no_faults(sb: VismaSandbox) -> Iterator[None]:
    sb.faults.clear()
    yield
    sb.faults.clear()


def token_response(sb: VismaSandbox, **overrides: str) -> requests.Response:
    form = {"grant_type": "client_credentials", "client_id": sb.credentials["client_id"],
            "client_secret": sb.credentials["client_secret"], "scope": READ,
            "tenant_id": sb.credentials["tenant_id"], **overrides}
    return requests.post(sb.token_url, data=form, timeout=5)


def token(sb: VismaSandbox, **overrides: str) -> str:
    response = token_response(sb, **overrides)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def call(sb: VismaSandbox, path: str, bearer: str | None = None, headers: dict[str, str] | None = None,
         timeout: float = 5, **params: Any) -> requests.Response:
    auth = {"Authorization": f"Bearer {bearer or token(sb)}"}
    return requests.get(f"{sb.url}{path}", params=params, headers={**auth, **(headers or {})}, timeout=timeout)


def body(sb: VismaSandbox, path: str, **params: Any) -> Any:
    response = call(sb, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def walk(sb: VismaSandbox, path: str, page_size: int, **params: Any) -> list[list[dict[str, Any]]]:
    """Every page until an empty one."""
    bearer = token(sb)
    pages: list[list[dict[str, Any]]] = []
    for number in range(1, 1000):
        page = call(sb, path, bearer, pageNumber=number, pageSize=page_size, **params).json()
        if not page:
            return pages
        pages.append(page)
    raise AssertionError("paging never ended")


def instant(stamp: str) -> datetime:
    """A served stamp (naive = UTC, or with an offset) as an aware UTC datetime."""
    parsed = datetime.fromisoformat(stamp)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def filter_value(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def rowversion(stamp: str) -> int:
    return int.from_bytes(base64.b64decode(stamp), "big")


# -- data -------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_records_and_another_seed_other_ones() -> None:
    first, again, other = (VismaSandbox(seed=s, customers=30, suppliers=10) for s in (5, 5, 6))
    for entity in ("customer", "supplier"):
        assert json.dumps(first.store.records(entity)) == json.dumps(again.store.records(entity))
        assert [r["name"] for r in first.store.records(entity)] != [r["name"] for r in other.store.records(entity)]
    assert first.credentials == again.credentials != other.credentials


def test_records_follow_the_reference_dtos(sb: VismaSandbox) -> None:
    customers, suppliers = sb.store.records("customer"), sb.store.records("supplier")
    assert len(customers) == CUSTOMERS and len(suppliers) == SUPPLIERS
    assert [c["internalId"] for c in customers] == sorted(c["internalId"] for c in customers)
    assert {c["customerClass"]["id"] for c in customers} <= {"DOM", "EXP", "EU", "KEY", "PUB"}
    assert {s["supplierClass"]["id"] for s in suppliers} <= {"TRANSP", "RAW", "SERV", "IT", "ADM"}
    assert {c["status"] for c in customers} <= {"Active", "OnHold", "CreditHold", "Inactive"}
    assert {s["status"] for s in suppliers} <= {"Active", "OnHold", "HoldPayments", "Inactive"}
    for record in customers + suppliers:
        assert isinstance(record["internalId"], int) and isinstance(record["number"], str)
        assert 0 < len(record["name"]) <= 255 and record["name"] == record["name"].strip()
        assert record["mainAddress"]["country"]["id"] in {"NO", "SE", "DK", "FI", "DE", "GB"}
        assert record["currencyId"] in {"NOK", "SEK", "DKK", "EUR"}
        email = record["mainContact"]["email"].strip().lower()
        assert email.isascii() and re.fullmatch(r"[a-z0-9.\-]+@[a-z0-9\-]+\.example", email), email
        assert re.fullmatch(r"\+\d{2,3}( \d+)+", record["mainContact"]["phone1"])
        assert isinstance(record["numberOfEmployees"], int)
        assert rowversion(record["timeStamp"]) > 0
        assert instant(record["lastModifiedDateTime"]) < datetime.now(UTC) - timedelta(days=1)
    assert all("createdDateTime" in c for c in customers) and not any("createdDateTime" in s for s in suppliers)
    assert {"paymentMethod", "supplierPaymentMethodDetails", "remitAddress"} <= suppliers[0].keys()
    assert {"invoiceAddress", "attributes", "creditLimit", "creditVerification"} <= customers[0].keys()


def test_both_timestamp_shapes_occur_even_in_small_datasets() -> None:
    small = VismaSandbox(seed=99, customers=20, suppliers=20)
    for entity in ("customer", "supplier"):
        stamps = [r["lastModifiedDateTime"] for r in small.store.records(entity)]
        with_offset = [s for s in stamps if OFFSET_STAMP.search(s)]
        assert 0 < len(with_offset) < len(stamps)
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,3})?([+-]\d\d:\d\d)?", s) for s in stamps)


def test_a_hundred_thousand_records_are_created_quickly() -> None:
    started = time.perf_counter()
    big = VismaSandbox(seed=1, customers=100_000, suppliers=0)
    assert time.perf_counter() - started < 10
    total, items = big.store.page("customer", ListFilter(), (99_990, 100_010))  # generated on demand
    assert total == 100_000 and [i["internalId"] for i in items] == list(range(109_991, 110_001))


# -- Visma Connect ---------------------------------------------------------------------------------------
def test_token_endpoint_issues_a_bearer_token(sb: VismaSandbox) -> None:
    response = token_response(sb)
    data = response.json()
    assert response.status_code == 200
    assert data["token_type"] == "Bearer" and data["expires_in"] == 3600 and data["scope"] == READ
    assert len(data["access_token"]) > 40 and data["access_token"] != token(sb)


@pytest.mark.parametrize(("override", "error"), [
    ({"client_secret": "wrong"}, "invalid_client"),
    ({"client_id": "isv_someone_else"}, "invalid_client"),
    ({"scope": "vismanet_erp_service_api:write"}, "invalid_scope"),
    ({"scope": ""}, "invalid_scope"),
    ({"grant_type": "password"}, "unsupported_grant_type"),
    ({"tenant_id": "00000000-0000-4000-8000-000000000000"}, "invalid_tenant"),
])
def test_token_errors_are_oauth_json(sb: VismaSandbox, override: dict[str, str], error: str) -> None:
    response = token_response(sb, **override)
    assert response.status_code == 400
    assert response.json()["error"] == error


def test_customer_tenant_gets_a_token_but_no_erp_access(sb: VismaSandbox) -> None:
    customer_token = token(sb, tenant_id=sb.customer_tenant_id)
    response = call(sb, "/v1/customer", customer_token)
    assert response.status_code == 401 and response.json()["message"]
    assert call(sb, "/v1/customer").status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"}])
def test_erp_calls_need_a_valid_bearer_token(sb: VismaSandbox, headers: dict[str, str]) -> None:
    response = requests.get(f"{sb.url}/v1/customer", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json() == {"message": "Authorization has been denied for this request."}


def test_expired_tokens_are_refused() -> None:
    with VismaSandbox(seed=2, customers=5, suppliers=1) as own:
        bearer = token(own)
        assert call(own, "/v1/customer", bearer).status_code == 200
        own.expire_tokens()
        response = call(own, "/v1/customer", bearer)
        assert response.status_code == 401 and "denied" in response.json()["message"]
        assert call(own, "/v1/customer", token(own)).status_code == 200


def test_short_token_ttl_expires_by_itself() -> None:
    with VismaSandbox(seed=2, customers=5, suppliers=1, token_ttl=1) as own:
        bearer = token(own)
        assert call(own, "/v1/supplier", bearer).status_code == 200
        time.sleep(1.1)
        assert call(own, "/v1/supplier", bearer).status_code == 401


def test_company_header_must_match_when_sent(sb: VismaSandbox) -> None:
    wrong = call(sb, "/v1/customer", headers={"ipp-company-id": "999"})
    assert wrong.status_code == 400
    fault = wrong.json()
    assert fault["ExceptionType"] == "IPPException" and fault["ExceptionFaultCode"] == "12002"
    assert fault["ExceptionMessage"] == "Invalid parameter exception: ipp-company-id"
    assert fault["ExceptionMessageID"].startswith("12002_")
    assert call(sb, "/v1/customer", headers={"ipp-company-id": sb.company_id}).status_code == 200
    assert call(sb, "/v1/customer").status_code == 200


# -- paging ---------------------------------------------------------------------------------------------
def test_list_is_a_bare_array_with_metadata_on_every_item(sb: VismaSandbox) -> None:
    page = body(sb, "/v1/supplier", pageNumber=1, pageSize=7)
    assert isinstance(page, list) and len(page) == 7
    assert all(item["metadata"] == {"totalCount": SUPPLIERS, "maxPageSize": MAX_PAGE} for item in page)


def test_oversized_page_size_is_capped_silently_and_pages_cover_everything(sb: VismaSandbox) -> None:
    pages = walk(sb, "/v1/customer", page_size=1000)
    assert [len(p) for p in pages] == [50, 50, 20]
    served = [{k: v for k, v in item.items() if k != "metadata"} for p in pages for item in p]
    assert served == sb.store.records("customer")


def test_default_page_size_and_empty_page_past_the_end(sb: VismaSandbox) -> None:
    assert len(body(sb, "/v1/customer")) == MAX_PAGE  # default 100, capped at 50
    assert body(sb, "/v1/supplier", pageNumber=99, pageSize=10) == []


@pytest.mark.parametrize("params", [{"pageNumber": "0"}, {"pageSize": "-1"}, {"pageNumber": "two"}])
def test_invalid_paging_values_are_rejected(sb: VismaSandbox, params: dict[str, Any]) -> None:
    response = call(sb, "/v1/customer", **params)
    assert response.status_code == 400 and response.json()["message"]


# -- filters -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("condition", [">", ">=", "<", "<="])
def test_last_modified_filter_honours_each_condition(sb: VismaSandbox, condition: str) -> None:
    records = sb.store.records("supplier")
    pivot = sorted(instant(r["lastModifiedDateTime"]) for r in records)[len(records) // 2]
    compare = {">": pivot.__lt__, ">=": pivot.__le__, "<": pivot.__gt__, "<=": pivot.__ge__}[condition]
    expected = [r["internalId"] for r in records if compare(instant(r["lastModifiedDateTime"]))]
    page = body(sb, "/v1/supplier", pageSize=MAX_PAGE, lastModifiedDateTime=filter_value(pivot),
                lastModifiedDateTimeCondition=condition)
    assert [r["internalId"] for r in page] == expected
    assert page[0]["metadata"]["totalCount"] == len(expected)
    assert 0 < len(expected) < len(records)


@pytest.mark.parametrize("value", ["2024-01-01", "2024-01-01 00:00:00", "2024-01-01 00:00:00.000",
                                   "2024-01-01T00:00:00", "2024-01-01T00:00:00.0"])
def test_every_documented_date_format_is_accepted(sb: VismaSandbox, value: str) -> None:
    expected = sum(instant(r["lastModifiedDateTime"]) >= datetime(2024, 1, 1, tzinfo=UTC)
                   for r in sb.store.records("supplier"))
    page = body(sb, "/v1/supplier", pageSize=MAX_PAGE, lastModifiedDateTime=value, lastModifiedDateTimeCondition=">=")
    assert len(page) == expected


@pytest.mark.parametrize("params", [
    {"lastModifiedDateTime": "2024-01-01"},
    {"lastModifiedDateTimeCondition": ">="},
    {"lastModifiedDateTime": "2024-01-01T00:00:00Z", "lastModifiedDateTimeCondition": ">="},
    {"lastModifiedDateTime": "2024-01-01T00:00:00+01:00", "lastModifiedDateTimeCondition": ">="},
    {"lastModifiedDateTime": "01.02.2024", "lastModifiedDateTimeCondition": ">="},
    {"lastModifiedDateTime": "2024-01-01", "lastModifiedDateTimeCondition": "=="},
    {"status": "Sleeping"},
])
def test_invalid_filters_are_rejected_with_a_message(sb: VismaSandbox, params: dict[str, Any]) -> None:
    response = call(sb, "/v1/customer", **params)
    assert response.status_code == 400 and response.json()["message"]


def test_field_filters_and_unknown_parameters(sb: VismaSandbox) -> None:
    records = sb.store.records("customer")
    target = records[3]
    assert [r["internalId"] for r in body(sb, "/v1/customer", corporateId=target["corporateId"])] == \
        [r["internalId"] for r in records if r["corporateId"] == target["corporateId"]]
    word = target["name"].split()[0].lower()
    by_name = body(sb, "/v1/customer", pageSize=MAX_PAGE, name=word)
    assert by_name and all(word in r["name"].lower() for r in by_name)
    on_hold = body(sb, "/v1/customer", pageSize=MAX_PAGE, status="OnHold")
    assert [r["internalId"] for r in on_hold] == [r["internalId"] for r in records if r["status"] == "OnHold"]
    assert len(body(sb, "/v1/customer", pageSize=5, lastModifiedDatetime="2099-01-01")) == 5  # misspelt: ignored


def test_created_filter_applies_to_customers_only(sb: VismaSandbox) -> None:
    customers = body(sb, "/v1/customer", pageSize=MAX_PAGE, createdDateTime="2099-01-01", createdDateTimeCondition=">")
    suppliers = body(sb, "/v1/supplier", pageSize=MAX_PAGE, createdDateTime="2099-01-01", createdDateTimeCondition=">")
    assert customers == [] and len(suppliers) == SUPPLIERS


# -- changes -------------------------------------------------------------------------------------------
def test_edits_change_mapped_fields_and_enter_a_delta_window() -> None:
    with VismaSandbox(seed=4, customers=60, suppliers=30) as own:
        before = {e: {r["internalId"]: r for r in own.store.records(e)} for e in ("customer", "supplier")}
        since = filter_value(datetime.now(UTC) - timedelta(seconds=1))
        edited = own.store.edit_random(12, rng_seed=3)
        assert len(set(edited)) == 12 and {e for e, _ in edited} == {"customer", "supplier"}
        for entity in ("customer", "supplier"):
            window = body(own, f"/v1/{entity}", pageSize=100, lastModifiedDateTime=since,
                          lastModifiedDateTimeCondition=">=")
            assert sorted(r["internalId"] for r in window) == sorted(i for e, i in edited if e == entity)
            for record in window:
                old = before[entity][record["internalId"]]
                assert rowversion(record["timeStamp"]) > rowversion(old["timeStamp"])
                mapped = ("name", "status", "customerClass", "supplierClass", "creditTerms", "mainAddress",
                          "mainContact", "numberOfEmployees")
                assert any(record.get(f) != old.get(f) for f in mapped)
        assert own.store.edit_random(3, rng_seed=3, entity="supplier")[0][0] == "supplier"


def test_insert_update_and_raw_records() -> None:
    with VismaSandbox(seed=4, customers=10, suppliers=2) as own:
        new_id = own.store.insert("customer", name="Polarlys Ny AS", mainAddress={"city": "Harstad"})
        inserted = own.store.records("customer")[-1]
        assert inserted["internalId"] == new_id and inserted["name"] == "Polarlys Ny AS"
        assert inserted["mainAddress"]["city"] == "Harstad" and inserted["mainAddress"]["country"]["id"]
        first = own.store.records("customer")[0]
        own.store.update("customer", first["internalId"], status="Inactive", mainContact={"phone1": "+47 99 99 99 99"})
        updated = own.store.records("customer")[0]
        assert updated["status"] == "Inactive" and updated["mainContact"]["phone1"] == "+47 99 99 99 99"
        assert updated["mainContact"]["email"] == first["mainContact"]["email"]
        assert rowversion(updated["timeStamp"]) > rowversion(first["timeStamp"])
        own.store.put_raw("customer", {"internalId": 10003, "number": None, "name": 42})
        own.store.put_raw("customer", {"internalId": "x", "name": "no int id"})
        served = body(own, "/v1/customer", pageSize=100)
        assert served[2] == {"internalId": 10003, "number": None, "name": 42,
                             "metadata": {"totalCount": 12, "maxPageSize": 1000}}
        assert served[-1]["internalId"] == "x" and len(served) == 12


def test_clock_skew_moves_the_sandbox_clock() -> None:
    with VismaSandbox(seed=4, customers=5, suppliers=0, clock_skew_seconds=-7200) as own:
        own.store.edit_random(1, rng_seed=1)
        latest = max(instant(r["lastModifiedDateTime"]) for r in own.store.records("customer"))
        assert abs((datetime.now(UTC) - timedelta(hours=2) - latest).total_seconds()) < 60
        own.set_clock_skew(0)
        own.store.edit_random(1, rng_seed=2)
        latest = max(instant(r["lastModifiedDateTime"]) for r in own.store.records("customer"))
        assert abs((datetime.now(UTC) - latest).total_seconds()) < 60


# -- rate limits ------------------------------------------------------------------------------------
def test_rate_limit_headers_and_429_with_retry_after() -> None:
    with VismaSandbox(seed=1, customers=3, suppliers=0, rate_limit=(3, 60)) as own:
        bearer = token(own)
        remaining = []
        for _ in range(3):
            response = call(own, "/v1/customer", bearer)
            assert response.status_code == 200
            assert response.headers["X-RateLimit-Limit"] == "3"
            assert response.headers["X-RateLimit-Policy"] == "4-fixed-window"
            assert 0 < int(response.headers["X-RateLimit-Reset"]) <= 60
            remaining.append(int(response.headers["X-RateLimit-Remaining"]))
        assert remaining == [2, 1, 0]
        refused = call(own, "/v1/customer", bearer)
        assert refused.status_code == 429
        retry_after = int(refused.headers["Retry-After"])
        assert 0 < retry_after <= 60
        assert refused.json() == {"message": f"Rate limit is exceeded. Try again in {retry_after} seconds."}
        assert own.stats.snapshot()["rate_limited"] == 1


def test_unlimited_sandbox_still_sends_rate_limit_headers(sb: VismaSandbox) -> None:
    headers = call(sb, "/v1/customer").headers
    assert int(headers["X-RateLimit-Limit"]) >= 1_000_000 and int(headers["X-RateLimit-Remaining"]) > 0


# -- faults ---------------------------------------------------------------------------------------------
def test_fail_next_in_each_shape(sb: VismaSandbox) -> None:
    bearer = token(sb)
    sb.faults.fail_next(1, status=503, shape="message")
    sb.faults.fail_next(1, status=500, shape="ipp")
    sb.faults.fail_next(1, status=502, shape="text")
    message, ipp, text = (call(sb, "/v1/customer", bearer) for _ in range(3))
    assert message.status_code == 503 and message.json()["message"]
    assert ipp.status_code == 500 and ipp.json()["ExceptionType"] == "IPPException"
    assert text.status_code == 502 and text.headers["Content-Type"].startswith("text/plain") and text.text
    assert call(sb, "/v1/customer", bearer).status_code == 200


def test_faults_can_target_a_path(sb: VismaSandbox) -> None:
    bearer = token(sb)
    before = sb.stats.snapshot()
    sb.faults.fail_next(1, status=404, path_contains="/v1/supplier")
    assert call(sb, "/v1/customer", bearer).status_code == 200
    assert call(sb, "/v1/supplier", bearer).status_code == 404
    assert call(sb, "/v1/supplier", bearer).status_code == 200
    after = sb.stats.snapshot()
    assert after["faults_served"] == before["faults_served"] + 1
    assert after["by_path"]["/v1/supplier"] == before["by_path"].get("/v1/supplier", 0) + 2


def test_throttle_next_answers_429_with_retry_after(sb: VismaSandbox) -> None:
    sb.faults.throttle_next(2, retry_after=7)
    bearer = token(sb)
    for _ in range(2):
        response = call(sb, "/v1/customer", bearer)
        assert response.status_code == 429 and response.headers["Retry-After"] == "7"
        assert "X-RateLimit-Remaining" in response.headers
    assert call(sb, "/v1/customer", bearer).status_code == 200


def test_delay_next_makes_a_client_time_out(sb: VismaSandbox) -> None:
    bearer = token(sb)
    sb.faults.delay_next(1, 0.6)
    with pytest.raises(requests.ReadTimeout):
        call(sb, "/v1/customer", bearer, timeout=0.2)
    started = time.perf_counter()
    assert call(sb, "/v1/customer", bearer).status_code == 200
    assert time.perf_counter() - started < 0.5


def test_clear_disarms_everything(sb: VismaSandbox) -> None:
    sb.faults.fail_next(5)
    sb.faults.duplicate_across_pages(True)
    sb.faults.clear()
    assert call(sb, "/v1/customer").status_code == 200
    assert len(body(sb, "/v1/customer", pageNumber=2, pageSize=10)) == 10


def test_duplicate_across_pages_repeats_the_last_row_and_skips_none(sb: VismaSandbox) -> None:
    sb.faults.duplicate_across_pages(True)
    pages = walk(sb, "/v1/supplier", page_size=15)
    assert pages[1][0] == pages[0][-1] and pages[2][0] == pages[1][-1]
    ids = [r["internalId"] for p in pages for r in p]
    assert len(ids) == SUPPLIERS + 2 and len(set(ids)) == SUPPLIERS


def test_change_total_mid_poll_inserts_a_record_into_the_window() -> None:
    with VismaSandbox(seed=8, customers=30, suppliers=5) as own:
        own.faults.change_total_mid_poll(True)
        bearer = token(own)
        first = call(own, "/v1/customer", bearer, pageSize=20).json()
        second = call(own, "/v1/customer", bearer, pageNumber=2, pageSize=20).json()
        assert first[0]["metadata"]["totalCount"] == 30 and second[0]["metadata"]["totalCount"] == 31
        assert second[-1]["internalId"] == max(r["internalId"] for r in own.store.records("customer"))


def test_edit_during_paging_shifts_rows_across_pages() -> None:
    with VismaSandbox(seed=8, customers=40, suppliers=5) as own:
        records = own.store.records("customer")
        lowest = records[0]
        window: dict[str, Any] = {"lastModifiedDateTime": filter_value(instant(lowest["lastModifiedDateTime"])),
                  "lastModifiedDateTimeCondition": ">"}  # the lowest id is just outside the window
        own.faults.edit_during_paging("customer", per_page=1)
        bearer = token(own)
        first = call(own, "/v1/customer", bearer, pageSize=5, **window).json()
        second = call(own, "/v1/customer", bearer, pageNumber=2, pageSize=5, **window).json()
        assert lowest["internalId"] not in {r["internalId"] for r in first + second}
        assert second[0]["metadata"]["totalCount"] == first[0]["metadata"]["totalCount"] + 1
        assert second[0]["internalId"] == first[-1]["internalId"]  # shifted by the row that entered before it
        own.faults.stop_editing()
        again = call(own, "/v1/customer", bearer, pageSize=5, **window).json()
        assert again[0]["internalId"] == lowest["internalId"]
        assert again[0]["metadata"]["totalCount"] == second[0]["metadata"]["totalCount"] + 1


# -- reference data and payment status ------------------------------------------------------------------
def test_reference_endpoints(sb: VismaSandbox) -> None:
    classes = body(sb, "/v1/customer/customerClass")
    assert {c["id"] for c in classes} == {"DOM", "EXP", "EU", "KEY", "PUB"}
    assert {"description", "taxZoneId", "paymentMethodId", "attributes"} <= classes[0].keys()
    supplier_classes = body(sb, "/v1/supplier/supplierClass")
    assert {c["id"] for c in supplier_classes} == {"TRANSP", "RAW", "SERV", "IT", "ADM"}
    assert {"paymentMethodDescription", "timeStamp"} <= supplier_classes[0].keys()
    methods = body(sb, "/v1/paymentmethod")
    assert {"paymentMethodId", "active", "meansOfPayment", "description", "useInAp"} <= methods[0].keys()


def _attribute_shape(attributes: Any) -> list[str]:
    """Attribute ids, checking each entry has the reference's shape {id, value, description} (strings)."""
    assert isinstance(attributes, list)
    for entry in attributes:
        assert set(entry) == {"id", "value", "description"} and all(isinstance(v, str) for v in entry.values())
    return [entry["id"] for entry in attributes]


def test_attributes_on_customers_suppliers_and_their_classes(sb: VismaSandbox) -> None:
    customers = body(sb, "/v1/customer", pageSize=MAX_PAGE)
    suppliers = body(sb, "/v1/supplier", pageSize=MAX_PAGE)
    assert all(_attribute_shape(c["attributes"]) == ["SEGMENT", "REGION"] for c in customers)
    assert all(_attribute_shape(s["attributes"]) == ["SEGMENT", "INNKJOP"] for s in suppliers)
    segments = {a["value"] for r in customers + suppliers for a in r["attributes"] if a["id"] == "SEGMENT"}
    assert segments <= {"SMB", "MID", "ENT"} and len(segments) > 1
    assert "EØS" in {a["value"] for c in customers for a in c["attributes"]}  # non-ASCII values occur
    assert "Innkjøpskategori" in {a["description"] for s in suppliers for a in s["attributes"]}
    for path in ("/v1/customer/customerClass", "/v1/supplier/supplierClass"):
        classes = body(sb, path)
        assert all(_attribute_shape(c["attributes"]) for c in classes)  # every class has at least one
    one = body(sb, f"/v1/supplier/{suppliers[0]['number']}")
    assert one["attributes"] == suppliers[0]["attributes"]


def test_some_addresses_have_second_and_third_lines(sb: VismaSandbox) -> None:
    for entity in ("customer", "supplier"):
        addresses = [r["mainAddress"] for r in sb.store.records(entity)]
        with_line2 = [a for a in addresses if a["addressLine2"]]
        assert 0.1 < len(with_line2) / len(addresses) < 0.6, entity
        assert all(a["addressLine3"] is None for a in addresses if not a["addressLine2"])  # line 3 only after 2
    assert any(r["mainAddress"]["addressLine3"] for e in ("customer", "supplier") for r in sb.store.records(e))


def test_short_reference_lists_are_whole_unless_paged(sb: VismaSandbox) -> None:
    whole = body(sb, "/v1/paymentMethod")  # paths are case-insensitive, as on ASP.NET
    assert len(whole) == 6 and all("metadata" not in m for m in whole)
    pages = walk(sb, "/v1/paymentmethod", page_size=4)
    assert [len(p) for p in pages] == [4, 2] and [m for p in pages for m in p] == whole


def test_credit_terms_come_in_the_wrapper_shape(sb: VismaSandbox) -> None:
    first = body(sb, "/v1/creditTerm", pageNumber=1, pageSize=3)
    assert set(first) == {"pageNumber", "pageSize", "totalCount", "records"}
    assert first["pageNumber"] == 1 and first["pageSize"] == 3 and len(first["records"]) == 3
    all_terms = [t for n in range(1, 4) for t in body(sb, "/v1/creditTerm", pageNumber=n, pageSize=3)["records"]]
    assert len(all_terms) == first["totalCount"] and {"10D", "14D", "30D", "14D2"} <= {t["termsId"] for t in all_terms}
    discount = next(t for t in all_terms if t["termsId"] == "14D2")
    assert discount["discountPercent"] == 2.0 and discount["discountDay"] == 14
    assert body(sb, "/v1/creditTerm", termsId="30D")["totalCount"] == 1


def test_contacts_carry_consent_flags(sb: VismaSandbox) -> None:
    numbers = [r["number"] for r in sb.store.records("customer")]
    contacts = {n: body(sb, f"/v1/customer/{n}/contact") for n in numbers[:60]}
    assert all(1 <= len(c) <= 3 for c in contacts.values())
    everyone = [c for group in contacts.values() for c in group]
    flagged = [c for c in everyone if c["doNotEmail"] or c["noMassMail"] or c["noMarketing"] or c["doNotCall"]
               or c["doNotMail"]]
    assert 0.03 < len(flagged) / len(everyone) < 0.35
    assert contacts[numbers[0]] == sb.store.contacts(numbers[0])
    assert {"contactId", "displayName", "email", "lastModifiedDateTime", "timeStamp"} <= everyone[0].keys()
    missing = call(sb, "/v1/customer/NOPE/contact")
    assert missing.status_code == 404 and missing.json()["message"]


def test_balances_are_paged_with_metadata(sb: VismaSandbox) -> None:
    pages = walk(sb, "/v1/customer/balance", page_size=MAX_PAGE)
    items = [i for p in pages for i in p]
    assert len(items) == CUSTOMERS and items[0]["metadata"]["totalCount"] == CUSTOMERS
    assert {"customer", "balance", "totalOrder", "totalSaleYear", "lastModified"} <= items[0].keys()
    assert {"internalId", "number", "name"} == set(items[0]["customer"])
    assert [{k: v for k, v in i.items() if k != "metadata"} for i in items] == sb.store.balances()
    recent = body(sb, "/v1/customer/balance", pageSize=MAX_PAGE, lastModifiedDateTime="2020-01-01",
                  lastModifiedDateTimeCondition="<")
    assert all(instant(i["lastModified"]) < datetime(2020, 1, 1, tzinfo=UTC) for i in recent)


def test_invoices_show_overdue_customers_and_dunning() -> None:
    with VismaSandbox(seed=3, customers=300, suppliers=0) as own:
        invoices = [i for p in walk(own, "/v1/customerinvoice", page_size=1000) for i in p]
        assert invoices and invoices[0]["metadata"]["totalCount"] == len(invoices)
        today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00")
        overdue = [i for i in invoices if i["status"] == "Open" and i["balance"] > 0 and i["documentDueDate"] < today]
        share = len({i["customer"]["number"] for i in overdue}) / 300
        assert 0.1 < share < 0.3
        assert {1, 2, 3} <= {i["dunningLetterLevel"] for i in overdue}
        assert all(i["dunningLetterLevel"] == 0 for i in invoices if i not in overdue)
        filtered = body(own, "/v1/customerinvoice", pageSize=1000, status="Open", documentDueDate=today[:10],
                        documentDueDateCondition="<")
        assert sorted(i["referenceNumber"] for i in filtered) == sorted(i["referenceNumber"] for i in overdue)
        number = overdue[0]["customer"]["number"]
        mine = body(own, "/v1/customerinvoice", pageSize=1000, customer=number)
        assert mine and all(i["customer"]["number"] == number for i in mine)
        assert mine[0]["customer"]["name"] == own.store.find("customer", number)["name"]


def test_shuffle_ties_orders_by_stamp_with_ties_in_a_new_order_per_request() -> None:
    with VismaSandbox(seed=9, customers=40, suppliers=2) as own:
        records = own.store.records("customer")
        shared = min(r["lastModifiedDateTime"] for r in records)
        for raw in records[:30]:  # 30 customers share one stamp; 10 keep their own
            own.store.put_raw("customer", {**raw, "lastModifiedDateTime": shared})
        own.faults.shuffle_ties("customer")
        bearer = token(own)
        reads = [[r["internalId"] for r in call(own, "/v1/customer", bearer, pageSize=40).json()] for _ in range(3)]
        served = call(own, "/v1/customer", bearer, pageSize=40).json()
        assert [r["lastModifiedDateTime"] for r in served] == sorted(r["lastModifiedDateTime"] for r in served)
        assert all(sorted(ids) == sorted(reads[0]) for ids in reads)  # the same rows,
        assert len({tuple(ids[:30]) for ids in reads}) == 3  # the ties in another order each time
        own.faults.clear()
        assert [r["internalId"] for r in call(own, "/v1/customer", bearer, pageSize=40).json()] == sorted(reads[0])
