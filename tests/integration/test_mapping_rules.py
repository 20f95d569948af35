"""Issue #19 end to end with the shipped default mapping: Visma's address lines 1-3 arrive joined in
billingStreet and the SEGMENT attribute in vismaSegment (non-ASCII values included), and edits to attribute
values in Visma flow through on the next cycle. Expected values are computed here from the Visma
sandbox's records, not by the connector's mapping."""

from __future__ import annotations

from typing import Any

import pytest

from localrun.environment import LocalEnvironment

pytestmark = pytest.mark.integration

CUSTOMERS, SUPPLIERS = 60, 20
NORDIC_SEGMENT = "Småbedrift – Ærø/Ålesund é 🚀"


@pytest.fixture(scope="module")
def env(local_stack):
    return local_stack(seed=19, customers=CUSTOMERS, suppliers=SUPPLIERS)


def _key(env: LocalEnvironment, entity: str, internal_id: int) -> str:
    return f"visma-{env.visma.credentials['company_id']}-{entity}-{internal_id}"


def _street(record: dict[str, Any]) -> str | None:
    address = record.get("mainAddress") or {}
    lines = [str(address.get(f"addressLine{i}") or "").strip() for i in (1, 2, 3)]
    return ", ".join(line for line in lines if line) or None


def _segment(record: dict[str, Any]) -> str | None:
    return next((a["value"] for a in record.get("attributes") or [] if a["id"] == "SEGMENT"), None)


def _companies(env: LocalEnvironment) -> dict[str, dict[str, Any]]:
    return {c["externalCompanyId"]: c for c in env.marketo.store.companies()}


def _assert_marketo_matches_visma(env: LocalEnvironment) -> None:
    companies = _companies(env)
    for entity in ("customer", "supplier"):
        for record in env.visma.store.records(entity):
            company = companies[_key(env, entity, record["internalId"])]
            assert company["billingStreet"] == _street(record), record["mainAddress"]
            assert company["vismaSegment"] == _segment(record), record["attributes"]


@pytest.fixture(scope="module")
def cycles(env):
    customers = env.visma.store.records("customer")
    first_customer, second_customer = customers[0]["internalId"], customers[1]["internalId"]
    # Before the first load: one customer with a non-ASCII segment and all three address lines in use.
    env.visma.store.update("customer", first_customer,
                           attributes=[{"id": "SEGMENT", "value": NORDIC_SEGMENT, "description": "Kundesegment"}],
                           mainAddress={"addressLine2": "c/o Café Ørn", "addressLine3": "Bygg Æ, 3. etasje"})
    first = env.cycle("full load")
    first_check = env.verify()
    first_companies = _companies(env)
    supplier = env.visma.store.records("supplier")[0]
    edits = [
        ("customer", first_customer, {"attributes": [{"id": "SEGMENT", "value": "Offentlig sektor – Tromsø",
                                                      "description": "Kundesegment"}]}),
        ("customer", second_customer, {"attributes": [{"id": "REGION", "value": "Nord-Norge",
                                                       "description": "Region"}]}),  # SEGMENT removed
        ("supplier", supplier["internalId"], {"attributes": [{"id": "SEGMENT", "value": "Kritisk 🔥",
                                                              "description": "Supplier segment"}],
                                              "mainAddress": {"addressLine2": None, "addressLine3": "Kai 4"}}),
    ]
    for entity, internal_id, changes in edits:
        env.visma.store.update(entity, internal_id, **changes)
    second = env.cycle("attribute edits")
    return {"first": first, "first_check": first_check, "first_companies": first_companies, "second": second,
            "second_check": env.verify(), "edits": edits, "first_customer": first_customer,
            "second_customer": second_customer, "supplier": supplier["internalId"]}


def test_full_load_writes_joined_streets_and_segment_attributes(env, cycles):
    assert cycles["first"].created == CUSTOMERS + SUPPLIERS and cycles["first"].skipped == 0
    assert cycles["first_check"].ok, cycles["first_check"].summary()
    companies = cycles["first_companies"]
    first = companies[_key(env, "customer", cycles["first_customer"])]
    assert first["vismaSegment"] == NORDIC_SEGMENT
    assert first["billingStreet"].endswith(", c/o Café Ørn, Bygg Æ, 3. etasje")
    streets = [c["billingStreet"] for c in companies.values()]
    assert sum(s.count(", ") >= 1 for s in streets) >= 5  # the sandbox's own second and third lines arrive too
    segments = {c["vismaSegment"] for c in companies.values()}
    assert {"SMB", NORDIC_SEGMENT} <= segments and None not in segments  # suppliers carry SEGMENT as well


def test_attribute_edits_in_visma_flow_through_on_the_next_cycle(env, cycles):
    second = cycles["second"]
    assert second.messages_sent == len(cycles["edits"]) and second.updated == len(cycles["edits"])
    assert cycles["second_check"].ok, cycles["second_check"].summary()
    companies = _companies(env)
    assert companies[_key(env, "customer", cycles["first_customer"])]["vismaSegment"] == "Offentlig sektor – Tromsø"
    assert companies[_key(env, "customer", cycles["second_customer"])]["vismaSegment"] is None
    supplier = companies[_key(env, "supplier", cycles["supplier"])]
    assert supplier["vismaSegment"] == "Kritisk 🔥" and supplier["billingStreet"].endswith(", Kai 4")
    _assert_marketo_matches_visma(env)


def test_a_cycle_without_edits_writes_nothing(env, cycles):
    third = env.cycle("no-op")
    assert third.messages_sent == 0 and third.marketo_calls == 0
