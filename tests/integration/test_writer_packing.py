"""Ten active connections on three Marketo instances (four, three and three connections; connections on one
instance share its API user's secret), polled into the one sync queue and drained by the writers through the
local stack: records travel in packs, and the writers merge the packs of every connection of an instance into
full chunks, so Marketo's sync calls stay within 1.1 x the ideal (per instance and object, ceil(records / 300))
while Marketo holds exactly the Visma data. ``WRITER_PACKING_SCALE`` multiplies the volume (default 1)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from localrun.environment import STACK_NAME, LocalEnvironment
from ml_connector.sync.preview import same_value
from sandbox.marketo import MarketoSandbox
from sandbox.visma import VismaSandbox

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

SCALE = int(os.environ.get("WRITER_PACKING_SCALE", "1"))
CUSTOMERS, SUPPLIERS = 80 * SCALE, 20 * SCALE  # per connection: part-filled packs, not multiples of 300
LAYOUT = {"A": 4, "B": 3, "C": 3}  # connections per Marketo instance: ten in all
MUNCHKINS = {"A": "123-ABC-456", "B": "456-DEF-789", "C": "789-GHI-123"}


@pytest.fixture(scope="module")
def ten(local_stack) -> Iterator[tuple[LocalEnvironment, dict[str, MarketoSandbox], dict[str, list[str]]]]:
    env = local_stack(seed=41, customers=CUSTOMERS, suppliers=SUPPLIERS)
    with ExitStack() as sandboxes:
        instances = {"A": env.marketo}
        for name in ("B", "C"):
            instances[name] = sandboxes.enter_context(MarketoSandbox(munchkin_id=MUNCHKINS[name]))
        connections: dict[str, list[str]] = {name: [] for name in LAYOUT}
        connections["A"].append(env.stack.parameters["ConnectionId"])
        shared_secret = {"A": env.resource("MarketoCredentialsSecret")}
        n = 0
        for name, count in LAYOUT.items():
            while len(connections[name]) < count:
                n += 1
                visma = sandboxes.enter_context(VismaSandbox(seed=41 + n, customers=CUSTOMERS, suppliers=SUPPLIERS,
                                                             company_id=str(2_000_000 + n)))
                cid = f"conn{n}"
                # The instance's API user, as its first connection stored it.
                env.add_connection(cid, visma, instances[name], marketo_secret_id=shared_secret.get(name))
                shared_secret.setdefault(name, f"{STACK_NAME}/{cid}/marketo")
                connections[name].append(cid)
        yield env, instances, connections


def sync_calls(marketo: MarketoSandbox) -> int:
    return int(marketo.stats.snapshot()["by_object"].get("companies", {}).get("sync_calls", 0))


def test_ten_connections_cost_at_most_a_tenth_more_calls_than_ideal(ten):
    env, instances, connections = ten
    before = {name: sync_calls(m) for name, m in instances.items()}
    report = env.cycle("ten connections")
    per_connection = CUSTOMERS + SUPPLIERS
    assert report.records_read == 10 * per_connection and report.drain.failed == 0
    calls = {name: sync_calls(m) - before[name] for name, m in instances.items()}
    ideal = {name: math.ceil(count * per_connection / 300) for name, count in LAYOUT.items()}
    print(f"calls {calls}, ideal {ideal}, messages {report.drain.messages} for {10 * per_connection} records "
          f"in {report.drain.batches} batches")
    assert sum(calls.values()) <= 1.1 * sum(ideal.values()), (calls, ideal)
    # Packs: a message per record before; now part-filled packs only at page and entity ends.
    assert report.drain.messages * 50 <= report.records_read
    for name, marketo in instances.items():  # exactly the Visma data of the instance's connections
        expected: dict[str, dict[str, Any]] = {}
        for cid in connections[name]:
            expected.update(env.expected_records(cid)["companies"])
        held = {c["externalCompanyId"]: c for c in marketo.store.companies()}
        assert held.keys() == expected.keys() and len(held) == len(marketo.store.companies())
        mismatched = {k: f for k, r in expected.items() for f, v in r.items() if not same_value(held[k].get(f), v)}
        assert not mismatched, list(mismatched.items())[:3]
