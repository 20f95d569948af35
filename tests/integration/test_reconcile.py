"""Issue #16 part 4 through the local stack: records deleted in Visma and fields edited by hand in Marketo,
then ``ml-connector reconcile``. One connection's mapping uses every deletion mode (customers: flag
``vismaStatus`` = ``deleted``; suppliers: delete; contacts, as leads: keep) with drift repair on. Asserted on
what the Marketo sandbox holds and counted, and that a second reconcile does nothing more."""

from __future__ import annotations

import contextlib
import io
import json
from typing import Any

import pytest

from cli.main import EXIT_OK, main
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH
from sandbox.marketo import MarketoSandbox
from sandbox.marketo.schema import COMPANY
from sandbox.visma import VismaSandbox

pytestmark = pytest.mark.integration

COMPANY_ID = "5550001"
MODES = {"customer": {"mode": "flag", "field": "vismaStatus", "value": "deleted"},
         "supplier": {"mode": "delete"}, "contact": {"mode": "keep"}}


def key(entity: str, internal_id: int) -> str:
    return f"visma-{COMPANY_ID}-{entity}-{internal_id}"


def run(*args: str) -> tuple[int, Any]:
    """The CLI as an operator runs it, its --json output read back (the command prints to the stdout it starts
    with)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["--json", *args])
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else None


def reports(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["entity"]: r for r in data["poll"] if r["connection"] == "recon"}


@pytest.fixture(scope="module")
def stack(local_stack, tmp_path_factory):
    env = local_stack(seed=41, customers=3, suppliers=1)
    mapping = json.loads(DEFAULT_MAPPING_PATH.with_name("with-contacts-as-leads.json").read_text())
    for entity, rule in MODES.items():
        mapping[entity]["deletions"] = rule
    folder = tmp_path_factory.mktemp("reconcile")
    (folder / "mapping.json").write_text(json.dumps(mapping))
    with VismaSandbox(seed=42, customers=24, suppliers=8, company_id=COMPANY_ID) as visma, \
            MarketoSandbox(munchkin_id="456-DEF-789") as marketo:
        env.add_connection("recon", visma, marketo, mapping=str(folder / "mapping.json"), drift_repair=True)
        target = folder / "target.json"
        env.local_target().write(target)
        yield env, visma, marketo, str(target)


@pytest.fixture(scope="module")
def reconciled(stack):
    """The first load, then deletions in Visma and hand edits in Marketo, then two reconciles."""
    env, visma, marketo, target = stack
    code, first = run("sync", "--once", "--target-file", target)
    assert code == EXIT_OK, first
    customers = [r["internalId"] for r in visma.store.records("customer")][:3]
    suppliers = [r["internalId"] for r in visma.store.records("supplier")][:2]
    numbers = {c: visma.store.record("customer", c)["number"] for c in customers}
    contacts = [c for n in numbers.values() for c in visma.store.contacts(n) if c.get("email")]
    for internal_id in customers:
        visma.store.delete("customer", internal_id)
    for internal_id in suppliers:
        visma.store.delete("supplier", internal_id)
    kept_customer = visma.store.records("customer")[0]
    marketo.store.edit(COMPANY, (key("customer", kept_customer["internalId"]),), {"company": "Edited by hand"})
    lead = next(lead for lead in marketo.store.leads() if lead["email"] not in {c["email"] for c in contacts})
    marketo.store.edit_lead(lead["email"], {"lastName": "Edited by hand"})
    marketo.stats.reset()
    code, once = run("reconcile", "--connection", "recon", "--target-file", target)
    assert code == EXIT_OK, once
    deletes_after_first = marketo.stats.snapshot()["delete_calls"]
    code, twice = run("reconcile", "--connection", "recon", "--target-file", target)
    assert code == EXIT_OK, twice
    return {"first": first, "once": once, "twice": twice, "customers": customers, "suppliers": suppliers,
            "contacts": contacts, "kept_customer": kept_customer, "lead": lead,
            "deletes_after_first": deletes_after_first}


def test_every_entity_is_read_in_full_and_reports_what_it_found(reconciled):
    once = reports(reconciled["once"])
    assert all(r["full_read"] and r["error"] is None for r in once.values()), once
    assert once["customer"]["reconcile"]["deleted_in_visma"] == 3
    assert once["supplier"]["reconcile"]["deleted_in_visma"] == 2
    assert once["contact"]["reconcile"]["deleted_in_visma"] == len(reconciled["contacts"]) > 0


def test_flag_marks_the_companies_of_deleted_customers_and_changes_nothing_else(stack, reconciled):
    _, _, marketo, _ = stack
    assert reports(reconciled["once"])["customer"]["reconcile"]["flagged"] == 3
    companies = {c["externalCompanyId"]: c for c in marketo.store.companies()}
    for internal_id in reconciled["customers"]:
        company = companies[key("customer", internal_id)]
        assert company["vismaStatus"] == "deleted"
        assert company["vismaNumber"]  # the rest of the record stays as written
    others = [c for k, c in companies.items() if k.startswith(key("customer", 0)[:-1])
              and int(k.rsplit("-", 1)[1]) not in reconciled["customers"]]
    assert others and all(c["vismaStatus"] != "deleted" for c in others)


def test_delete_removes_the_companies_of_deleted_suppliers_in_one_call(stack, reconciled):
    _, _, marketo, _ = stack
    report = reports(reconciled["once"])["supplier"]["reconcile"]
    assert (report["deleted_in_marketo"], report["delete_failed"]) == (2, 0)
    held = {c["externalCompanyId"] for c in marketo.store.companies()}
    assert not {key("supplier", i) for i in reconciled["suppliers"]} & held
    assert reconciled["deletes_after_first"] == 1  # two records, one Delete Companies call


def test_keep_leaves_the_leads_of_deleted_contacts_in_marketo(stack, reconciled):
    _, _, marketo, _ = stack
    assert reports(reconciled["once"])["contact"]["reconcile"]["kept"] == len(reconciled["contacts"])
    for contact in reconciled["contacts"]:
        assert marketo.store.lead_by_email(contact["email"]) is not None


def test_fields_edited_by_hand_in_marketo_are_repaired_and_counted(stack, reconciled):
    _, _, marketo, _ = stack
    once = reports(reconciled["once"])
    assert once["customer"]["reconcile"]["drifted"] == 1 and once["contact"]["reconcile"]["drifted"] == 1
    company = next(c for c in marketo.store.companies()
                   if c["externalCompanyId"] == key("customer", reconciled["kept_customer"]["internalId"]))
    assert company["company"] == reconciled["kept_customer"]["name"]
    lead = marketo.store.lead_by_email(reconciled["lead"]["email"])
    assert lead is not None and lead["lastName"] != "Edited by hand"
    assert reconciled["once"]["write"]["failed"] == 0


def test_status_shows_when_each_entity_was_last_reconciled(stack, reconciled):
    code, status = run("status", "--target-file", stack[3])
    assert code == EXIT_OK
    recon = {e["entity"]: e for e in status["entities"] if e["connection"] == "recon"}
    assert set(recon) == {"customer", "supplier", "contact"}
    assert all(e["last_reconcile"] and not e["reconcile_requested"] for e in recon.values()), recon
    assert "deleted_in_visma" in recon["supplier"]["last_reconcile_counts"]


def test_a_second_reconcile_finds_nothing_more_to_do(stack, reconciled):
    _, _, marketo, _ = stack
    twice = reports(reconciled["twice"])
    assert all(r["full_read"] for r in twice.values())
    for entity, report in twice.items():
        assert report["messages_sent"] == 0, entity
        assert not any(report["reconcile"].values()), (entity, report["reconcile"])
    assert marketo.stats.snapshot()["delete_calls"] == reconciled["deletes_after_first"]


def test_a_reconcile_of_one_entity_reads_only_that_one_in_full(stack):
    _, _, _, target = stack
    code, data = run("reconcile", "--connection", "recon", "--entity", "supplier", "--target-file", target)
    assert code == EXIT_OK, data
    assert {e: r["full_read"] for e, r in reports(data).items()} == {
        "customer": False, "supplier": True, "contact": False}


def test_an_unknown_connection_fails_naming_it(stack, capsys):
    _, _, _, target = stack
    assert main(["reconcile", "--connection", "nope", "--target-file", target]) == 2
    assert "nope" in capsys.readouterr().err


def test_the_sandbox_deletes_like_marketo(stack):
    """Delete Companies by dedupe key: per-record ``deleted``, or ``skipped`` with 1013 when none has it."""
    _, _, marketo, _ = stack
    results = marketo.store.delete(COMPANY, [{"externalCompanyId": "no-such-key"}], "dedupeFields")
    assert results == [{"seq": 0, "status": "skipped", "reasons": [{"code": "1013", "message": "Record not found"}]}]
