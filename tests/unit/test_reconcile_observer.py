"""Full reconcile on the in-memory state and fakes: when a full read is due, deletions by mode (keep, flag,
delete), records that reappear, drift repair, and that a second reconcile does nothing more."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sync_fakes import CONNECTION, NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, customer_mapping, minutes, write

from ml_connector.config import ConnectionConfig
from ml_connector.marketo.models import ObjectDescription, SyncResult
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.deletions import IdSet
from ml_connector.sync.drift import same_in_marketo
from ml_connector.sync.mapping import (
    DeletionRule,
    EntityMapping,
    FieldRule,
    MappingError,
    check_against_marketo,
    parse_mapping,
)
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink
from ml_connector.sync.reconcile import Reconciler
from ml_connector.sync.writer import InboundMessage


class ReconcileMarketo(FakeMarketo):
    """The fake Marketo, plus what a reconcile asks of it: read back by key, delete by key or by id."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[int] = []  # keys per read-back call
        self.deletes: list[list[str]] = []
        self.refuse_delete: set[str] = set()

    def _apply(self, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        """An update changes only the fields sent (Marketo's createOrUpdate), not the whole record."""
        before = {r[dedupe_field]: self.companies.get(r[dedupe_field], {}) for r in records}
        results = super()._apply(records, dedupe_field)
        for key, old in before.items():
            if key in self.companies:
                self.companies[key] = {**old, **self.companies[key]}
        return results

    def get_records(self, target: str, filter_type: str, values: list[str], fields: list[str]
                    ) -> list[dict[str, Any]]:
        assert len(values) <= 300
        self.reads.append(len(values))
        return [{f: self.companies[v][f] for f in fields if self.companies[v].get(f) is not None}
                for v in values if v in self.companies]

    def delete_records(self, target: str, dedupe_field: str, keys: list[str]) -> list[SyncResult]:
        self.deletes.append(list(keys))
        results = []
        for seq, key in enumerate(keys):
            if key in self.refuse_delete:
                results.append(SyncResult.model_validate(
                    {"seq": seq, "status": "skipped", "reasons": [{"code": "611", "message": "System error"}]}))
            elif self.companies.pop(key, None) is None:
                results.append(SyncResult.model_validate(
                    {"seq": seq, "status": "skipped", "reasons": [{"code": "1013", "message": "Record not found"}]}))
            else:
                results.append(SyncResult(seq=seq, status="deleted"))
        return results

    def delete_leads(self, ids: list[int]) -> list[SyncResult]:
        raise AssertionError("companies are not deleted as leads")


def inbound(messages: list[SyncMessage]) -> list[InboundMessage]:
    return [InboundMessage(f"late{i}", m.model_dump_json()) for i, m in enumerate(messages)]


def with_deletions(mode: str, **rule: Any) -> EntityMapping:
    return customer_mapping().model_copy(update={"deletions": DeletionRule(mode=mode, **rule)})  # type: ignore[arg-type]


class Stack:
    """Visma, the queue, the writer and Marketo around one memory state; polls with the reconciler."""

    def __init__(self, mapping: EntityMapping, connection: ConnectionConfig = CONNECTION, count: int = 6) -> None:
        self.state: State = memory_state()
        self.visma = FakeVisma([customer(i, f"Customer {i}", NOW - minutes(60 - i)) for i in range(1, count + 1)])
        self.marketo = ReconcileMarketo()
        self.mapping = mapping
        self.connection = connection
        self.clock = NOW

    def poll(self) -> EntityPollReport:
        """One poll (a full read if due), then everything it queued written to Marketo."""
        outbox = FakeOutbox()
        reconciler = Reconciler(self.state, outbox, lambda _c: self.marketo, lambda _c, _e: self.mapping)
        report = Poller(self.state, QueueSink(self.state, outbox), clock=lambda: self.clock,
                        full_reads=reconciler).poll_entity(self.connection, self.visma, "customer", company_id="1",
                                                           mapping=self.mapping)
        self.sent = outbox.sent
        self.first = getattr(self, "first", outbox.sent)  # what the first poll queued
        write(self.state, self.marketo, outbox.inbound())
        return report

    def request(self) -> None:
        self.clock += timedelta(minutes=5)
        self.state.reconciles.request(self.connection.id, "customer", self.clock - timedelta(seconds=1))

    def key(self, internal_id: int) -> str:
        return f"visma-1-customer-{internal_id}"


def test_a_first_poll_is_a_full_read_and_then_none_is_due_until_the_interval_passes_or_one_is_requested():
    stack = Stack(with_deletions("keep"))
    assert stack.poll().full_read  # never reconciled: due (it reads everything anyway)
    stack.clock += timedelta(hours=1)
    assert not stack.poll().full_read
    stack.request()
    assert stack.poll().full_read
    stack.clock += timedelta(hours=167)
    assert not stack.poll().full_read
    stack.clock += timedelta(hours=1, minutes=1)
    assert stack.poll().full_read  # a week after the last one started


def test_a_zero_interval_reconciles_only_on_request():
    off = CONNECTION.model_copy(update={"reconcile_interval_hours": 0})
    stack = Stack(with_deletions("keep"), connection=off)
    assert not stack.poll().full_read
    stack.clock += timedelta(days=30)
    assert not stack.poll().full_read
    stack.request()
    assert stack.poll().full_read


def test_keep_counts_records_gone_from_visma_leaves_marketo_alone_and_counts_them_once():
    stack = Stack(with_deletions("keep"))
    stack.poll()
    del stack.visma.records[2], stack.visma.records[5]
    stack.request()
    report = stack.poll()
    assert report.reconcile["deleted_in_visma"] == 2 and report.reconcile["kept"] == 2
    assert set(stack.marketo.companies) == {stack.key(i) for i in range(1, 7)}
    stack.request()
    again = stack.poll()
    assert again.full_read and again.reconcile["deleted_in_visma"] == 0


def test_flag_sets_the_field_through_the_queue_once_and_a_record_that_reappears_is_written_again():
    stack = Stack(with_deletions("flag", field="vismaStatus", value="deleted"))
    stack.poll()
    gone = stack.visma.records.pop(3)
    stack.request()
    report = stack.poll()
    assert report.reconcile["flagged"] == 1
    assert [(m.internal_id, m.fields) for m in stack.sent] == [(3, {"vismaStatus": "deleted"})]
    assert stack.marketo.companies[stack.key(3)]["vismaStatus"] == "deleted"
    assert stack.marketo.companies[stack.key(3)]["company"] == "Customer 3"  # only the flag changed
    stack.request()
    assert stack.poll().reconcile["deleted_in_visma"] == 0 and stack.sent == []
    stack.visma.put(gone)  # back in Visma, unchanged: Marketo holds the flag, so it is sent again
    stack.request()
    back = stack.poll()
    assert back.reconcile["reappeared"] == 1
    assert stack.marketo.companies[stack.key(3)]["vismaStatus"] == "Active"


def test_delete_removes_marketo_records_counts_not_found_as_gone_and_retries_what_marketo_refused():
    stack = Stack(with_deletions("delete"))
    stack.poll()
    for internal_id in (1, 4, 6):
        del stack.visma.records[internal_id]
    del stack.marketo.companies[stack.key(4)]  # deleted by hand in Marketo already
    stack.marketo.refuse_delete = {stack.key(6)}
    stack.request()
    report = stack.poll().reconcile
    assert (report["deleted_in_visma"], report["deleted_in_marketo"], report["already_gone"],
            report["delete_failed"]) == (3, 1, 1, 1)
    assert stack.key(1) not in stack.marketo.companies and stack.key(6) in stack.marketo.companies
    assert len(stack.marketo.deletes) == 1  # one call for the batch
    stack.marketo.refuse_delete = set()
    stack.request()
    retry = stack.poll().reconcile
    assert (retry["deleted_in_visma"], retry["deleted_in_marketo"]) == (1, 1)  # only the refused one
    stack.request()
    assert stack.poll().reconcile["deleted_in_visma"] == 0
    assert stack.marketo.deletes[-1] == [stack.key(6)]


def test_a_record_deleted_in_marketo_and_back_in_visma_is_created_again():
    stack = Stack(with_deletions("delete"))
    stack.poll()
    gone = stack.visma.records.pop(2)
    stack.request()
    stack.poll()
    assert stack.key(2) not in stack.marketo.companies
    stack.visma.put(gone)
    stack.request()
    assert stack.poll().reconcile["reappeared"] == 1
    assert stack.marketo.companies[stack.key(2)]["company"] == "Customer 2"


def test_drift_repair_resends_records_edited_by_hand_in_marketo_and_counts_them():
    drift = CONNECTION.model_copy(update={"drift_repair": True})
    stack = Stack(with_deletions("keep"), connection=drift)
    assert stack.poll().reconcile["drifted"] == 0  # the first full read: nothing written yet to compare with
    assert stack.marketo.reads == []
    stack.marketo.companies[stack.key(2)]["company"] = "Edited by hand"
    del stack.marketo.companies[stack.key(5)]  # removed by hand
    stack.request()
    report = stack.poll()
    assert report.reconcile["drifted"] == 2
    assert sorted(m.internal_id for m in stack.sent) == [2, 5]
    assert stack.marketo.companies[stack.key(2)]["company"] == "Customer 2"
    assert stack.marketo.companies[stack.key(5)]["company"] == "Customer 5"
    assert stack.marketo.reads == [3, 3]  # one read-back per page (page size 3), all keys at once
    stack.request()
    assert stack.poll().reconcile["drifted"] == 0


def test_without_drift_repair_marketo_is_not_read_back():
    stack = Stack(with_deletions("keep"))
    stack.poll()
    stack.marketo.companies[stack.key(2)]["company"] = "Edited by hand"
    stack.request()
    assert stack.poll().reconcile["drifted"] == 0
    assert stack.marketo.reads == []


@pytest.mark.parametrize(("held", "mapped"), [
    ("5", 5), (5.0, 5), (True, "true"), ("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00"),
    (None, ""), (None, None)])
def test_values_equal_as_marketo_stores_them_are_not_drift(held: Any, mapped: Any):
    assert same_in_marketo(held, mapped)


@pytest.mark.parametrize(("held", "mapped"), [("Acme", "Acme AS"), (None, "x"), ("2026-01-02T03:04:05Z", "2026-01-02"),
                                              (False, True), ("6", 5)])
def test_different_values_are_drift(held: Any, mapped: Any):
    assert not same_in_marketo(held, mapped)


def test_seen_ids_are_held_compactly_and_answer_membership():
    ids = IdSet(iter([5, 3, 9, 3]))
    assert list(ids) == [3, 5, 9] and 5 in ids and 4 not in ids and "5" not in ids and len(ids) == 3


def section(**deletions: Any) -> dict[str, Any]:
    return {"target": "leads", "dedupe_field": "email", "key_source": {"source": "email"},
            "fields": {"lastName": {"source": "name"}}, "deletions": deletions}


def test_bad_deletion_settings_fail_at_load_naming_the_field():
    with pytest.raises(MappingError, match="needs field"):
        parse_mapping({"contact": section(mode="flag")}, "m.json")
    with pytest.raises(MappingError, match="delete_leads"):
        parse_mapping({"contact": section(mode="delete")}, "m.json")
    with pytest.raises(MappingError, match="field applies only to mode 'flag'"):
        parse_mapping({"contact": section(mode="keep", field="x")}, "m.json")
    with pytest.raises(MappingError, match="mode"):
        parse_mapping({"contact": section(mode="purge")}, "m.json")
    chosen = parse_mapping({"contact": section(mode="delete", delete_leads=True)}, "m.json").contact
    assert chosen is not None and chosen.deletions.mode == "delete"


def test_a_flag_field_marketo_does_not_have_fails_the_check_against_marketo():
    mapping = with_deletions("flag", field="vismaGone")
    described = ObjectDescription.model_validate({
        "name": "companies", "id_field": "id", "dedupe_fields": ["externalCompanyId"],
        "fields": {name: {"name": name, "data_type": "string"} for name in mapping.fields}})
    with pytest.raises(MappingError, match="deletions.field 'vismaGone'"):
        check_against_marketo(mapping, described, "m.json")


def test_reconcile_config_defaults_weekly_without_drift_repair():
    assert (CONNECTION.reconcile_interval_hours, CONNECTION.drift_repair) == (168, False)


def test_a_gone_record_whose_key_a_live_record_still_has_is_left_alone_in_marketo():
    """Keys built from the record (a lead's e-mail) can be shared: deleting the Marketo record of a contact gone
    from Visma would delete the person another contact still maps to."""
    by_name = with_deletions("delete").model_copy(update={"key_source": FieldRule(source="name")})
    stack = Stack(by_name)
    stack.visma.records[2]["name"] = stack.visma.records[3]["name"] = "Shared AS"
    stack.poll()  # the writer keeps one version per key: 3's (the newer); 2 is never recorded as written
    del stack.visma.records[3], stack.visma.records[4]
    stack.request()
    report = stack.poll().reconcile
    assert (report["deleted_in_visma"], report["key_in_use"], report["deleted_in_marketo"]) == (2, 1, 1)
    assert "Shared AS" in stack.marketo.companies and "Customer 4" not in stack.marketo.companies
    stack.request()
    assert stack.poll().reconcile["deleted_in_visma"] == 0


def test_a_stale_message_written_after_the_delete_is_deleted_again_by_the_next_reconcile():
    """SQS delivers late and twice: a deleted record's old message can land after the delete and create the
    Marketo record again; the gone mark must not hide it from the next reconcile."""
    stack = Stack(with_deletions("delete"))
    stack.poll()
    stale = [m for m in inbound(stack.first) if '"internal_id":5' in m.body]
    del stack.visma.records[5]
    stack.request()
    assert stack.poll().reconcile["deleted_in_marketo"] == 1
    write(stack.state, stack.marketo, stale)
    assert stack.key(5) in stack.marketo.companies  # back in Marketo, recorded as written
    stack.request()
    again = stack.poll().reconcile
    assert (again["deleted_in_visma"], again["acted_again"], again["deleted_in_marketo"]) == (0, 1, 1)
    assert stack.key(5) not in stack.marketo.companies


def test_a_flag_overwritten_by_a_stale_message_is_set_again():
    stack = Stack(with_deletions("flag", field="vismaStatus"))
    stack.poll()
    stale = [m for m in inbound(stack.first) if '"internal_id":5' in m.body]
    del stack.visma.records[5]
    stack.request()
    stack.poll()
    assert stack.marketo.companies[stack.key(5)]["vismaStatus"] == "deleted"
    write(stack.state, stack.marketo, stale)  # the same version as the flag's: its content is written over it
    assert stack.marketo.companies[stack.key(5)]["vismaStatus"] == "Active"
    stack.request()
    assert stack.poll().reconcile["acted_again"] == 1
    assert stack.marketo.companies[stack.key(5)]["vismaStatus"] == "deleted"
    stack.request()
    assert stack.poll().reconcile["acted_again"] == 0


def test_a_failing_reconcile_is_reported_the_watermark_stays_advanced_and_it_is_tried_again():
    stack = Stack(with_deletions("delete"))
    stack.poll()
    del stack.visma.records[1]

    def refuse(*_args: Any) -> list[SyncResult]:
        raise RuntimeError("Marketo said 611")

    stack.marketo.delete_records = refuse  # type: ignore[method-assign]
    stack.request()
    stack.visma.put(customer(9, "New AS", stack.clock))
    report = stack.poll()
    assert report.complete and report.error == "reconcile: RuntimeError: Marketo said 611"
    assert report.watermark_after is not None and report.watermark_after > (report.watermark_before or "")
    del stack.marketo.delete_records
    stack.clock += timedelta(minutes=5)
    retry = stack.poll()
    assert retry.full_read and retry.reconcile["deleted_in_marketo"] == 1  # the request still stood
