"""Packed messages: the outbox packs records by count and bytes (as sent), the writer reads packs and single
records, quarantines a bad pack whole and a bad record alone, and merges a batch's records across packs and
connections of one Marketo account into full chunks, reporting back exactly the messages of a failed chunk."""

from __future__ import annotations

import base64
import json
import random
import string
import zlib
from typing import Any

from sync_fakes import NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, customer_mapping, minutes

from ml_connector.config import ConnectionConfig, RuntimeSettings
from ml_connector.marketo.models import SyncResult
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.messages import (
    MAX_INFLATED_BYTES,
    SyncMessage,
    deflate,
    pack_body,
    smallest_pack_body,
    unpack_body,
    unpack_messages,
)
from ml_connector.sync.outbox import SQS_MAX_BYTES, SqsOutbox, fits_in_sqs, message_body, pack_bodies
from ml_connector.sync.poller import Poller, QueueSink
from ml_connector.sync.writer import InboundMessage, Writer

MUNCHKIN = "123-ABC-456"


def connection(n: int, munchkin: str = MUNCHKIN, secret: str = "m") -> ConnectionConfig:
    return ConnectionConfig.model_validate({
        "id": f"c{n}", "visma": {"secret_id": f"v{n}"}, "marketo": {"secret_id": secret, "munchkin_id": munchkin}})


TEN = [connection(n) for n in range(1, 11)]  # ten connections, one Marketo instance and API user


def settings(*connections: ConnectionConfig) -> RuntimeSettings:
    return RuntimeSettings(state_table="t", connections=connections, safety_margin_seconds=5)


def poll(state: State, conn: ConnectionConfig, count: int, outbox: FakeOutbox, company: str | None = None) -> None:
    """One customer poll of ``count`` records into ``outbox`` (keys carry the company: distinct per connection)."""
    visma = FakeVisma([customer(i, f"{conn.id} firma {i}", NOW - minutes(5)) for i in range(1, count + 1)])
    Poller(state, QueueSink(state, outbox), clock=lambda: NOW).poll_entity(
        conn, visma, "customer", company_id=company or conn.id[1:], mapping=customer_mapping())


def record(n: int, text: str = "") -> SyncMessage:
    return SyncMessage.build(connection="c1", entity="customer", internal_id=n, number=str(n),
                             marketo_object="companies", dedupe_field="externalCompanyId", key=f"visma-1-customer-{n}",
                             modified_at=NOW, visma_timestamp="ts", fields={"company": f"Firma {n}", "note": text})


# -- packing ------------------------------------------------------------------------------------
def test_packs_hold_at_most_300_records_in_order():
    messages = [record(n) for n in range(650)]
    packs = [unpack_body(body).messages for body in pack_bodies(messages)]
    assert [len(p) for p in packs] == [300, 300, 50] and [m for p in packs for m in p] == messages


def scattered_text(n: int, characters: int) -> str:
    """Text that deflate cannot shrink much: random CJK, ÆØÅ and emoji (3, 2 and 4 bytes in UTF-8)."""
    alphabet = [chr(c) for c in range(0x4E00, 0x5E00)] + list("ÆØÅ😀")
    return "".join(random.Random(n).choices(alphabet, k=characters))


def test_packs_are_cut_by_the_bytes_sent_not_the_characters():
    # By characters (240,000 in all) these would fit in one pack; as sent, even deflated, they take two or more.
    messages = [record(n, scattered_text(n, 6_000)) for n in range(40)]
    bodies = pack_bodies(messages)
    assert len(bodies) >= 2
    assert [m for b in bodies for m in unpack_body(b).messages] == messages
    records = [message_body(m) for m in messages]
    sent = 0
    for body in bodies:
        assert len(body.encode("utf-8")) <= SQS_MAX_BYTES
        count = len(unpack_body(body).messages)
        if sent + count < len(records):  # full: with the next record, it would not have fitted
            assert len(smallest_pack_body(records[sent:sent + count + 1]).encode("utf-8")) > SQS_MAX_BYTES
        sent += count
    assert "ÆØÅ😀" in message_body(record(1, "ÆØÅ😀"))  # sent as UTF-8, not escaped to six bytes a character


def typical(n: int) -> SyncMessage:
    """A customer as the default mapping sends it: about 1.1 KB as JSON, like the sandbox's customers."""
    fields = {"company": f"Havbris Data {n} AS", "billingStreet": f"Nygata {n % 97}, Næringsparken",
              "billingCity": "Kristiansand", "billingPostalCode": f"{4600 + n % 50}", "billingCountry": "Norway",
              "website": None, "mainPhone": f"+47{38_000_000 + n * 7919 % 999_999}", "numberOfEmployees": n % 500,
              "vismaNumber": str(10_000 + n), "vismaEntity": "customer", "vismaStatus": "Active",
              "vismaClassId": "DOM", "vismaClass": "Domestic customers", "vismaSegment": "MID",
              "vismaPaymentTermsId": "30D", "vismaPaymentTerms": "30 days net", "vismaPaymentStatus": "current",
              "vismaCurrency": "NOK", "vismaCorporateId": f"{986_000_000 + n * 31}", "vismaContactName": "Nina Berg",
              "vismaContactEmail": f"faktura{n}@havbris-data.example", "vismaLastModified": "2025-08-02T04:13:00Z",
              "vismaBalance": float(n % 13) * 1000.5, "vismaOverdueAmount": 0.0, "vismaDunningLevel": n % 3}
    return SyncMessage.build(connection="default", entity="customer", internal_id=10_000 + n, number=str(10_000 + n),
                             marketo_object="companies", dedupe_field="externalCompanyId",
                             key=f"visma-1234567-customer-{10_000 + n}", modified_at=NOW,
                             visma_timestamp=base64.b64encode((n + 2**40).to_bytes(8, "big")).decode(),
                             fields=fields)


def test_a_full_call_of_typical_records_travels_as_one_message():
    messages = [typical(n) for n in range(300)]
    assert len(pack_body([message_body(m) for m in messages]).encode("utf-8")) > SQS_MAX_BYTES  # plain: two
    [body] = pack_bodies(messages)
    assert len(body) < SQS_MAX_BYTES / 3  # deflated, and in fewer of SQS's 64 KB billing chunks
    assert unpack_body(body).messages == messages


def test_a_pack_is_sent_plain_when_deflating_does_not_make_it_smaller():
    noise = "".join(random.Random(1).choices([c for c in string.printable[:94] if c not in '"\\'], k=3_000))
    [body] = pack_bodies([record(1, noise)])  # base64 of what deflate leaves of random ASCII is longer
    assert json.loads(body)["pack"] == 1 and unpack_body(body).messages == [record(1, noise)]


def test_a_record_fits_only_if_it_fits_in_a_pack_of_its_own():
    base = len(message_body(record(1)).encode("utf-8"))
    exactly = record(1, "x" * (SQS_MAX_BYTES - base))  # the bare record is 256 KiB: the pack around it is not
    assert len(message_body(exactly).encode("utf-8")) == SQS_MAX_BYTES and not fits_in_sqs(exactly)
    [body] = pack_bodies([record(1, "x" * (SQS_MAX_BYTES - base - 40))])
    assert len(body.encode("utf-8")) <= SQS_MAX_BYTES


class RecordingSqs:
    def __init__(self) -> None:
        self.entries: list[list[dict[str, Any]]] = []

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        self.entries.append(Entries)
        return {"Successful": [{"Id": e["Id"]} for e in Entries]}


def test_the_outbox_sends_a_page_of_records_as_few_messages():
    sqs = RecordingSqs()
    assert SqsOutbox("https://sqs.invalid/q", client=sqs).send([record(n) for n in range(1000)]) == 1000
    bodies = [e["MessageBody"] for batch in sqs.entries for e in batch]
    assert [len(unpack_body(b).messages) for b in bodies] == [300, 300, 300, 100]
    for batch in sqs.entries:
        assert len(batch) <= 10 and sum(len(e["MessageBody"].encode()) for e in batch) <= SQS_MAX_BYTES


# -- reading ------------------------------------------------------------------------------------
def test_the_writer_reads_deflated_and_plain_packs_and_single_record_messages_alike():
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    poll(state, TEN[0], 30, outbox)
    deflated, single = outbox.packed()[0], outbox.inbound()[-1]  # a message from before packs
    assert json.loads(deflated.body)["pack"] == 2 and len(unpack_body(deflated.body).messages) == 30
    plain = InboundMessage("plain", pack_body([m.model_dump_json() for m in unpack_body(deflated.body).messages[:5]]))
    report = Writer(settings(TEN[0]), state, lambda _c: marketo).process([deflated, single, plain])
    assert report.created == 30 and report.superseded == 6 and marketo.calls == [30]
    assert report.records == 36 and report.messages == 3 and not report.failed_message_ids


def plain_pack(body: str) -> dict[str, Any]:
    """A pack as its plain JSON object, whichever form it was sent in."""
    data = json.loads(body)
    return json.loads(zlib.decompress(base64.b64decode(data["deflated"]))) if data["pack"] == 2 else data


def test_a_bad_record_in_a_pack_is_quarantined_alone():
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    poll(state, TEN[0], 5, outbox)
    [pack] = outbox.packed()
    data = plain_pack(pack.body)
    data["messages"][1]["internal_id"] = "not a number"
    data["messages"][3]["marketo_object"] = "../leads/delete"  # valid shape, but not the mapping's object
    report = Writer(settings(TEN[0]), state, lambda _c: marketo).process([InboundMessage("p0", json.dumps(data))])
    assert report.invalid == 2 and report.created == 3 and marketo.calls == [3] and not report.failed_message_ids
    entries = {e.ref: e for e in state.quarantine.entries("_unknown")}
    assert set(entries) == {"p0#1", "p0#c1/customer/4"}
    assert "internal_id" in entries["p0#1"].reason and json.loads(entries["p0#1"].raw)["internal_id"] == "not a number"
    assert "by its mapping" in entries["p0#c1/customer/4"].reason


def test_a_malformed_pack_is_quarantined_whole_with_its_reason():
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    poll(state, TEN[0], 2, outbox)
    [good] = outbox.packed()
    def deflated(inner: str) -> str:
        return json.dumps({"pack": 2, "deflated": deflate(inner.encode())})

    bad = {"future": json.dumps({"pack": 3, "messages": []}), "not-a-list": json.dumps({"pack": 1, "messages": {}}),
           "extra-key": json.dumps({"pack": 1, "messages": [], "x": 1}), "not-json": '{"pack": 1, "mess',
           "not-base64": json.dumps({"pack": 2, "deflated": "eJ*!"}),
           "not-zlib": json.dumps({"pack": 2, "deflated": base64.b64encode(b"plain text").decode()}),
           "truncated": json.dumps({"pack": 2, "deflated": deflate(b'{"pack":1,"messages":[]}' * 50)[:-12]}),
           "holds-a-list": deflated("[]"), "holds-a-deflated-pack": deflated(deflated('{"pack":1,"messages":[]}')),
           "holds-no-json": deflated('{"pack":1,'), "deflated-not-text": json.dumps({"pack": 2, "deflated": 7})}
    report = Writer(settings(TEN[0]), state, lambda _c: marketo).process(
        [good, *(InboundMessage(ref, body) for ref, body in bad.items())])
    assert report.invalid == len(bad) and report.created == 2 and not report.failed_message_ids
    entries = {e.ref: e.reason for e in state.quarantine.entries("_unknown")}
    assert set(entries) == set(bad) and "Invalid JSON" in entries["not-json"]
    for ref in ("future", "not-a-list", "extra-key", "holds-a-deflated-pack"):
        assert "version-1 or -2 pack" in entries[ref], entries[ref]
    assert "not base64 zlib" in entries["not-base64"] and "not base64 zlib" in entries["not-zlib"]
    assert "truncated" in entries["truncated"] and "not hold a JSON object" in entries["holds-a-list"]
    assert "does not hold JSON" in entries["holds-no-json"] and "not a string" in entries["deflated-not-text"]


def test_a_deflated_pack_that_inflates_beyond_300_full_records_is_refused_without_inflating_it_all():
    bomb = json.dumps({"pack": 2, "deflated": deflate(b" " * (MAX_INFLATED_BYTES + 1), 9)})
    assert len(bomb) < 200_000  # well within SQS's 256 KiB
    state, marketo = memory_state(), FakeMarketo()
    report = Writer(settings(TEN[0]), state, lambda _c: marketo).process([InboundMessage("bomb", bomb)])
    [entry] = state.quarantine.entries("_unknown")
    assert report.invalid == 1 and entry.ref == "bomb" and "inflates beyond" in entry.reason


# -- chunks across packs and connections ---------------------------------------------------------
def test_ten_connections_on_one_instance_share_full_chunks():
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    for conn in TEN:
        poll(state, conn, 50, outbox)
    inbound = outbox.packed()
    assert len(inbound) == 10  # a part-filled pack per connection
    report = Writer(settings(*TEN), state, lambda _c: marketo).process(inbound)
    assert sorted(marketo.calls, reverse=True) == [300, 200]  # one connection at a time: ten calls of 50
    assert report.created == 500 and report.marketo_calls == 2 and not report.failed_message_ids
    assert {c: counts["RecordsWritten"] for c, counts in report.by_connection.items()} == {c.id: 50 for c in TEN}
    for conn in TEN:  # each record's state and the job's share belong to the record's own connection
        assert all(s.written_version for s in state.records.get(conn.id, "customer", range(1, 51)).values())
        assert sum(j.created for j in state.jobs.all(conn.id)) == 50
    assert {j.job_id for c in TEN for j in state.jobs.all(c.id)} == set(report.jobs)


def test_connections_with_other_credentials_or_instances_keep_their_own_calls():
    other_user, other_instance = connection(2, secret="m2"), connection(3, munchkin="456-DEF-789")
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    for conn in (TEN[0], other_user, other_instance):
        poll(state, conn, 10, outbox)
    Writer(settings(TEN[0], other_user, other_instance), state, lambda _c: marketo).process(outbox.packed())
    assert marketo.calls == [10, 10, 10]


def test_one_key_from_two_connections_is_never_twice_in_one_call():
    state, marketo, outbox = memory_state(), FakeMarketo(), FakeOutbox()
    keys_per_call: list[list[str]] = []
    marketo.before_apply = lambda records: keys_per_call.append([r["externalCompanyId"] for r in records])
    poll(state, TEN[0], 20, outbox, company="1")
    poll(state, TEN[1], 20, outbox, company="1")  # the same Visma company twice: the same Marketo keys
    report = Writer(settings(*TEN[:2]), state, lambda _c: marketo).process(outbox.packed())
    assert report.created + report.updated == 40 and marketo.calls == [20, 20]
    assert all(len(set(keys)) == len(keys) for keys in keys_per_call)  # Marketo refuses a repeated key (1036)


class FailingCall(FakeMarketo):
    """Fails, once, the call that carries any of ``keys`` with a transport error (chunks go out side by side, so
    which call comes second is not fixed)."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        if self.keys & {str(r[dedupe_field]) for r in records}:
            self.keys = set()
            raise ConnectionError("connection reset by peer")
        return super().sync_records(target, records, dedupe_field)


def test_a_failed_chunk_returns_exactly_the_messages_holding_its_records():
    state, marketo = memory_state(), FailingCall()
    outboxes = [FakeOutbox() for _ in range(3)]
    for conn, outbox in zip(TEN[:3], outboxes, strict=True):
        poll(state, conn, 200, outbox)
    a, b, c = (outbox.packed(prefix=f"{conn.id}-")[0] for conn, outbox in zip(TEN, outboxes, strict=False))
    marketo.keys = {m.key for m in unpack_body(c.body).messages}  # the call holding C's records fails
    report = Writer(settings(*TEN[:3]), state, lambda _c: marketo).process([a, b, c])
    # 600 records: the first chunk is A's 200 and 100 of B's, the second (failed) B's other 100 and C's 200.
    assert marketo.calls == [300] and report.created == 300
    assert report.failed_message_ids == {b.message_id, c.message_id}  # A's records are all written
    failed = [j for conn in TEN[1:3] for j in state.jobs.all(conn.id) if j.status == "failed"]
    assert sorted((j.connection, j.records, j.message_ids) for j in failed) == [
        ("c2", 100, [b.message_id]), ("c3", 200, [c.message_id])]
    assert len({j.job_id for j in failed}) == 1
    assert sum(len(unpack_messages(j.messages or "")) for j in failed) == 300  # what a replay sends
    # SQS delivers B and C again: B's records already written cost nothing, the rest is written.
    again = Writer(settings(*TEN[:3]), state, lambda _c: marketo).process([b, c])
    assert again.unchanged == 100 and again.created == 300 and marketo.calls == [300, 300]


def test_packs_of_several_connections_leave_one_part_filled_chunk_per_instance():
    state, outbox = memory_state(), FakeOutbox()
    second = [connection(n, munchkin="456-DEF-789", secret="m2") for n in range(11, 14)]
    for conn in TEN[:4]:
        poll(state, conn, 220, outbox)
    for conn in second:
        poll(state, conn, 130, outbox)
    instances = {MUNCHKIN: FakeMarketo(), "456-DEF-789": FakeMarketo()}
    munchkin_of = {c.id: c.marketo.munchkin_id for c in (*TEN[:4], *second)}
    report = Writer(settings(*TEN[:4], *second), state, lambda c: instances[munchkin_of[c]]).process(outbox.packed())
    assert sorted(instances[MUNCHKIN].calls) == [280, 300, 300]  # 880 records: ideal ceil(880 / 300) = 3
    assert sorted(instances["456-DEF-789"].calls) == [90, 300]  # 390 records: 2
    assert report.created == 880 + 390
