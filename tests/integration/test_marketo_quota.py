"""Marketo's daily quota (607): writing stops until the reset, the messages wait in DynamoDB (never in the
dead-letter queue), and after the reset the poller sends them again and they are written."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def env(local_stack):
    environment = local_stack(seed=51, customers=60, suppliers=10)
    environment.cycle("full load")
    yield environment


def dlq_depth(env):
    attrs = env.aws.client("sqs").get_queue_attributes(QueueUrl=env.resource("SyncDeadLetterQueue"),
                                                       AttributeNames=["ApproximateNumberOfMessages"])
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


def test_quota_defers_then_resumes_after_the_reset(env):
    env.visma.store.edit_random(5, rng_seed=52)
    env.marketo.set_daily_usage(50_000)
    first = env.cycle("quota gone")
    assert first.updated == 0 and first.drain.failed == 0  # handled: parked, not failed
    jobs = [j for j in env.state().jobs.all("default") if j.status == "deferred"]
    assert len(jobs) == 1 and jobs[0].retry_after and jobs[0].retry_after > jobs[0].at
    assert env.marketo.stats.snapshot()["errors_by_code"].get("607") == 1

    env.visma.store.edit_random(3, rng_seed=53)
    second = env.cycle("still blocked")
    assert second.marketo_calls == 0
    assert env.marketo.stats.snapshot()["errors_by_code"].get("607") == 1  # no call was made at all
    assert dlq_depth(env) == 0
    assert not env.verify().ok  # Marketo is behind until the reset

    # Midnight US Central passes: Marketo resets the quota; our block and the parked jobs come due.
    env.pass_quota_reset()
    resumed = env.cycle("after the reset")
    assert resumed.updated == 8
    assert env.verify().ok, env.verify().summary()
    assert dlq_depth(env) == 0
