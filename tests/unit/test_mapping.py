import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ml_connector.sync.mapping import (
    FieldRule,
    MappingError,
    NoMarketoKey,
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
WITH_CONTACTS = load_mapping("with-contacts-as-leads.json")  # a shipped mapping, named by its file name


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


# -- contacts -> leads ---------------------------------------------------------------------------------

CONTACT = {
    "contactId": 60877, "displayName": "Kari Nordmann", "firstName": " Kari ", "lastName": "Nordmann",
    "position": "CFO", "businessAccount": "10457", "email": "Kari.Nordmann@Nordlys-Maskin.example",
    "phone1": "+47 22 00 00 01", "noMarketing": False, "noMassMail": False, "doNotEmail": False,
    "lastModifiedDateTime": "2025-03-14T09:41:27.513", "timeStamp": "AAAAAAB3kXs=",
    "_company_key": "visma-1234567-customer-18342",
}


def test_default_contact_section_maps_a_contact_to_a_lead_keyed_by_email():
    section = WITH_CONTACTS.contact
    assert section.target == "leads" and section.dedupe_field == "email"
    key = section.key(company_id="1234567", entity="contact", internal_id=60877, record=CONTACT)
    assert key == "kari.nordmann@nordlys-maskin.example"
    fields = section.map(CONTACT, entity="contact", modified_at=MODIFIED)
    assert fields == {"firstName": "Kari", "lastName": "Nordmann", "title": "CFO", "phone": "+4722000001",
                      "externalCompanyId": "visma-1234567-customer-18342"}


@pytest.mark.parametrize("flag", ["noMarketing", "noMassMail", "doNotEmail"])
def test_an_opted_out_contact_is_unsubscribed(flag):
    fields = WITH_CONTACTS.contact.map({**CONTACT, flag: True}, entity="contact", modified_at=MODIFIED)
    assert fields["unsubscribed"] is True


def test_unsubscribed_is_never_sent_as_false_and_an_unknown_company_is_not_cleared():
    fields = WITH_CONTACTS.contact.map({**CONTACT, "_company_key": None}, entity="contact", modified_at=MODIFIED)
    assert "unsubscribed" not in fields  # false would re-subscribe a person who unsubscribed in Marketo
    assert "externalCompanyId" not in fields


@pytest.mark.parametrize("email", [None, "", "not-an-address", "kåre@fjord.example"])
def test_a_contact_without_a_usable_email_has_no_marketo_key(email):
    with pytest.raises(NoMarketoKey, match="email"):
        WITH_CONTACTS.contact.key(company_id="1", entity="contact", internal_id=1, record={**CONTACT, "email": email})


def test_omit_if_null_leaves_only_that_field_out():
    section = _section({"a": {"source": "missing"}, "b": {"source": "missing", "omit_if_null": True}})
    assert section.map({}, entity="customer", modified_at=MODIFIED) == {"a": None}


def test_entities_are_polled_with_contacts_last_and_contacts_are_opt_in():
    assert WITH_CONTACTS.entities == ["customer", "supplier", "contact"]
    assert DEFAULT.entities == ["customer", "supplier"]  # leads count against the Marketo licence: opt in
    assert WITH_CONTACTS.customer == DEFAULT.customer and WITH_CONTACTS.supplier == DEFAULT.supplier
