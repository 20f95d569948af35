"""Two connections side by side in one deployment: two Visma companies, two Marketo instances, their own
secrets, mappings and watermarks, and no data crossing between them."""

from __future__ import annotations

import pytest

from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH
from sandbox.marketo import MarketoSandbox
from sandbox.visma import VismaSandbox

pytestmark = pytest.mark.integration

CUSTOM_OBJECT_MAPPING = str(DEFAULT_MAPPING_PATH.with_name("suppliers-as-custom-object.json"))


@pytest.fixture(scope="module")
def two(local_stack):
    env = local_stack(seed=21, customers=60, suppliers=20)
    with VismaSandbox(seed=22, customers=40, suppliers=15, company_id="7654321") as visma2, \
            MarketoSandbox(munchkin_id="456-DEF-789") as marketo2:
        env.add_connection("second", visma2, marketo2, mapping=CUSTOM_OBJECT_MAPPING)
        yield env, visma2, marketo2


def test_each_connection_lands_in_its_own_instance(two):
    env, visma2, marketo2 = two
    report = env.cycle("both connections")
    assert report.records_read == 80 + 55
    first, second = env.verify(), env.verify("second")
    assert first.ok, first.summary()
    assert second.ok, second.summary()
    assert first.actual == 80 and second.actual == 55
    # The second connection's suppliers went to its custom object, not to companies.
    assert len(marketo2.store.companies()) == 40
    assert len(marketo2.store.custom_objects("vismaSupplier_c")) == 15
    # Keys carry each Visma company: nothing of one company reached the other instance.
    assert all("-1234567-" in c["externalCompanyId"] for c in env.marketo.store.companies())
    assert all("-7654321-" in c["externalCompanyId"] for c in marketo2.store.companies())


def test_watermarks_are_per_connection(two):
    env, visma2, _ = two
    visma2.store.edit_random(4, rng_seed=3)
    report = env.cycle("edits in the second company only")
    assert report.messages_sent == 4
    assert {e["connection"] for e in report.poll if e["messages_sent"]} == {"second"}
    assert env.verify("second").ok and env.verify().ok
