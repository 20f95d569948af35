"""A record Marketo refuses (per-record ``skipped``) is quarantined with Marketo's reason and counted; the
rest of its chunk is written."""

from __future__ import annotations

import json

import pytest

from localrun.environment import LocalEnvironment
from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mapping")
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    # Key accounts get a text into Marketo's integer field: Marketo skips exactly those records (1001).
    mapping["customer"]["fields"]["numberOfEmployees"] = {"source": "customerClass.id",
                                                          "lookup": {"KEY": "many"}, "default": None}
    path = folder / "mapping.json"
    path.write_text(json.dumps(mapping))
    with LocalEnvironment(seed=61, customers=120, suppliers=0, extra_env={"MAPPING_FILE": str(path)},
                          log_path=folder / "lambda.log") as environment:
        yield environment


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
    table = env.aws.client("dynamodb")
    items = table.query(TableName=env.resource("StateTable"), KeyConditionExpression="pk = :pk",
                        ExpressionAttributeValues={":pk": {"S": "QUAR#default"}})["Items"]
    reasons = {i["ref"]["S"]: i["reason"]["S"] for i in items if i["stage"]["S"] == "writer"}
    assert set(reasons) == {str(i) for i in key_accounts}
    assert all("Marketo skipped the record: 1001" in r and "numberOfEmployees" in r for r in reasons.values())
    emf = [json.loads(line) for line in env._log_path.read_text().splitlines() if '"_aws"' in line]
    quarantined = sum(d["RecordsQuarantined"] if not isinstance(d["RecordsQuarantined"], list)
                      else sum(d["RecordsQuarantined"]) for d in emf
                      if "RecordsQuarantined" in d and d.get("connection") == "default" and "entity" not in d)
    assert quarantined == len(key_accounts)
