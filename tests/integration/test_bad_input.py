"""Bad input of every kind, through the real path (Visma sandbox -> poller -> SQS/moto -> writer -> Marketo
sandbox): each gets a clear error or a quarantine entry with its reason, nothing else in the batch is lost,
and nothing loops.

Malformed Visma records, planted among good records on the same page (customers unless noted) -- each is
quarantined by the poller with a reason naming the field, the rest of the page is written:

* ``number`` missing; ``name`` missing, ``null``, ``""`` and blank (whitespace only); a supplier without
  ``name``;
* wrong types: ``internalId`` ``"abc"`` (quarantined under a content-hash ref, ``raw-…``), ``status`` a
  number, ``lastModifiedDateTime`` not a date-time, ``numberOfEmployees`` a text, ``mainContact`` a string
  and (supplier) ``mainAddress`` a string where an object is expected;
* a lone UTF-16 surrogate (JSON ``"\\ud800"``) in ``name``: it cannot be encoded as UTF-8 (not for SQS,
  DynamoDB or Marketo), so the record is quarantined naming the field ("not a valid unicode string") while
  the rest of the page is written.

Odd but harmless Visma records -- NOT quarantined, written to Marketo exactly:

* unusual Unicode in ``name``: emoji, a ZWJ sequence, Arabic (RTL) text with RLM marks, combining marks,
  bidi isolates, CJK -- byte-exact in Marketo; a NUL character inside ``name`` -- passed through as is;
* ``null`` where an optional object is expected: ``mainContact``, ``mainAddress``, ``customerClass``,
  ``creditTerms`` (customer) and ``supplierClass`` (supplier) -- the mapped fields are empty;
* overlong strings: a 1,000-character ``name`` is cut to the ``max_length`` 255 the mapping file gives
  ``company``; a 1,000-character ``mainAddress.addressLine1`` is cut to the 255 Marketo's describe gives
  ``billingStreet`` (README, Mapping: "trims strings to max_length");
* an invalid e-mail on the main contact: the ``email`` transform drops it, the rest of the record is written.

No crash loop: a second cycle completes, moves the watermark past the bad records and adds no quarantine
entry; after the bad records are fixed in Visma the next cycle writes them (and their quarantine entries
are cleared). Each bad record counts once in the report/metric.

Malformed SQS messages, mixed with good ones in one batch to the writer handler and through the real queue:
not JSON, empty body, ``null``, JSON of the wrong schema, unknown ``schema_version``, a missing field,
``fields`` not an object, a key over 255 characters, an unknown ``entity``, an unknown ``connection``, and a
well-formed message whose field value is an object (Marketo skips it). Each is quarantined with its reason,
the batch response reports no failure, the good messages are written, nothing reaches the DLQ.

Invalid configuration fails fast at start (poller and writer handlers, the CLI) with a message naming the
field: mapping with an unknown transform, a rule without a source, a field Marketo's describe does not know,
malformed JSON; connections with a duplicate id, a missing secret name, ``http://`` for a non-loopback Visma
base/token URL or Marketo endpoint override; Munchkin IDs ``abc``, ``123-ABC-45``, a URL, lower case and one
with a trailing newline.

Bad credentials: a wrong Visma secret fails the poll naming Visma; a Visma secret without ``client_id`` names
the field and never prints the secret; a wrong Marketo secret fails the writer's chunks naming Marketo and
keeps the messages in the queue for retry (not quarantined, not dead-lettered), and they are written once the
secret is right; a Marketo secret without ``client_id`` must name the field and not print the secret;
a Marketo outage (wrong secret) when a container starts must not leave its mapping without describe's field
lengths; ``ping`` reports the failing side.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cli.main import EXIT_PROBLEM, EXIT_USAGE, main
from cli.ping import PingCredentials
from cli.target import Target
from localrun.environment import ZERO_FACTS, LocalEnvironment, expected_payment_facts
from localrun.lambda_runtime import invoke
from ml_connector import runtime as runtime_module
from ml_connector.config import ConfigError
from ml_connector.marketo.client import forget_tokens as forget_marketo_tokens
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH, load_mapping
from ml_connector.sync.messages import deflated_pack_body
from ml_connector.visma.client import forget_tokens as forget_visma_tokens
from ml_connector.visma.models import parse_visma_datetime

pytestmark = pytest.mark.integration

CUSTOMERS, SUPPLIERS = 60, 20
LONG_NAME = ("Langtnavn Maskinentreprenør " * 40)[:1000]
LONG_STREET = ("Storgata 1, bakgården, oppgang B " * 40)[:1000]
UNICODE_NAME = ("Ærøskøbing Café 🚀 — شركة الأمل\u200f (RTL)\u200f — Zoe\u0308 & Zoë — "
                "👩\u200d💻 team — 中文有限公司 — \u2066isolate\u2069")
NUL_NAME = "Null\u0000Byte AS"
SURROGATE_NAME = "Broken \ud800 Surrogate AS"


# -- helpers ---------------------------------------------------------------------------------------
def now_stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def quarantine(env: LocalEnvironment, connection: str = "default") -> dict[str, dict[str, str]]:
    """The quarantine of a connection, read through the connector's state interface: entity#ref -> entry."""
    return {e.key: {k: v for k, v in e.model_dump().items() if isinstance(v, str)}
            for e in env.state().quarantine.entries(connection)}


def queue_depth(env: LocalEnvironment, logical_id: str) -> int:
    attrs = env.aws.client("sqs").get_queue_attributes(
        QueueUrl=env.resource(logical_id),
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def company_key(env: LocalEnvironment, entity: str, internal_id: Any) -> str:
    return f"visma-{env.visma.credentials['company_id']}-{entity}-{internal_id}"


def marketo_companies(env: LocalEnvironment) -> dict[str, dict[str, Any]]:
    return {c["externalCompanyId"]: c for c in env.marketo.store.companies()}


def expected_good(env: LocalEnvironment, bad: set[tuple[str, Any]]) -> dict[str, dict[str, Any]]:
    """The mapped fields of every Visma record except ``bad`` ones (the README's mapping, computed from the
    sandbox's own state, as LocalEnvironment.expected_records does for an all-good company)."""
    mapping = load_mapping(None)
    facts = expected_payment_facts(env.visma)
    expected = {}
    for entity in ("customer", "supplier"):
        section = mapping.for_entity(entity)
        assert section is not None
        for raw in env.visma.store.records(entity):
            if (entity, raw.get("internalId")) in bad or not isinstance(raw.get("internalId"), int):
                continue
            modified = parse_visma_datetime(raw["lastModifiedDateTime"])
            source = {**raw, "_payment": facts.get(str(raw["number"]), ZERO_FACTS)} if entity == "customer" else raw
            key = company_key(env, entity, raw["internalId"])
            expected[key] = {"externalCompanyId": key, **section.map(source, entity=entity, modified_at=modified)}
    return expected


def mismatches(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> dict[str, Any]:
    from ml_connector.sync.preview import same_value

    problems: dict[str, Any] = {}
    for key, fields in expected.items():
        if key not in actual:
            problems[key] = "missing"
            continue
        diff = {f: (v, actual[key].get(f)) for f, v in fields.items() if not same_value(actual[key].get(f), v)}
        if diff:
            problems[key] = diff
    return problems


def cold_start() -> None:
    """A new Lambda container: no cached runtime (settings, secrets) and no cached tokens."""
    runtime_module._cache.clear()
    forget_visma_tokens()
    forget_marketo_tokens()


# -- the environment and the planted records ------------------------------------------------------
@pytest.fixture(scope="module")
def env(local_stack):
    return local_stack(seed=73, customers=CUSTOMERS, suppliers=SUPPLIERS)


def _without(raw: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in raw.items() if k not in names}


# label -> (entity, how to break a copy of a good record, fragment the quarantine reason must contain)
BAD_RECORDS: dict[str, tuple[str, Any, str]] = {
    "number missing": ("customer", lambda r: _without(r, "number"), "number: Field required"),
    "name missing": ("customer", lambda r: _without(r, "name"), "name: Field required"),
    "name null": ("customer", lambda r: {**r, "name": None}, "name: Input should be a valid string"),
    "name empty": ("customer", lambda r: {**r, "name": ""}, "name: String should have at least 1 character"),
    "name blank": ("customer", lambda r: {**r, "name": "  \t "}, "name: Value error, must not be blank"),
    "status a number": ("customer", lambda r: {**r, "status": 3}, "status: Input should be a valid string"),
    "lastModifiedDateTime garbage": ("customer", lambda r: {**r, "lastModifiedDateTime": "yesterday-ish"},
                                     "lastModifiedDateTime: Value error, not a Visma date-time: 'yesterday-ish'"),
    "numberOfEmployees text": ("customer", lambda r: {**r, "numberOfEmployees": "many"},
                               "numberOfEmployees: Input should be a valid integer"),
    "mainContact a string": ("customer", lambda r: {**r, "mainContact": "n/a"}, "mainContact: Input should be"),
    "supplier name missing": ("supplier", lambda r: _without(r, "name"), "name: Field required"),
    "supplier mainAddress a string": ("supplier", lambda r: {**r, "mainAddress": "Storgata 1"},
                                      "mainAddress: Input should be"),
}
# What puts the record right again (besides a fresh lastModifiedDateTime).
FIXES: dict[str, tuple[str, ...]] = {
    "number missing": ("number",), "name missing": ("name",), "name null": ("name",), "name empty": ("name",),
    "name blank": ("name",), "status a number": ("status",), "lastModifiedDateTime garbage": (),
    "numberOfEmployees text": ("numberOfEmployees",), "mainContact a string": ("mainContact",),
    "supplier name missing": ("name",),
    "supplier mainAddress a string": ("mainAddress",),
}
BAD_ID_NUMBER = "BAD-ID-1"  # the record whose internalId is "abc" (cannot be fixed in place)


@pytest.fixture(scope="module")
def planted(env):
    """Bad records first, then the harmless oddities (stamped later, so the watermark passes the bad ones)."""
    store = env.visma.store
    customers, suppliers = store.records("customer"), store.records("supplier")
    pools = {"customer": iter(customers[::3]), "supplier": iter(suppliers[::2])}
    bad: dict[str, dict[str, Any]] = {}
    for label, (entity, breaker, _) in BAD_RECORDS.items():
        original = next(pools[entity])
        broken = {**breaker(original)}
        broken["lastModifiedDateTime"] = broken.get("lastModifiedDateTime") if label.startswith(
            "lastModified") else now_stamp()
        store.put_raw(entity, broken)
        bad[label] = {"entity": entity, "id": original["internalId"], "original": original}
    store.put_raw("customer", {**customers[1], "internalId": "abc", "number": BAD_ID_NUMBER,
                               "lastModifiedDateTime": now_stamp()})
    harmless = {
        "unicode name": ("customer", {"name": UNICODE_NAME}),
        "NUL in name": ("customer", {"name": NUL_NAME}),
        "null objects": ("customer", {"mainContact": None, "mainAddress": None, "customerClass": None,
                                      "creditTerms": None}),
        "overlong name": ("customer", {"name": LONG_NAME}),
        "overlong street": ("customer", {"mainAddress": {"addressLine1": LONG_STREET}}),
        "invalid e-mail": ("customer", {"mainContact": {"email": "kari.nordmann(at)nordlys"}}),
        "supplier unicode, no class": ("supplier", {"name": UNICODE_NAME, "supplierClass": None}),
    }
    odd: dict[str, dict[str, Any]] = {}
    for label, (entity, changes) in harmless.items():
        internal_id = next(pools[entity])["internalId"]
        store.update(entity, internal_id, **changes)
        odd[label] = {"entity": entity, "id": internal_id, "record": store.record(entity, internal_id)}
    return {"bad": bad, "odd": odd}


@pytest.fixture(scope="module")
def cycles(env, planted):
    result: dict[str, Any] = {}
    result["first"] = env.cycle("bad input")
    result["first_quarantine"] = quarantine(env)
    result["first_companies"] = marketo_companies(env)
    result["first_dlq"] = queue_depth(env, "SyncDeadLetterQueue")
    bad_ids = {(b["entity"], b["id"]) for b in planted["bad"].values()}
    result["first_expected"] = expected_good(env, bad_ids)

    result["second"] = env.cycle("again, nothing fixed")
    result["second_quarantine"] = quarantine(env)

    for label, bad in planted["bad"].items():
        fix = {name: bad["original"].get(name) for name in FIXES[label]}
        env.visma.store.update(bad["entity"], bad["id"], **fix, lastModifiedDateTime=now_stamp())
    result["third"] = env.cycle("bad records fixed")
    result["third_quarantine"] = quarantine(env)
    result["third_companies"] = marketo_companies(env)
    result["third_expected"] = expected_good(env, set())
    result["third_dlq"] = queue_depth(env, "SyncDeadLetterQueue")
    return result


def _entity_report(report, entity):
    return next(e for e in report.poll if e["entity"] == entity)


# -- 1. malformed Visma records ---------------------------------------------------------------------
def test_every_malformed_record_is_quarantined_with_its_reason(env, planted, cycles):
    entries = cycles["first_quarantine"]
    for label, bad in planted["bad"].items():
        entry = entries.get(f"{bad['entity']}#{bad['id']}")
        assert entry is not None, f"{label}: not quarantined"
        assert entry["stage"] == "poller"
        assert BAD_RECORDS[label][2] in entry["reason"], (label, entry["reason"])
        assert json.loads(entry["raw"])["internalId"] == bad["id"]  # the raw payload is kept for the operator
    no_int_id = [e for e in entries.values() if e["ref"].startswith("raw-")]
    assert len(no_int_id) == 1 and BAD_ID_NUMBER in no_int_id[0]["raw"]
    assert "internalId: Input should be a valid integer" in no_int_id[0]["reason"]
    assert len(entries) == len(planted["bad"]) + 1
    first = cycles["first"]
    assert _entity_report(first, "customer")["quarantined"] >= 10
    assert _entity_report(first, "supplier")["quarantined"] == 2


def test_each_bad_record_is_counted_once(cycles):
    customer = _entity_report(cycles["first"], "customer")
    assert customer["quarantined"] == 10, customer


def test_the_rest_of_the_page_is_written_exactly(env, planted, cycles):
    first = cycles["first"]
    assert first.drain.failed == 0 and cycles["first_dlq"] == 0
    assert all(e["error"] is None and e["complete"] for e in first.poll), first.poll
    expected, actual = cycles["first_expected"], cycles["first_companies"]
    # describe sizes billingStreet to 255 (the mapping file gives no max_length for it)
    street_key = company_key(env, "customer", planted["odd"]["overlong street"]["id"])
    expected[street_key]["billingStreet"] = LONG_STREET[:255]
    assert len(expected) == CUSTOMERS + SUPPLIERS - len(planted["bad"])
    assert mismatches(expected, actual) == {}
    assert set(actual) == set(expected)  # no bad record reached Marketo
    assert first.created == len(expected)


def test_harmless_oddities_are_not_quarantined_and_arrive_exactly(env, planted, cycles):
    odd, companies = planted["odd"], cycles["first_companies"]
    quarantined_refs = {e["ref"] for e in cycles["first_quarantine"].values()}
    assert not {str(o["id"]) for o in odd.values()} & quarantined_refs

    def company(label):
        return companies[company_key(env, odd[label]["entity"], odd[label]["id"])]

    assert company("unicode name")["company"] == UNICODE_NAME  # byte-exact, no normalisation
    assert company("supplier unicode, no class")["company"] == UNICODE_NAME
    assert company("supplier unicode, no class")["vismaClassId"] is None
    assert company("NUL in name")["company"] == NUL_NAME
    nulls = company("null objects")
    for name in ("billingStreet", "billingCity", "billingCountry", "website", "mainPhone", "vismaClassId",
                 "vismaClass", "vismaPaymentTerms", "vismaContactEmail", "vismaContactName"):
        assert nulls.get(name) is None, name
    assert nulls["company"] == odd["null objects"]["record"]["name"].strip()
    assert company("overlong name")["company"] == LONG_NAME.strip()[:255]
    assert company("overlong street")["billingStreet"] == LONG_STREET[:255]
    email = company("invalid e-mail")
    assert email["vismaContactEmail"] is None
    assert email["company"] == odd["invalid e-mail"]["record"]["name"].strip()


def test_second_cycle_does_not_loop_on_the_bad_records(env, planted, cycles):
    second = cycles["second"]
    assert all(e["error"] is None and e["complete"] for e in second.poll), second.poll
    assert second.messages_sent == 0 and second.marketo_calls == 0 and second.drain.failed == 0
    assert set(cycles["second_quarantine"]) == set(cycles["first_quarantine"])  # re-read, not multiplied
    customer = _entity_report(second, "customer")
    assert customer["watermark_after"] >= customer["watermark_before"]
    stamps = []
    for entry in cycles["first_quarantine"].values():
        with contextlib.suppress(ValueError):
            stamps.append(parse_visma_datetime(json.loads(entry["raw"])["lastModifiedDateTime"]))
    assert len(stamps) == len(cycles["first_quarantine"]) - 1
    assert max(stamps) <= parse_visma_datetime(customer["watermark_after"])  # moved past every bad record


def test_fixed_records_are_written_by_the_next_cycle(env, planted, cycles):
    third = cycles["third"]
    assert all(e["error"] is None and e["complete"] for e in third.poll), third.poll
    assert third.created == len(planted["bad"]) and third.drain.failed == 0 and cycles["third_dlq"] == 0
    expected = cycles["third_expected"]
    street_key = company_key(env, "customer", planted["odd"]["overlong street"]["id"])
    expected[street_key]["billingStreet"] = LONG_STREET[:255]
    assert mismatches(expected, cycles["third_companies"]) == {}
    assert set(cycles["third_companies"]) == set(expected)


def test_fixed_records_leave_the_quarantine(env, planted, cycles):
    remaining = cycles["third_quarantine"]
    assert [e["ref"] for e in remaining.values()] == [next(e["ref"] for e in remaining.values()
                                                           if BAD_ID_NUMBER in e["raw"])]


def test_lone_surrogate_is_quarantined_without_failing_the_page(env, cycles):
    store = env.visma.store
    original = store.records("customer")[2]  # a good record, written in the first cycle, not planted on
    edited = store.edit_random(2, rng_seed=3, entity="customer")
    store.put_raw("customer", {**original, "name": SURROGATE_NAME, "lastModifiedDateTime": now_stamp()})
    try:
        report = env.cycle("lone surrogate")
        assert all(e["error"] is None and e["complete"] for e in report.poll), report.poll
        companies = marketo_companies(env)
        for _, internal_id in edited:
            assert companies[company_key(env, "customer", internal_id)]["company"] == \
                store.record("customer", internal_id)["name"].strip()
        # Quarantined naming the surrogate, or written with the surrogate replaced: never sent as is.
        entry = quarantine(env).get(f"customer#{original['internalId']}")
        written = companies[company_key(env, "customer", original["internalId"])]["company"]
        named = entry is not None and "name" in entry["reason"] and "unicode" in entry["reason"]
        assert named or written == SURROGATE_NAME.replace(
            "\ud800", "\ufffd")
    finally:
        store.put_raw("customer", original)  # as it was (and as Marketo holds it): no longer in any window
        env.cycle("settle")  # what the failed cycle left (its edits, messages sent before it failed)


# -- 2. malformed SQS messages -----------------------------------------------------------------------
def _message(env, internal_id: int, company: str, **changes: Any) -> dict[str, Any]:
    body = {"schema_version": 1, "connection": "default", "entity": "customer", "internal_id": internal_id,
            "number": str(internal_id), "marketo_object": "companies", "dedupe_field": "externalCompanyId",
            "key": company_key(env, "customer", internal_id), "modified_at": "2025-03-14T09:41:27.513000Z",
            "visma_timestamp": "AAAAAAB3kXo=", "fields": {"company": company, "vismaNumber": str(internal_id)},
            "content_hash": ""}
    body.update(changes)
    return body


def _malformed(env, tag: str) -> dict[str, tuple[str, str]]:
    """messageId -> (body, the fragment its quarantine reason must contain)."""
    missing_key = _message(env, 9_300_001, "No key AS")
    del missing_key["key"]
    bodies = {
        "not-json": ("{not json", "Invalid JSON"),
        "empty": ("", "Invalid JSON"),
        "null": ("null", "Input should be an object"),
        "wrong-schema": (json.dumps({"hello": "world"}), "connection: Field required"),
        "schema-v2": (json.dumps(_message(env, 9_300_002, "Future AS", schema_version=2)),
                      "schema_version: Input should be less than or equal to 1"),
        "missing-key": (json.dumps(missing_key), "key: Field required"),
        "fields-list": (json.dumps(_message(env, 9_300_003, "x", fields=["company", "x"])),
                        "fields: Input should be an object"),
        "long-key": (json.dumps(_message(env, 9_300_004, "Long key AS", key="k" * 300)),
                     "key: String should have at most 255 characters"),
        "bad-entity": (json.dumps(_message(env, 9_300_005, "Vendor AS", entity="vendor")), "entity: Input should be"),
        "unknown-connection": (json.dumps(_message(env, 9_300_006, "Elsewhere AS", connection="nowhere")),
                               "unknown connection 'nowhere'"),
    }
    return {f"{tag}-{name}": value for name, value in bodies.items()}


def _record(message_id: str, body: str) -> dict[str, Any]:
    return {"messageId": message_id, "receiptHandle": f"rh-{message_id}", "body": body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1710409287513",
                           "SenderId": "AROAEXAMPLE", "ApproximateFirstReceiveTimestamp": "1710409287600"},
            "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:eu-north-1:123456789012:ml-connector-sync", "awsRegion": "eu-north-1"}


def test_malformed_sqs_messages_are_quarantined_and_the_good_ones_written(env, cycles):
    bad = _malformed(env, "direct")
    good = {"direct-good-1": _message(env, 9_200_001, "Godt Selskap AS"),
            "direct-good-2": _message(env, 9_200_002, "Bra Bolag AB")}
    # Well-formed, but Marketo refuses an object as a field value: quarantined with Marketo's reason.
    refused = _message(env, 9_200_003, "Objekt AS", fields={"company": {"nested": True}})
    records = [_record("direct-good-1", json.dumps(good["direct-good-1"]))]
    records += [_record(mid, body) for mid, (body, _) in bad.items()]
    records += [_record("direct-refused", json.dumps(refused)), _record("direct-good-2",
                                                                       json.dumps(good["direct-good-2"]))]
    result = invoke(env.stack, "WriterFunction", {"Records": records}, env=env.env())
    assert result == {"batchItemFailures": []}  # quarantined messages are never retried
    companies = marketo_companies(env)
    for body in good.values():
        assert companies[body["key"]]["company"] == body["fields"]["company"]
    assert refused["key"] not in companies
    entries = quarantine(env, "_unknown")
    for message_id, (_, fragment) in bad.items():
        entry = entries.get(f"message#{message_id}")
        assert entry is not None, message_id
        assert entry["reason"].startswith("malformed SQS message: ") and fragment in entry["reason"], entry["reason"]
    skipped = quarantine(env)["customer#9200003"]
    assert skipped["stage"] == "writer" and "Marketo skipped the record: 1001" in skipped["reason"]


def test_a_bad_record_in_a_pack_is_quarantined_alone_and_a_bad_pack_whole(env, cycles):
    good = _message(env, 9_200_020, "Pakke Selskap AS")
    bad = {**_message(env, 9_200_021, "Ugyldig AS"), "internal_id": "not a number"}
    pack = json.dumps({"pack": 1, "messages": [good, bad]})
    unknown_version = json.dumps({"pack": 9, "messages": [_message(env, 9_200_022, "Fremtid AS")]})
    deflated_good = _message(env, 9_200_023, "Komprimert Selskap AS")
    deflated = deflated_pack_body(json.dumps({"pack": 1, "messages": [bad, deflated_good]}))
    result = invoke(env.stack, "WriterFunction", {"Records": [
        _record("pack-mixed", pack), _record("pack-v9", unknown_version), _record("pack-deflated", deflated),
        _record("pack-torn", deflated[:-30] + '"}')]}, env=env.env())
    assert result == {"batchItemFailures": []}
    companies = marketo_companies(env)
    assert companies[good["key"]]["company"] == "Pakke Selskap AS"
    assert companies[deflated_good["key"]]["company"] == "Komprimert Selskap AS"
    assert company_key(env, "customer", 9_200_022) not in companies
    entries = quarantine(env, "_unknown")
    assert "internal_id" in entries["message#pack-mixed#1"]["reason"]
    assert "internal_id" in entries["message#pack-deflated#0"]["reason"]
    assert "not a version-1 or -2 pack" in entries["message#pack-v9"]["reason"]
    assert "deflated pack" in entries["message#pack-torn"]["reason"]


def test_malformed_messages_through_the_queue_never_reach_the_dead_letter_queue(env, cycles):
    sqs = env.aws.client("sqs")
    queue = env.resource("SyncQueue")
    bad = _malformed(env, "queued")
    good = _message(env, 9_200_010, "Kø Selskap AS")
    for body, _ in bad.values():
        sqs.send_message(QueueUrl=queue, MessageBody=body or " ")
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(good))
    before = len(quarantine(env, "_unknown"))
    drained = env.drain()
    assert drained.failed == 0 and drained.handler_errors == 0 and drained.succeeded == len(bad) + 1
    assert queue_depth(env, "SyncQueue") == 0 and queue_depth(env, "SyncDeadLetterQueue") == 0
    assert len(quarantine(env, "_unknown")) == before + len(bad)
    assert marketo_companies(env)[good["key"]]["company"] == "Kø Selskap AS"


# -- 3. invalid mapping and connection configuration -----------------------------------------------
def _connection(env, **changes: Any) -> dict[str, Any]:
    entry = {"id": "default",
             "visma": {"secret_id": env.resource("VismaCredentialsSecret"), "base_url": env.visma.url,
                       "token_url": env.visma.token_url},
             "marketo": {"secret_id": env.resource("MarketoCredentialsSecret"),
                         "munchkin_id": env.marketo.munchkin_id, "endpoint_override": env.marketo.url}}
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = entry
        for step in parents:
            node = node[step]
        if value is None:
            node.pop(leaf, None)
        else:
            node[leaf] = value
    return entry


def _poll_with(env, extra: dict[str, str]) -> Exception:
    with pytest.raises(Exception) as failure:
        invoke(env.stack, "PollerFunction", {"connections": ["default"]}, env={**env.env(), **extra})
    return failure.value


def _bad_mapping(tmp_path, name: str, change) -> str:
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    text = change(mapping)
    path = tmp_path / name
    path.write_text(text if isinstance(text, str) else json.dumps(mapping))
    return str(path)


MAPPING_CASES = {
    "unknown transform": (lambda m: m["customer"]["fields"]["company"].update(transform=["trim", "shout"]),
                          "customer.fields.company: Value error, unknown transform 'shout'"),
    "rule without source": (lambda m: m["supplier"]["fields"]["vismaNumber"].pop("source") and None,
                            "supplier.fields.vismaNumber: Value error, give exactly one of source, constant, derive"),
    "field not in describe": (lambda m: m["customer"]["fields"].update(colour={"constant": "red"}),
                              "field 'colour' does not exist on Marketo company"),
    "malformed JSON": (lambda m: json.dumps(m)[:-40], "invalid JSON at line 1"),
}


@pytest.mark.parametrize("case", MAPPING_CASES)
def test_invalid_mapping_fails_the_poller_at_start_naming_file_and_field(env, cycles, tmp_path, case):
    change, fragment = MAPPING_CASES[case]
    path = _bad_mapping(tmp_path, "mapping.json", change)
    connections = tmp_path / "connections.json"
    connections.write_text(json.dumps({"connections": [_connection(env, mapping="mapping.json")]}))
    before = env.marketo.stats.snapshot()["sync_calls"]
    error = _poll_with(env, {"CONNECTIONS_CONFIG": str(connections)})
    assert isinstance(error, ConfigError), repr(error)
    assert path in str(error) and fragment in str(error), str(error)
    assert env.marketo.stats.snapshot()["sync_calls"] == before and queue_depth(env, "SyncQueue") == 0


def test_invalid_mapping_is_a_usage_error_in_the_cli(env, cycles, tmp_path, capsys):
    path = _bad_mapping(tmp_path, "mapping.json", MAPPING_CASES["unknown transform"][0])
    target = env.local_target()
    target = Target(**{**target.model_dump(), "env": {**target.env, "CONNECTIONS_CONFIG": json.dumps(
        {"connections": [_connection(env, mapping=path)]})}})
    target_file = tmp_path / "target.json"
    target.write(target_file)
    code = main(["--json", "preview", "--target-file", str(target_file)])
    err = " ".join(capsys.readouterr().err.split())
    assert code == EXIT_USAGE
    assert "error:" in err and path in err and "unknown transform 'shout'" in err


CONNECTION_CASES = {
    "duplicate id": (lambda env: [_connection(env), _connection(env)], "duplicate connection id 'default'"),
    "missing secret name": (lambda env: [_connection(env, marketo__secret_id=None)],
                            "connections.0.marketo.secret_id: Field required"),
    "empty secret name": (lambda env: [_connection(env, visma__secret_id="")],
                          "connections.0.visma.secret_id: String should have at least 1 character"),
    "http base_url": (lambda env: [_connection(env, visma__base_url="http://api.finance.visma.net")],
                      "connections.0.visma.base_url: Value error, must be an https:// URL"),
    "http token_url": (lambda env: [_connection(env, visma__token_url="http://connect.visma.com/connect/token")],
                       "connections.0.visma.token_url: Value error, must be an https:// URL"),
    "remote endpoint_override": (lambda env: [_connection(env, marketo__endpoint_override="http://mkto.example.com")],
                                 "connections.0.marketo.endpoint_override: Value error, is allowed only for loopback"),
    "munchkin a URL": (lambda env: [_connection(env, marketo__munchkin_id="https://123-ABC-456.mktorest.com")],
                       "connections.0.marketo.munchkin_id: Value error, must look like 123-ABC-456"),
}


@pytest.mark.parametrize("case", CONNECTION_CASES)
def test_invalid_connections_fail_the_poller_at_start_naming_the_field(env, cycles, case):
    build, fragment = CONNECTION_CASES[case]
    error = _poll_with(env, {"CONNECTIONS_CONFIG": json.dumps({"connections": build(env)})})
    assert isinstance(error, ConfigError), repr(error)
    assert fragment in str(error), str(error)


@pytest.mark.parametrize("munchkin", ["abc", "123-ABC-45", "https://123-ABC-456.mktorest.com", "123-abc-456",
                                      "123-ABC-456\n", " 123-ABC-456"])
def test_invalid_munchkin_id_fails_both_handlers_at_start(env, cycles, munchkin):
    extra = {**env.env(), "MARKETO_MUNCHKIN_ID": munchkin}
    for function, event in (("PollerFunction", {}), ("WriterFunction", {"Records": []})):
        with pytest.raises(ConfigError) as failure:
            invoke(env.stack, function, event, env=extra)
        assert "connections.0.marketo.munchkin_id: Value error, must look like 123-ABC-456" in str(failure.value)


def test_duplicate_connection_id_is_a_usage_error_in_the_cli(env, cycles, tmp_path, capsys):
    target = env.local_target()
    doubled = json.dumps({"connections": [_connection(env), _connection(env)]})
    target = Target(**{**target.model_dump(), "env": {**target.env, "CONNECTIONS_CONFIG": doubled}})
    target_file = tmp_path / "target.json"
    target.write(target_file)
    code = main(["--json", "status", "--target-file", str(target_file)])
    assert code == EXIT_USAGE
    assert "duplicate connection id 'default'" in " ".join(capsys.readouterr().err.split())


def test_ping_names_an_invalid_munchkin_id(env, tmp_path, capsys):
    creds = {"visma": {**env.visma.credentials, "base_url": env.visma.url, "token_url": env.visma.token_url},
             "marketo": {**env.marketo.credentials, "munchkin_id": "abc", "endpoint_override": env.marketo.url}}
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(creds))
    code = main(["--json", "ping", "--credentials", str(path)])
    out = capsys.readouterr().out
    checks = {c["name"]: c for c in json.loads(out)}
    assert code == EXIT_PROBLEM
    assert checks["Visma Connect token"]["ok"] and not checks["Marketo settings"]["ok"]
    assert "munchkin_id" in checks["Marketo settings"]["detail"]
    assert env.marketo.credentials["client_secret"] not in out


# -- 4. bad credentials ------------------------------------------------------------------------------
def _put_secret(env, logical_id: str, value: dict[str, Any]) -> None:
    env.aws.client("secretsmanager").put_secret_value(SecretId=env.resource(logical_id),
                                                      SecretString=json.dumps(value))
    cold_start()


@pytest.fixture
def restore_secrets(env):
    yield
    _put_secret(env, "VismaCredentialsSecret", env.visma.credentials)
    _put_secret(env, "MarketoCredentialsSecret", env.marketo.credentials)


def test_wrong_visma_secret_fails_the_poll_naming_visma(env, cycles, restore_secrets):
    wrong = "wrong-visma-secret-4b1d"
    _put_secret(env, "VismaCredentialsSecret", {**env.visma.credentials, "client_secret": wrong})
    env.visma.store.edit_random(2, rng_seed=5)
    error = _poll_with(env, {})
    text = f"{error!r} {error}"
    assert "default/customer" in text and "default/supplier" in text
    assert "Visma Connect refused the token request" in text
    assert wrong not in text and env.visma.credentials["client_secret"] not in text
    assert queue_depth(env, "SyncQueue") == 0  # nothing half-sent; the watermark did not move
    _put_secret(env, "VismaCredentialsSecret", env.visma.credentials)
    report = env.cycle("credentials fixed")
    assert report.messages_sent == 2 and report.drain.failed == 0


def test_visma_secret_without_client_id_names_the_field_and_hides_the_secret(env, cycles, restore_secrets):
    secret = {k: v for k, v in env.visma.credentials.items() if k != "client_id"}
    _put_secret(env, "VismaCredentialsSecret", secret)
    error = _poll_with(env, {})
    text = f"{error!r} {error}"
    assert "VismaCredentials" in text and "client_id" in text and "Field required" in text
    secret = env.visma.credentials["client_secret"]
    assert secret[:6] not in text and secret[-6:] not in text  # not even a part of it


def test_wrong_marketo_secret_keeps_the_messages_for_retry(env, cycles, restore_secrets):
    wrong = "wrong-marketo-secret-9c2e"
    _put_secret(env, "MarketoCredentialsSecret", {**env.marketo.credentials, "client_secret": wrong})
    edited = env.visma.store.edit_random(3, rng_seed=6)
    before_quarantine = len(quarantine(env)) + len(quarantine(env, "_unknown"))
    poll = env.run_poller()
    sent = sum(e["messages_sent"] for e in poll["entities"])
    # >= : see test_marketo_outage_at_start_does_not_drop_describe_lengths for the extra message
    assert sent >= len(edited)
    queued = queue_depth(env, "SyncQueue")  # the records travel in packs: a message per entity's page
    assert 1 <= queued <= sent
    drained = env.drain(max_batches=1)
    assert drained.failed == queued and drained.handler_errors == 0
    assert queue_depth(env, "SyncQueue") == queued  # kept for retry ...
    assert queue_depth(env, "SyncDeadLetterQueue") == 0  # ... not dead-lettered ...
    assert len(quarantine(env)) + len(quarantine(env, "_unknown")) == before_quarantine  # ... nor quarantined
    errors = [j.error or "" for j in env.state().jobs.all("default") if j.status == "failed"]
    assert any("Marketo refused the client credentials" in e for e in errors), errors
    assert not any(wrong in e for e in errors)
    _put_secret(env, "MarketoCredentialsSecret", env.marketo.credentials)
    drained = env.drain()
    assert drained.failed == 0 and drained.succeeded == queued
    assert queue_depth(env, "SyncQueue") == 0 and queue_depth(env, "SyncDeadLetterQueue") == 0
    companies = marketo_companies(env)
    for entity, internal_id in edited:
        assert companies[company_key(env, entity, internal_id)]["company"] == \
            env.visma.store.record(entity, internal_id)["name"].strip()


def test_marketo_outage_at_start_does_not_drop_describe_lengths(env, cycles, restore_secrets):
    customer = env.visma.store.records("customer")[5]
    street = ("Lange gate 7, bakhuset " * 50)[:600]
    _put_secret(env, "MarketoCredentialsSecret", {**env.marketo.credentials, "client_secret": "wrong-1234"})
    env.visma.store.update("customer", customer["internalId"], mainAddress={"addressLine1": street})
    with contextlib.suppress(Exception):  # failing fast here would be a fine answer too
        env.run_poller()
    _put_secret(env, "MarketoCredentialsSecret", env.marketo.credentials)
    env.drain()
    env.cycle("Marketo credentials fixed")
    key = company_key(env, "customer", customer["internalId"])
    assert marketo_companies(env)[key]["billingStreet"] == street[:255]
    assert f"customer#{customer['internalId']}" not in quarantine(env)


def test_marketo_secret_without_client_id_names_the_field_and_hides_the_secret(env, cycles, restore_secrets):
    secret = env.marketo.credentials["client_secret"]
    _put_secret(env, "MarketoCredentialsSecret", {"client_secret": secret})
    with pytest.raises(Exception) as failure:
        env.run_poller()
    text = f"{failure.value!r} {failure.value}"
    assert "MarketoCredentials" in text and "client_id" in text and "Field required" in text
    assert secret[:6] not in text and secret[-6:] not in text
    body = _message(env, 9_200_020, "Hemmelig AS")
    result = invoke(env.stack, "WriterFunction", {"Records": [_record("secret-1", json.dumps(body))]}, env=env.env())
    assert result == {"batchItemFailures": [{"itemIdentifier": "secret-1"}]}  # kept for retry
    errors = [j.error or "" for j in env.state().jobs.all("default") if "secret-1" in j.message_ids]
    assert errors and all("client_id" in e and secret[:6] not in e and secret[-6:] not in e for e in errors)


def test_ping_reports_a_wrong_marketo_secret_on_the_marketo_side(env, tmp_path, capsys):
    wrong = "wrong-marketo-secret-1a7f"
    creds = PingCredentials.of_sandboxes(env.visma, env.marketo).model_dump()
    good = tmp_path / "good.json"
    good.write_text(json.dumps(creds))
    assert main(["--json", "ping", "--credentials", str(good)]) == 0  # leaves tokens for this client in the process
    capsys.readouterr()
    creds["marketo"]["client_secret"] = wrong
    path = tmp_path / "creds.json"
    path.write_text(json.dumps(creds))
    code = main(["--json", "ping", "--credentials", str(path)])  # must ask again, not pass on the cached token
    captured = capsys.readouterr()
    checks = json.loads(captured.out)
    assert code == EXIT_PROBLEM
    assert [c["ok"] for c in checks] == [True, True, False, False]
    assert "Marketo refused the client credentials" in checks[2]["detail"]
    assert wrong not in captured.out + captured.err


# -- long non-ASCII text against Marketo's 1 MB request limit (issue #14, item 2) --------------------------
def test_300_long_nordic_emoji_cjk_customers_all_land_in_marketo(tmp_path):
    """300 customers whose text is long and mostly non-ASCII: a chunk sized as UTF-8 must also be sent as
    UTF-8. Sent ASCII-escaped (ø -> \\u00f8, an emoji -> 12 bytes), this chunk grew past 1 MB, Marketo
    answered 413 on every delivery and the messages ended in the dead-letter queue.

    Its own environment, so the planted bad records above play no part (moto's state is per process: this
    resets the module's environment, which is why the test stays last)."""
    with LocalEnvironment(seed=97, customers=300, suppliers=0, log_path=tmp_path / "lambda.log") as big:
        for n, customer in enumerate(big.visma.store.records("customer")):
            big.visma.store.update("customer", customer["internalId"],
                                   name=f"{n} " + ("Ærøskøbing Smørbrød Blåbær 🚀 " * 12),  # cut to 255 by the mapping
                                   mainAddress={"addressLine1": ("東京中文公司" * 43)[:255],
                                                "city": ("🚀🧀🌲" * 85)[:255]},
                                   mainContact={"attention": ("서울中文" * 64)[:255]})
        report = big.cycle("long non-ASCII customers")
        verification = big.verify()
        assert verification.ok, verification.summary()
        assert report.created == 300 and report.skipped == 0
        assert report.drain is not None and report.drain.failed == 0
        assert queue_depth(big, "SyncDeadLetterQueue") == 0 and queue_depth(big, "SyncQueue") == 0
        assert quarantine(big) == {}
        stats = big.marketo.stats.snapshot()
        assert "413" not in stats["http_errors_by_status"]
        assert max(stats["body_bytes"]) > 800_000  # the chunk was near the limit: the test is about something
