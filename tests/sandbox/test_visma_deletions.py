"""A record deleted in the Visma sandbox behaves as deleted in Visma (reference/visma.md: no deletion event or
tombstone; deletions show only as absence): gone from every list, its own GET a 404, a customer's contacts
gone with it. What a full reconcile relies on to find deletions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from sandbox.visma import VismaSandbox

READ = "vismanet_erp_service_api:read"


@pytest.fixture(scope="module")
def sb() -> Iterator[VismaSandbox]:
    with VismaSandbox(seed=11, customers=12, suppliers=4) as sandbox:
        yield sandbox


def get(sb: VismaSandbox, path: str, **params: Any) -> requests.Response:
    form = {"grant_type": "client_credentials", "scope": READ, **{k: sb.credentials[k] for k in
                                                                  ("client_id", "client_secret", "tenant_id")}}
    token = requests.post(sb.token_url, data=form, timeout=5).json()["access_token"]
    return requests.get(f"{sb.url}{path}", params=params, timeout=5,
                        headers={"Authorization": f"Bearer {token}", "ipp-company-id": sb.credentials["company_id"]})


def listed(sb: VismaSandbox, path: str) -> list[dict[str, Any]]:
    response = get(sb, path, pageSize=1000)
    assert response.status_code == 200, response.text
    return list(response.json())


def test_a_deleted_customer_is_absent_everywhere_with_its_contacts(sb: VismaSandbox) -> None:
    customer = listed(sb, "/v1/customer")[3]
    contacts = sb.store.contacts(customer["number"])
    assert contacts  # the seeded customers have contact persons
    before = len(listed(sb, "/v1/customer"))
    sb.store.delete("customer", customer["internalId"])
    after = listed(sb, "/v1/customer")
    assert len(after) == before - 1 and customer["internalId"] not in {c["internalId"] for c in after}
    assert get(sb, f"/v1/customer/{customer['number']}").status_code == 404
    contact_ids = {c["contactId"] for c in listed(sb, "/v1/contact")}
    assert not contact_ids & {c["contactId"] for c in contacts}
    # No tombstone: a changes-since read does not mention it either.
    since = get(sb, "/v1/customer", lastModifiedDateTime="2000-01-01T00:00:00",
                lastModifiedDateTimeCondition=">=", pageSize=1000).json()
    assert customer["internalId"] not in {c["internalId"] for c in since}
    assert ("customer", customer["internalId"]) in sb.store.deleted()


def test_a_deleted_supplier_is_absent_from_the_list_and_its_get_is_404(sb: VismaSandbox) -> None:
    supplier = listed(sb, "/v1/supplier")[0]
    sb.store.delete("supplier", supplier["internalId"])
    assert supplier["internalId"] not in {s["internalId"] for s in listed(sb, "/v1/supplier")}
    assert get(sb, f"/v1/supplier/{supplier['number']}").status_code == 404
