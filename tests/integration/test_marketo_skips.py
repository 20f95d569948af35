"""A record Marketo refuses (per-record ``skipped``) is quarantined with Marketo's reason and counted; the
rest of its chunk is written."""

from __future__ import annotations

import json

import pytest

from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_stack, tmp_path_factory):
    folder = tmp_path_factory.mktemp("mapping")
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    # Key accounts get a text into Marketo's integer field: Marketo skips exactly those records (1001).
    mapping["customer"]["fields"]["numberOfEmployees"] = {"source": "customerClass.id",
                                                          "lookup": {"KEY": "many"}, "default": None}
    path = folder / "mapping.json"
    path.write_text(json.dumps(mapping))
    return local_stack(seed=61, customers=120, suppliers=0, extra_env={"MAPPING_FILE": str(path)})


def test_skipped_records_are_quarantined_and_the_rest_written(env):
    key_accounts = {r["internalId"] for r in env.visma.store.records("customer")
                    if (r.get("customerClass") or {}).get("id") == "KEY"}
    assert key_accounts
    report = env.cycle("with refusals")
    assert report.skipped == len(key_accounts)
    assert report.created == 120 - len(key_accounts)
    assert report.drain.failed == 0  # a refused record never fails its chunk or its SQS message
    check = env.verify()
    assert {k.rsplit("-", 1)[1] for k in check.missing} == {str(i) for i in key_accounts}
    reasons = {e.ref: e.reason for e in env.state().quarantine.entries("default") if e.stage == "writer"}
    assert set(reasons) == {str(i) for i in key_accounts}
    assert all("Marketo skipped the record: 1001" in r and "numberOfEmployees" in r for r in reasons.values())
    emf = [json.loads(line) for line in env._log_path.read_text().splitlines() if '"_aws"' in line]
    quarantined = sum(d["RecordsQuarantined"] if not isinstance(d["RecordsQuarantined"], list)
                      else sum(d["RecordsQuarantined"]) for d in emf
                      if "RecordsQuarantined" in d and d.get("connection") == "default" and "entity" not in d)
    assert quarantined == len(key_accounts)
