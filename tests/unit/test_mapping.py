from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ml_connector.sync.mapping import DEFAULT_MAPPING, FieldRule, get_path, map_record, payment_status

CUSTOMER = {
    "internalId": 18342, "number": "10457", "name": "  Nordlys Maskin AS ", "status": "CreditHold",
    "mainAddress": {"addressLine1": "Storgata 12", "postalCode": "0155", "city": "Oslo",
                    "country": {"id": "NO", "name": "Norway"}},
    "mainContact": {"attention": "Kari Nordmann", "email": "Post@Nordlys-Maskin.example",
                    "web": "https://nordlys.example", "phone1": "+47 22 00 00 00"},
    "customerClass": {"id": "DOM", "description": "Domestic customers"},
    "creditTerms": {"id": "14D", "description": "14 days net"},
    "currencyId": "nok", "corporateId": "987654321", "numberOfEmployees": 42,
    "lastModifiedDateTime": "2025-03-14T09:41:27.513", "timeStamp": "AAAAAAB3kXo=",
}
MODIFIED = datetime(2025, 3, 14, 9, 41, 27, 513000, tzinfo=UTC)


def test_default_mapping_of_a_customer():
    fields = map_record(DEFAULT_MAPPING, CUSTOMER, entity="customer", modified_at=MODIFIED)
    assert fields["company"] == "Nordlys Maskin AS"
    assert fields["billingCountry"] == "Norway"
    assert fields["billingCity"] == "Oslo"
    assert fields["vismaClassId"] == "DOM"
    assert fields["vismaClass"] == "Domestic customers"
    assert fields["vismaPaymentTerms"] == "14 days net"
    assert fields["vismaPaymentStatus"] == "on_hold"
    assert fields["vismaContactEmail"] == "post@nordlys-maskin.example"
    assert fields["vismaCurrency"] == "NOK"
    assert fields["vismaEntity"] == "customer"
    assert fields["vismaLastModified"] == "2025-03-14T09:41:27Z"
    assert fields["numberOfEmployees"] == 42


def test_supplier_uses_supplier_class():
    supplier = {**CUSTOMER, "status": "Active", "supplierClass": {"id": "TRANSP", "description": "Transport"}}
    del supplier["customerClass"]
    fields = map_record(DEFAULT_MAPPING, supplier, entity="supplier", modified_at=MODIFIED)
    assert fields["vismaClassId"] == "TRANSP"
    assert fields["vismaEntity"] == "supplier"
    assert fields["vismaPaymentStatus"] == "current"


def test_missing_nested_objects_map_to_none():
    bare = {"internalId": 1, "number": "1", "name": "X", "mainAddress": None}
    fields = map_record(DEFAULT_MAPPING, bare, entity="customer", modified_at=MODIFIED)
    assert fields["billingCity"] is None
    assert fields["vismaClass"] is None
    assert get_path({"a": {"b": None}}, "a.b.c") is None


def test_strings_are_trimmed_to_destination_length():
    long_name = {**CUSTOMER, "name": "Å" * 400}
    fields = map_record(DEFAULT_MAPPING, long_name, entity="customer", modified_at=MODIFIED)
    assert fields["company"] == "Å" * 255


def test_key_uses_internal_id_not_number():
    key = DEFAULT_MAPPING.key(company_id="1234", entity="customer", internal_id=18342)
    assert key == "visma-1234-customer-18342"


@pytest.mark.parametrize(("status", "expected"), [("Active", "current"), ("OnHold", "on_hold"),
                                                  ("CreditHold", "on_hold"), ("Inactive", "inactive")])
def test_payment_status_from_status(status, expected):
    assert payment_status({"status": status}) == expected


def test_rule_needs_exactly_one_origin():
    with pytest.raises(ValidationError, match="exactly one"):
        FieldRule(target="company", source="name", constant="x")
    with pytest.raises(ValidationError, match="unknown transform"):
        FieldRule(target="company", source="name", transform="shout")
