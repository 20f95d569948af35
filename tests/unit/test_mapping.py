import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ml_connector.sync.mapping import (
    FieldRule,
    MappingError,
    get_path,
    load_mapping,
    parse_mapping,
    payment_status,
)

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
DEFAULT = load_mapping()


def _section(fields, **extra):
    return parse_mapping({"customer": {"fields": fields, **extra}}, "test.json").customer


def test_default_mapping_of_a_customer():
    fields = DEFAULT.customer.map(CUSTOMER, entity="customer", modified_at=MODIFIED)
    assert fields["company"] == "Nordlys Maskin AS"
    assert fields["billingCountry"] == "Norway"
    assert fields["billingCity"] == "Oslo"
    assert fields["mainPhone"] == "+4722000000"
    assert fields["vismaClassId"] == "DOM"
    assert fields["vismaClass"] == "Domestic customers"
    assert fields["vismaPaymentTerms"] == "14 days net"
    assert fields["vismaPaymentStatus"] == "on_hold"
    assert fields["vismaContactEmail"] == "post@nordlys-maskin.example"
    assert fields["vismaCurrency"] == "NOK"
    assert fields["vismaEntity"] == "customer"
    assert fields["vismaLastModified"] == "2025-03-14T09:41:27Z"
    assert fields["numberOfEmployees"] == 42
    assert "externalCompanyId" not in fields


def test_default_supplier_section_uses_supplier_class():
    supplier = {**CUSTOMER, "status": "Active", "supplierClass": {"id": "TRANSP", "description": "Transport"}}
    del supplier["customerClass"]
    fields = DEFAULT.supplier.map(supplier, entity="supplier", modified_at=MODIFIED)
    assert fields["vismaClassId"] == "TRANSP"
    assert fields["vismaEntity"] == "supplier"
    assert fields["vismaPaymentStatus"] == "current"


def test_missing_nested_objects_map_to_none():
    bare = {"internalId": 1, "number": "1", "name": "X", "mainAddress": None}
    fields = DEFAULT.customer.map(bare, entity="customer", modified_at=MODIFIED)
    assert fields["billingCity"] is None
    assert fields["vismaClass"] is None
    assert get_path({"a": {"b": None}}, "a.b.c") is None


def test_strings_are_trimmed_to_destination_length():
    fields = DEFAULT.customer.map({**CUSTOMER, "name": "Å" * 400}, entity="customer", modified_at=MODIFIED)
    assert fields["company"] == "Å" * 255


def test_lengths_from_describe_fill_rules_without_one():
    section = _section({"company": {"source": "name"}, "vismaNumber": {"source": "number", "max_length": 3}})
    sized = section.with_lengths({"company": 5, "vismaNumber": 100})
    fields = sized.map({"name": "Nordlys Maskin", "number": "123456"}, entity="customer", modified_at=MODIFIED)
    assert fields == {"company": "Nordl", "vismaNumber": "123"}


def test_lookup_with_default_constant_and_transform_chain():
    section = _section({
        "segment": {"source": "customerClass.id", "lookup": {"DOM": "Domestic", "EXP": "Export"}, "default": "Other"},
        "source": {"constant": "Visma.net"},
        "country": {"source": "mainAddress.country.name", "transform": ["country_code", "lower"]},
    })
    record = {**CUSTOMER, "customerClass": {"id": "EXP"}}
    assert section.map(record, entity="customer", modified_at=MODIFIED) == {
        "segment": "Export", "source": "Visma.net", "country": "no"}
    other = {**CUSTOMER, "customerClass": {"id": "ZZZ"}}
    assert section.map(other, entity="customer", modified_at=MODIFIED)["segment"] == "Other"


def test_key_uses_internal_id_not_number():
    assert DEFAULT.customer.key(company_id="1234", entity="customer", internal_id=18342) == "visma-1234-customer-18342"


@pytest.mark.parametrize(("status", "expected"), [("Active", "current"), ("OnHold", "on_hold"),
                                                  ("CreditHold", "on_hold"), ("Inactive", "inactive")])
def test_payment_status_from_status(status, expected):
    assert payment_status({"status": status}) == expected


def test_rule_needs_exactly_one_origin():
    with pytest.raises(ValidationError, match="exactly one"):
        FieldRule(source="name", constant="x")
    with pytest.raises(ValidationError, match="unknown transform 'shout'"):
        FieldRule(source="name", transform="shout")
    with pytest.raises(ValidationError, match="unknown derivation"):
        FieldRule(derive="credit_score")


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"customer": {"fields": {"company": {"source": "name", "transform": "shout"}}}},
         "customer.fields.company: Value error, unknown transform 'shout'"),
        ({"customer": {"fields": {}}}, "customer.fields"),
        ({"customer": {"key_template": "x-{number}", "fields": {"company": {"source": "name"}}}},
         "customer.key_template"),
        ({"customer": {"fields": {"externalCompanyId": {"source": "number"}}}}, "dedupe field"),
        ({"vendor": {}}, "vendor"),
    ],
)
def test_invalid_mapping_names_file_field_and_reason(tmp_path, document, fragment):
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(document))
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    assert str(path) in str(error.value)
    assert fragment in str(error.value)


def test_unreadable_or_broken_mapping_file(tmp_path):
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"customer": ')
    with pytest.raises(MappingError, match="invalid JSON at line 1"):
        load_mapping(broken)


class _Field:
    def __init__(self, name, length=None, updateable=True):
        self.name, self.length, self.updateable = name, length, updateable


class _Described:
    def __init__(self, fields, dedupe=("externalCompanyId",)):
        self.name = "Company"
        self.dedupe_fields = list(dedupe)
        self.fields = {f.name: f for f in fields}


def test_check_against_marketo_sizes_fields_from_describe():
    from ml_connector.sync.mapping import check_against_marketo

    section = _section({"company": {"source": "name"}, "vismaNumber": {"source": "number"}})
    described = _Described([_Field("externalCompanyId", 100, False), _Field("company", 4), _Field("vismaNumber")])
    checked = check_against_marketo(section, described, "m.json")
    assert checked.map({"name": "Nordlys", "number": "1"}, entity="customer", modified_at=MODIFIED) == {
        "company": "Nord", "vismaNumber": "1"}


def test_check_against_marketo_names_unknown_and_read_only_fields():
    from ml_connector.sync.mapping import check_against_marketo

    section = _section({"company": {"source": "name"}, "colour": {"constant": "red"},
                        "updatedAt": {"source": "lastModifiedDateTime"}})
    described = _Described([_Field("company"), _Field("updatedAt", updateable=False)])
    with pytest.raises(MappingError) as error:
        check_against_marketo(section, described, "m.json")
    message = str(error.value)
    assert "m.json" in message and "'colour' does not exist" in message and "'updatedAt' is read-only" in message
    with pytest.raises(MappingError, match="not a dedupe field"):
        check_against_marketo(_section({"company": {"source": "name"}}), _Described([_Field("company")], dedupe=[]),
                              "m.json")


def test_check_against_marketo_points_crm_managed_companies_to_custom_objects():
    from ml_connector.sync.mapping import check_against_marketo

    crm_field = _Field("company")
    crm_field.crm_managed = True
    with pytest.raises(MappingError, match="native CRM sync.*custom object"):
        check_against_marketo(_section({"company": {"source": "name"}}), _Described([crm_field]), "m.json")
