"""Cost per 1M records from measured durations and public prices (AWS us-east-1, arm64)."""

from __future__ import annotations

from pydantic import BaseModel

from bench.models import CycleResult
from bench.probes import EMPTY_RECEIVE

PRICES_AS_OF = "late 2026 (us-east-1, arm64; ../shared/reference/aws-costs.md)"
LAMBDA_GB_SECOND = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6  # standard queue, after the free tier
DYNAMO_WRITE_UNIT = 0.625 / 1e6  # on-demand, since 1 Nov 2024
DYNAMO_READ_UNIT = 0.125 / 1e6


class Cost(BaseModel):
    records: int
    memory_mb: int
    poller_gb_s: float
    writer_gb_s: float
    invocations: int
    sqs_requests: int  # those that moved records: sends, receives that got messages, deletes, attributes
    sqs_empty_receives: int = 0  # the local polling loop's; Lambda's pollers long-poll at a fixed monthly cost
    dynamo_writes: float  # request units, as billed
    dynamo_reads: float

    @property
    def per_million(self) -> dict[str, float]:
        scale = 1e6 / self.records
        lambda_usd = (self.poller_gb_s + self.writer_gb_s) * LAMBDA_GB_SECOND + self.invocations * LAMBDA_REQUEST
        return {"lambda": lambda_usd * scale, "sqs": self.sqs_requests * SQS_REQUEST * scale,
                "dynamodb": (self.dynamo_writes * DYNAMO_WRITE_UNIT + self.dynamo_reads * DYNAMO_READ_UNIT) * scale}

    @property
    def total_per_million(self) -> float:
        return sum(self.per_million.values())


def cost_of(cycle: CycleResult, memory_mb: int) -> Cost:
    """GB-seconds from the measured handler durations; SQS requests as counted where SQS answered (the sync
    queue's packs of up to 300 records, the poll-work queue, the event-source loop's receives and deletes), empty
    receives apart;
    DynamoDB request units metered at moto's request layer as AWS bills them (``bench/units.py``)."""
    gb = memory_mb / 1024
    return Cost(records=max(cycle.messages_sent, 1), memory_mb=memory_mb, poller_gb_s=cycle.poller_seconds * gb,
                writer_gb_s=cycle.writer_seconds * gb, invocations=cycle.poller_invocations + cycle.writer_invocations,
                sqs_requests=sum(n for action, n in cycle.sqs_requests.items() if action != EMPTY_RECEIVE),
                sqs_empty_receives=cycle.sqs_requests.get(EMPTY_RECEIVE, 0), dynamo_writes=cycle.dynamo_writes,
                dynamo_reads=cycle.dynamo_reads)
