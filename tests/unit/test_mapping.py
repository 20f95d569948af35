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


# -- list-by-key paths, join, first_of (issue #19) --------------------------------------------------------

ATTRIBUTES = [{"id": "SEGMENT", "value": "Småbedrift – Ærø ØÅ", "description": "Kundesegment"},
              {"id": "REGION", "value": "Café 🚀 Île-de-France", "description": "Région é"}]
NORDIC = {**CUSTOMER, "attributes": ATTRIBUTES,
          "mainAddress": {**CUSTOMER["mainAddress"], "addressLine2": " c/o Café Ørn ", "addressLine3": None},
          "invoiceAddress": {"addressLine1": "Postboks 4411", "addressLine2": "", "addressLine3": "Sentrum",
                             "city": "Oslo", "postalCode": "0403", "country": {"id": "NO"}},
          "invoiceContact": {"email": " Faktura@Nordlys-Maskin.example", "phone1": "+47 22 00 00 01"}}


def _one(rule, record=NORDIC):
    return _section({"x": rule}).map(record, entity="customer", modified_at=MODIFIED)["x"]


@pytest.mark.parametrize(("path", "expected"), [
    ("attributes[SEGMENT].value", "Småbedrift – Ærø ØÅ"),
    ("attributes[SEGMENT].description", "Kundesegment"),
    ("attributes[REGION].value", "Café 🚀 Île-de-France"),
    ("attributes[region].description", "Région é"),  # attribute ids match regardless of case
    ("attributes[id=REGION].value", "Café 🚀 Île-de-France"),
    ("attributes[value=kundesegment].id", None),  # another key field: matches on that field only
    ("attributes[description=Kundesegment].id", "SEGMENT"),
    ("attributes[MISSING].value", None),
    ("mainAddress[SEGMENT].value", None),  # not a list
])
def test_a_source_selects_a_list_element_by_key(path, expected):
    assert get_path(NORDIC, path) == expected
    assert _one({"source": path}) == expected


@pytest.mark.parametrize("attributes", [None, "SEGMENT=SMB", [None, "x", {"value": "no id"}], {"SEGMENT": "SMB"}, []])
def test_a_missing_or_malformed_attribute_list_yields_null_and_the_default(attributes):
    record = {**NORDIC, "attributes": attributes}
    assert _one({"source": "attributes[SEGMENT].value"}, record) is None
    assert _one({"source": "attributes[SEGMENT].value", "default": "Other"}, record) == "Other"


def test_lookup_transform_and_length_apply_to_an_attribute_as_to_any_source():
    rule = {"source": "attributes[SEGMENT].value", "lookup": {"Småbedrift – Ærø ØÅ": "SMB 🚀"}, "default": "?"}
    assert _one(rule) == "SMB 🚀"
    assert _one({**rule, "lookup": {"ENT": "Enterprise"}}) == "?"
    assert _one({"source": "attributes[REGION].value", "transform": "upper", "max_length": 6}) == "CAFÉ 🚀"


def test_join_skips_empty_parts_and_trims_each():
    lines = ["mainAddress.addressLine1", "mainAddress.addressLine2", "mainAddress.addressLine3"]
    assert _one({"join": lines}) == "Storgata 12, c/o Café Ørn"
    assert _one({"join": lines, "separator": "\n"}) == "Storgata 12\nc/o Café Ørn"
    invoice = [f"invoiceAddress.addressLine{i}" for i in (1, 2, 3)]
    assert _one({"join": invoice, "separator": " / "}) == "Postboks 4411 / Sentrum"
    assert _one({"join": ["attributes[SEGMENT].value", "numberOfEmployees", "mainAddress"]}) == \
        "Småbedrift – Ærø ØÅ, 42"  # numbers join as text; an object is not a value and is skipped
    assert _one({"join": ["nothing", "invoiceAddress.addressLine2"], "default": "n/a"}) == "n/a"


def test_first_of_takes_the_first_non_empty_value():
    rule = {"first_of": ["invoiceContact.email", "mainContact.email"], "transform": "email"}
    assert _one(rule) == "faktura@nordlys-maskin.example"
    for blank in (None, "", "   "):
        record = {**NORDIC, "invoiceContact": {"email": blank}}
        assert _one(rule, record) == "post@nordlys-maskin.example"
    assert _one({"first_of": ["invoiceContact.fax", "numberOfEmployees"]}) == 42  # the value keeps its type
    assert _one({"first_of": ["a", "b"], "default": "none"}, {}) == "none"


def test_describe_lengths_cut_joined_values():
    from ml_connector.sync.mapping import check_against_marketo

    section = _section({"billingStreet": {"join": ["mainAddress.addressLine1", "mainAddress.addressLine2"]}})
    described = _Described([_Field("externalCompanyId", 100, False), _Field("billingStreet", 16)])
    checked = check_against_marketo(section, described, "m.json")
    assert checked.map(NORDIC, entity="customer", modified_at=MODIFIED) == {"billingStreet": "Storgata 12, c/o"}


def test_shipped_default_maps_all_address_lines_and_the_segment_attribute():
    for section in (DEFAULT.customer, DEFAULT.supplier):
        fields = section.map(NORDIC, entity="customer", modified_at=MODIFIED)
        assert fields["billingStreet"] == "Storgata 12, c/o Café Ørn"
        assert fields["vismaSegment"] == "Småbedrift – Ærø ØÅ"
    assert DEFAULT.customer.map(CUSTOMER, entity="customer", modified_at=MODIFIED)["vismaSegment"] is None


def test_example_invoice_address_mapping_prefers_the_invoice_address_and_contact():
    example = load_mapping("example-invoice-address.json")
    fields = example.customer.map(NORDIC, entity="customer", modified_at=MODIFIED)
    assert fields["billingStreet"] == "Postboks 4411, Sentrum"
    assert (fields["billingPostalCode"], fields["billingCity"], fields["billingCountry"]) == ("0403", "Oslo", "Norway")
    assert fields["vismaContactEmail"] == "faktura@nordlys-maskin.example"
    assert fields["mainPhone"] == "+4722000001"
    plain = example.customer.map(CUSTOMER, entity="customer", modified_at=MODIFIED)  # no invoice address
    assert (plain["billingStreet"], plain["billingPostalCode"]) == (None, "0155")
    assert plain["vismaContactEmail"] == "post@nordlys-maskin.example"
    assert example.supplier == DEFAULT.supplier


@pytest.mark.parametrize("name", ["default.json", "suppliers-as-custom-object.json", "with-contacts-as-leads.json",
                                  "example-invoice-address.json"])
def test_every_shipped_mapping_fits_the_sandbox_marketo_schema(name):
    from ml_connector.marketo.models import ObjectDescription
    from ml_connector.sync.mapping import check_against_marketo
    from sandbox.marketo.schema import build_schemas, company_schema

    schemas = {"companies": company_schema(), **build_schemas(None, None)}
    mapping = load_mapping(name)
    for entity in ("customer", "supplier"):
        section = mapping.for_entity(entity)
        described = ObjectDescription.from_describe(schemas[section.target].metadata(crm_enabled=False))
        check_against_marketo(section, described, name)


def test_uses_payment_sees_payment_facts_inside_join_and_first_of():
    assert not _section({"a": {"source": "name"}}).uses_payment
    assert _section({"a": {"join": ["name", "_payment.balance"]}}).uses_payment
    assert _section({"a": {"first_of": ["_payment.balance", "creditLimit"]}}).uses_payment


@pytest.mark.parametrize(("rule", "fragment"), [
    ({"source": "attributes[SEGMENT"}, "bad source path 'attributes[SEGMENT'"),
    ({"source": "attributes[].value"}, "bad source path 'attributes[].value'"),
    ({"source": "attributes[SEGMENT]value"}, "bad source path"),
    ({"source": "attributes[SEG MENT].value"}, "bad source path"),
    ({"source": "attributes[SEGMENT]"}, "picks a whole list element; name the value to take, "
                                         "e.g. attributes[SEGMENT].value"),
    ({"source": "mainAddress..city"}, "bad source path 'mainAddress..city'"),
    ({"join": ["mainAddress.addressLine1", "_street"]}, "unknown source '_street'"),
    ({"join": ["mainAddress.addressLine1", "attributes[SEGMENT"]}, "bad source path 'attributes[SEGMENT'"),
    ({"join": ["mainAddress.addressLine1", 3]}, "customer.fields.billingStreet.join.1: Input should be a valid string"),
    ({"join": ["mainAddress.addressLine1"]}, "customer.fields.billingStreet.join: Tuple should have at least 2"),
    ({"join": "mainAddress.addressLine1"}, "customer.fields.billingStreet.join: Input should be a valid tuple"),
    ({"first_of": ["invoiceContact.email", "_mainContact.email"]}, "unknown source '_mainContact'"),
    ({"source": "name", "separator": " "}, "separator applies only to join"),
    ({"join": ["a", "b"], "source": "name"}, "give exactly one of source, constant, derive, join, first_of"),
    ({"source": "name", "comment": "why"}, "customer.fields.billingStreet.comment: Extra inputs are not permitted"),
])
def test_a_bad_rule_fails_at_load_naming_file_and_field(tmp_path, rule, fragment):
    path = tmp_path / "segments.json"
    path.write_text(json.dumps({"customer": {"fields": {"company": {"source": "name"}, "billingStreet": rule}}}))
    with pytest.raises(MappingError) as error:
        load_mapping(path)
    message = str(error.value)
    assert message.startswith(f"mapping {path}: ") and "customer.fields.billingStreet" in message
    assert fragment in message


def test_comments_are_allowed_in_the_file_sections_and_rules_and_nowhere_else(tmp_path):
    document = {"_comment": "file", "description": "d",
                "customer": {"_comment": "section", "fields": {"company": {"_comment": "rule", "source": "name"}}},
                "reference": {"_comment": "reference"}}
    mapping = parse_mapping(document, "c.json")
    assert mapping.customer.fields["company"] == FieldRule(source="name")
    with pytest.raises(MappingError, match="customer.fields._comment"):  # a field name, not a comment
        parse_mapping({"customer": {"fields": {"_comment": "x", "company": {"source": "name"}}}}, "c.json")
    lookup = _section({"s": {"source": "status", "lookup": {"_comment": "kept: lookup keys are data"}}})
    assert lookup.map({"status": "_comment"}, entity="customer", modified_at=MODIFIED) == {
        "s": "kept: lookup keys are data"}
