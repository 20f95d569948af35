"""Writer Lambda: SQS batch -> Marketo upserts; reports only the failed messages back to SQS."""

from __future__ import annotations

import sys
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from ml_connector.deadline import Deadline
from ml_connector.observability import logger, metrics, tracer
from ml_connector.runtime import get_runtime
from ml_connector.sync.writer import InboundMessage
from ml_connector.usecases.write_batch import idempotency_config, write_batch

# A chunk's Marketo call gives its concurrency lease back from its own thread while other chunks' threads record
# results: at a fraction of a vCPU each GIL hand-over waits the switch interval of their CPU (5 ms by default).
sys.setswitchinterval(0.001)

# An entirely failed batch is reported item by item too (not raised), so SQS retries each message.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class RecordNotWritten(Exception):
    """Marks a message whose chunk was not written; SQS redelivers it."""


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    config = idempotency_config(runtime.settings)
    # Lets idempotency expire an in-progress job if this invocation times out mid-write.
    config.register_lambda_context(context)
    messages = [InboundMessage(r["messageId"], r.get("body", "")) for r in event.get("Records", [])]
    report = write_batch(runtime, messages, Deadline.of_lambda(context), config)
    logger.info("batch written", extra={"batch": report.summary()})

    def record_handler(record: SQSRecord) -> None:
        # Chunks were written above, many records per Marketo call; here we only report outcomes.
        if record.message_id in report.failed_message_ids:
            raise RecordNotWritten(record.message_id)

    response = process_partial_response(event=event, record_handler=record_handler, processor=processor,
                                        context=context)
    return dict(response)
