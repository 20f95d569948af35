"""Cost per 1M records from measured durations and public prices (AWS us-east-1, arm64).

``python -m bench.cost .bench/report.json``: the cost of every cycle of a bench run that sent records (the
report's own cost is the full load's), with the size it was measured at and the prices' date."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from bench.models import CycleResult
from bench.sqs_requests import EMPTY_RECEIVE

PRICES_AS_OF = ("late 2026 (us-east-1, arm64; DynamoDB on-demand as halved on 1 Nov 2024; "
                "../shared/reference/aws-costs.md)")
LAMBDA_GB_SECOND = 0.0000133334  # arm64
LAMBDA_REQUEST = 0.20 / 1e6
SQS_REQUEST = 0.40 / 1e6  # standard queue, after the free tier; each 64 KB chunk of a payload is one request
DYNAMO_WRITE_UNIT = 0.625 / 1e6  # on-demand, since 1 Nov 2024
DYNAMO_READ_UNIT = 0.125 / 1e6


class Cost(BaseModel):
    records: int
    memory_mb: int
    poller_gb_s: float
    writer_gb_s: float
    invocations: int
    # As billed (each 64 KB chunk of a call's payload one request), of the calls that moved records: sends,
    # receives that got messages, deletes, attributes
    sqs_requests: int
    sqs_calls: int = 0  # the API calls behind them
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
    """GB-seconds from the measured handler durations; SQS requests as billed, counted where SQS answered (the
    sync queue's packs of up to 300 records, the poll-work queue, the event-source loop's receives and deletes),
    empty receives apart (``bench/sqs_requests.py``); DynamoDB request units metered at moto's request layer as
    AWS bills them (``bench/units.py``)."""
    gb = memory_mb / 1024
    billed = cycle.sqs_billed or cycle.sqs_requests  # a report made before billing was metered: one per call
    return Cost(records=max(cycle.messages_sent, 1), memory_mb=memory_mb, poller_gb_s=cycle.poller_seconds * gb,
                writer_gb_s=cycle.writer_seconds * gb, invocations=cycle.poller_invocations + cycle.writer_invocations,
                sqs_requests=_without_empty_receives(billed), sqs_calls=_without_empty_receives(cycle.sqs_requests),
                sqs_empty_receives=cycle.sqs_requests.get(EMPTY_RECEIVE, 0), dynamo_writes=cycle.dynamo_writes,
                dynamo_reads=cycle.dynamo_reads)


def _without_empty_receives(by_action: dict[str, int]) -> int:
    return sum(n for action, n in by_action.items() if action != EMPTY_RECEIVE)


def describe(label: str, cost: Cost) -> str:
    parts = ", ".join(f"{name} ${usd:.3f}" for name, usd in cost.per_million.items())
    return (f"{label}: {cost.records:,} records sent; per 1M records {parts}; total ${cost.total_per_million:.2f} "
            f"(poller {cost.poller_gb_s:.1f} GB-s, writers {cost.writer_gb_s:.1f} GB-s at {cost.memory_mb} MB, "
            f"{cost.invocations} invocations, {cost.sqs_requests} SQS requests as billed ({cost.sqs_calls} calls), "
            f"{cost.dynamo_writes:,.0f} write and {cost.dynamo_reads:,.0f} read units). Prices as of {PRICES_AS_OF}.")


def main(argv: list[str] | None = None) -> int:
    from bench.run import BenchReport  # here: bench.run imports this module

    args = sys.argv[1:] if argv is None else argv
    report = BenchReport.model_validate_json(Path(args[0] if args else ".bench/report.json").read_text())
    print(f"Run of {report.date}, {report.options.records:,} records in Visma:")
    for cycle in report.cycles:
        if cycle.messages_sent:
            print(describe(cycle.label, cost_of(cycle, report.memory_mb)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
