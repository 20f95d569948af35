"""Contacts as records of their own in the Visma sandbox, through real HTTP: ``GET /v1/contact`` (paged,
delta-filterable), ``GET /v1/contact/{contactId}``, and edits visible on every contact endpoint."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from sandbox.visma import VismaSandbox
from sandbox.visma.query import ListFilter

CUSTOMERS, MAX_PAGE = 80, 50
CONTACT_DTO = {"contactId", "displayName", "active", "title", "firstName", "lastName", "position", "businessAccount",
               "businessAccountType", "email", "phone1", "doNotCall", "doNotFax", "doNotEmail", "doNotMail",
               "noMassMail", "noMarketing", "lastModifiedDateTime", "timeStamp"}


@pytest.fixture(scope="module")
def sb() -> Iterator[VismaSandbox]:
    with VismaSandbox(seed=7, customers=CUSTOMERS, suppliers=10, max_page_size=MAX_PAGE) as sandbox:
        yield sandbox


@pytest.fixture
def own() -> Iterator[VismaSandbox]:
    """A sandbox of the test's own, for tests that change data."""
    with VismaSandbox(seed=4, customers=40, suppliers=5) as sandbox:
        yield sandbox


def token(sandbox: VismaSandbox) -> str:
    creds = sandbox.credentials
    response = requests.post(sandbox.token_url, timeout=5, data={
        "grant_type": "client_credentials", "scope": "vismanet_erp_service_api:read", "client_id": creds["client_id"],
        "client_secret": creds["client_secret"], "tenant_id": creds["tenant_id"]})
    response.raise_for_status()
    return str(response.json()["access_token"])


def call(sandbox: VismaSandbox, path: str, bearer: str | None = None, **params: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {bearer or token(sandbox)}"}
    return requests.get(sandbox.url + path, params=params, headers=headers, timeout=10)


def body(sandbox: VismaSandbox, path: str, **params: Any) -> Any:
    response = call(sandbox, path, **params)
    assert response.status_code == 200, response.text
    return response.json()


def walk(sandbox: VismaSandbox, path: str, page_size: int, **params: Any) -> list[list[dict[str, Any]]]:
    """The pages of a list, up to the first empty one."""
    bearer, pages = token(sandbox), []
    while page := call(sandbox, path, bearer, pageNumber=len(pages) + 1, pageSize=page_size, **params).json():
        pages.append(page)
    return pages


def instant(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp)
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def filter_value(moment: datetime) -> str:
    """A filter value with millisecond precision, in UTC without a zone suffix."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:23]


def rowversion(stamp: str) -> int:
    return int.from_bytes(base64.b64decode(stamp), "big")


def served(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "metadata"} for item in items]


def every_contact(sandbox: VismaSandbox, **params: Any) -> list[dict[str, Any]]:
    return [item for page in walk(sandbox, "/v1/contact", page_size=1000, **params) for item in page]


def all_rowversions(sandbox: VismaSandbox) -> list[int]:
    records = sandbox.store.records("customer") + sandbox.store.records("supplier") + sandbox.store.all_contacts()
    return [rowversion(r["timeStamp"]) for r in records]


# -- untouched data ------------------------------------------------------------------------------------
def test_untouched_contacts_are_the_generators(sb: VismaSandbox) -> None:
    generator = sb.store._gen
    listed = {c["contactId"]: c for c in served(every_contact(sb))}
    for customer in sb.store.records("customer")[:6]:
        number, internal_id = customer["number"], customer["internalId"]
        expected = generator.contacts(internal_id - 10001, internal_id, number)
        assert body(sb, f"/v1/customer/{number}/contact") == expected
        assert [listed[c["contactId"]] for c in expected] == expected
        for contact in expected:
            assert set(contact) == CONTACT_DTO
            assert contact["businessAccountType"] == "Customer" and contact["doNotFax"] is False
            assert instant(contact["lastModifiedDateTime"]) < datetime.now(UTC) - timedelta(days=1)


def test_listing_pages_through_every_contact_in_contact_id_order(sb: VismaSandbox) -> None:
    pages = walk(sb, "/v1/contact", page_size=1000)  # capped at MAX_PAGE
    items = [i for p in pages for i in p]
    total = items[0]["metadata"]["totalCount"]
    assert all(len(p) == MAX_PAGE for p in pages[:-1]) and len(items) == total
    assert CUSTOMERS < total <= 3 * CUSTOMERS
    assert all(i["metadata"] == {"totalCount": total, "maxPageSize": MAX_PAGE} for i in items)
    ids = [i["contactId"] for i in items]
    assert ids == sorted(set(ids))
    assert served(items) == sb.store.all_contacts()
    assert {i["businessAccount"] for i in items} == {c["number"] for c in sb.store.records("customer")}


# -- one contact ----------------------------------------------------------------------------------------
def test_one_contact_by_id_and_not_found(sb: VismaSandbox) -> None:
    contact = sb.store.all_contacts()[5]
    response = call(sb, f"/v1/contact/{contact['contactId']}")
    assert response.status_code == 200 and response.json() == contact
    assert response.headers["ETag"] == f'"{contact["timeStamp"]}"'
    for unknown in ("999", "abc", str(contact["contactId"] + 10_000_000)):
        missing = call(sb, f"/v1/contact/{unknown}")
        assert missing.status_code == 404 and unknown in missing.json()["message"]


def test_one_contact_before_any_listing() -> None:
    with VismaSandbox(seed=9, customers=30, suppliers=0) as fresh:
        number = fresh.store.records("customer")[17]["number"]
        expected = fresh.store._gen.contacts(17, int(number), number)[0]
        assert body(fresh, f"/v1/contact/{expected['contactId']}") == expected


# -- filters ---------------------------------------------------------------------------------------------
def test_business_account_email_active_and_display_name_filters(sb: VismaSandbox) -> None:
    contacts = sb.store.all_contacts()
    number = contacts[10]["businessAccount"]
    mine = body(sb, "/v1/contact", pageSize=MAX_PAGE, businessAccount=number)
    assert served(mine) == body(sb, f"/v1/customer/{number}/contact")
    assert mine[0]["metadata"]["totalCount"] == len(mine)
    target = contacts[3]
    by_email = body(sb, "/v1/contact", email=target["email"])
    assert [c["contactId"] for c in by_email] == [c["contactId"] for c in contacts if c["email"] == target["email"]]
    by_name = body(sb, "/v1/contact", displayName=target["displayName"])
    assert target["contactId"] in {c["contactId"] for c in by_name}
    assert all(c["displayName"] == target["displayName"] for c in by_name)
    inactive = every_contact(sb, active="false")
    assert [c["contactId"] for c in inactive] == [c["contactId"] for c in contacts if not c["active"]]
    assert 0 < len(inactive) < len(contacts)
    assert len(every_contact(sb, active="True")) == len(contacts) - len(inactive)
    assert body(sb, "/v1/contact", businessAccount="NOPE") == []
    assert len(body(sb, "/v1/contact", pageSize=7, name="zzz", status="Sleeping")) == 7  # not contact filters


@pytest.mark.parametrize("params", [{"active": "maybe"}, {"lastModifiedDateTime": "2024-01-01"},
                                    {"lastModifiedDateTime": "2024-01-01Z", "lastModifiedDateTimeCondition": ">"},
                                    {"pageNumber": "0"}])
def test_invalid_contact_filters_are_rejected(sb: VismaSandbox, params: dict[str, Any]) -> None:
    response = call(sb, "/v1/contact", **params)
    assert response.status_code == 400 and response.json()["message"]


@pytest.mark.parametrize("condition", [">", "<="])
def test_last_modified_filter_on_seeded_contacts(sb: VismaSandbox, condition: str) -> None:
    contacts = sb.store.all_contacts()
    pivot = sorted(instant(c["lastModifiedDateTime"]) for c in contacts)[len(contacts) // 3]
    holds = pivot.__lt__ if condition == ">" else pivot.__ge__
    expected = [c["contactId"] for c in contacts if holds(instant(c["lastModifiedDateTime"]))]
    window = every_contact(sb, lastModifiedDateTime=filter_value(pivot), lastModifiedDateTimeCondition=condition)
    assert [c["contactId"] for c in window] == expected and 0 < len(expected) < len(contacts)


# -- changes ---------------------------------------------------------------------------------------------
def test_delta_filter_returns_exactly_the_edited_and_inserted_contacts(own: VismaSandbox) -> None:
    before = {c["contactId"]: c for c in own.store.all_contacts()}
    highest = max(all_rowversions(own))
    since = filter_value(datetime.now(UTC) - timedelta(seconds=1))
    edited = own.store.edit_contacts(9, rng_seed=3)
    number = own.store.records("customer")[7]["number"]
    inserted = own.store.insert_contact(number, noMarketing=True)
    assert len(set(edited)) == 9 and inserted > max(before)
    window = every_contact(own, lastModifiedDateTime=since, lastModifiedDateTimeCondition=">=")
    assert [c["contactId"] for c in window] == sorted([*edited, inserted])
    assert window[0]["metadata"]["totalCount"] == 10
    aspects = ("displayName", "firstName", "lastName", "email", "title", "position", "phone1", "noMarketing",
               "noMassMail", "doNotEmail", "active")
    for contact in served(window):
        assert rowversion(contact["timeStamp"]) > highest
        assert abs((datetime.now(UTC) - instant(contact["lastModifiedDateTime"])).total_seconds()) < 60
        assert body(own, f"/v1/contact/{contact['contactId']}") == contact
        assert contact in body(own, f"/v1/customer/{contact['businessAccount']}/contact")
        old = before.get(contact["contactId"])
        if old is None:
            assert contact["businessAccount"] == number and contact["noMarketing"] is True
            assert set(contact) == CONTACT_DTO
        else:
            assert any(contact[a] != old[a] for a in aspects)
            name_changed = contact["displayName"] != old["displayName"]
            assert name_changed == (contact["email"] != old["email"])
    unchanged = [c for c in own.store.all_contacts() if c["contactId"] not in {*edited, inserted}]
    assert unchanged == [before[c["contactId"]] for c in unchanged]
    assert len(body(own, f"/v1/customer/{number}/contact")) == \
        len([c for c in before.values() if c["businessAccount"] == number]) + 1


def test_update_contact_merges_and_stamps_every_time(own: VismaSandbox) -> None:
    contact = own.store.all_contacts()[4]
    own.store.update_contact(contact["contactId"], doNotEmail=True, phone1="+47 99 99 99 99")
    first = body(own, f"/v1/contact/{contact['contactId']}")
    assert first["doNotEmail"] is True and first["phone1"] == "+47 99 99 99 99"
    assert first["email"] == contact["email"] and rowversion(first["timeStamp"]) > rowversion(contact["timeStamp"])
    own.store.update("customer", own.store.records("customer")[0]["internalId"], status="Inactive")
    own.store.update_contact(contact["contactId"], doNotEmail=False)
    second = body(own, f"/v1/contact/{contact['contactId']}")
    assert second["doNotEmail"] is False and second["phone1"] == "+47 99 99 99 99"
    assert rowversion(second["timeStamp"]) > max(rowversion(r["timeStamp"]) for r in own.store.records("customer"))
    with pytest.raises(KeyError):
        own.store.update_contact(1)
    with pytest.raises(ValueError, match="contactId"):
        own.store.update_contact(contact["contactId"], contactId=5)


def test_edits_are_deterministic_per_seed() -> None:
    results = []
    for _ in range(2):
        sandbox = VismaSandbox(seed=5, customers=20, suppliers=0)
        edited = sandbox.store.edit_contacts(6, rng_seed=11)
        results.append((edited, [{k: v for k, v in c.items() if k not in ("lastModifiedDateTime", "timeStamp")}
                                  for c in sandbox.store.all_contacts()]))
    assert results[0] == results[1]
    with pytest.raises(ValueError):
        VismaSandbox(seed=5, customers=2, suppliers=0).store.edit_contacts(100, rng_seed=1)


def test_inserted_customers_get_new_contacts_and_raw_ones_none(own: VismaSandbox) -> None:
    before = own.store.all_contacts()
    internal_id = own.store.insert("customer", name="Ny Kunde AS")
    number = own.store.record("customer", internal_id)["number"]
    new = body(own, f"/v1/customer/{number}/contact")
    assert 1 <= len(new) <= 3 and min(c["contactId"] for c in new) > max(c["contactId"] for c in before)
    assert all(rowversion(c["timeStamp"]) > max(rowversion(b["timeStamp"]) for b in before) for c in new)
    assert [c["contactId"] for c in own.store.all_contacts()] == [c["contactId"] for c in before + new]
    replaced = before[0]["businessAccount"]
    own.store.put_raw("customer", {"internalId": int(replaced), "number": replaced, "name": "raw"})
    assert body(own, f"/v1/customer/{replaced}/contact") == []
    assert call(own, f"/v1/contact/{before[0]['contactId']}").status_code == 404
    with pytest.raises(ValueError):
        own.store.insert_contact(replaced)
    with pytest.raises(KeyError):
        own.store.contacts("NOPE")


# -- faults ----------------------------------------------------------------------------------------------
def test_faults_and_auth_apply_to_the_contact_routes(sb: VismaSandbox) -> None:
    bearer = token(sb)
    sb.faults.fail_next(1, status=503, path_contains="/v1/contact")
    sb.faults.throttle_next(1, retry_after=4, path_contains="/v1/contact/")
    assert call(sb, "/v1/customer", bearer).status_code == 200
    assert call(sb, "/v1/contact", bearer).status_code == 503
    throttled = call(sb, f"/v1/contact/{sb.store.all_contacts()[0]['contactId']}", bearer)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "4"
    assert call(sb, "/v1/contact", bearer).status_code == 200
    assert call(sb, "/v1/contact", "not-a-token").status_code == 401
    sb.faults.clear()


def test_edit_during_paging_shifts_contacts_across_pages(own: VismaSandbox) -> None:
    lowest = own.store.all_contacts()[0]
    window = {"lastModifiedDateTime": filter_value(instant(lowest["lastModifiedDateTime"])),
              "lastModifiedDateTimeCondition": ">"}  # the lowest id is just outside the window
    own.faults.edit_during_paging("contact", per_page=1)
    bearer = token(own)
    first = call(own, "/v1/contact", bearer, pageSize=5, **window).json()
    second = call(own, "/v1/contact", bearer, pageNumber=2, pageSize=5, **window).json()
    assert lowest["contactId"] not in {c["contactId"] for c in first + second}
    assert second[0]["metadata"]["totalCount"] == first[0]["metadata"]["totalCount"] + 1
    assert second[0]["contactId"] == first[-1]["contactId"]  # shifted by the contact that entered before it
    own.faults.stop_editing()
    again = call(own, "/v1/contact", bearer, pageSize=5, **window).json()
    assert again[0]["contactId"] == lowest["contactId"]


# -- scale -----------------------------------------------------------------------------------------------
def test_a_hundred_thousand_customers_list_all_their_contacts() -> None:
    started = time.perf_counter()
    big = VismaSandbox(seed=1, customers=100_000, suppliers=0)
    assert time.perf_counter() - started < 10
    total, first = big.store.page("contact", ListFilter(), (0, 1000))
    total_again, last = big.store.page("contact", ListFilter(), (total - 1000, total))
    assert 150_000 < total == total_again < 250_000 and len(first) == len(last) == 1000
    assert last[-1]["businessAccount"] == "110000" and first[0]["businessAccount"] == "10001"
    assert time.perf_counter() - started < 30
