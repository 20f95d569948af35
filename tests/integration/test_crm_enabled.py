"""An instance with native CRM sync has a read-only Company API: detected at start from describe, with a
clear message and the custom-object target as the way out."""

from __future__ import annotations

import pytest

from localrun.environment import LocalEnvironment

pytestmark = pytest.mark.integration


def test_company_target_on_a_crm_instance_fails_at_start_with_the_way_out(tmp_path):
    with LocalEnvironment(seed=71, customers=10, suppliers=3, marketo_options={"crm_enabled": True},
                          log_path=tmp_path / "lambda.log") as env:
        with pytest.raises(Exception, match="native CRM sync.*custom object"):
            env.run_poller()
        assert env.marketo.store.companies() == []
        assert env.marketo.stats.snapshot()["sync_calls"] == 0  # refused before any write

