"""One module per use case. The Lambda handlers and the CLI call these; each takes the container's
Runtime and, where time matters, the invocation's Deadline.

- ``run_poll_cycle``: what the schedule runs (requeue deferred chunks, poll, reference data)
- ``poll_connection``: read one connection's Visma changes (all its entities) into a sink
- ``write_batch``: write one SQS batch to Marketo
- ``sync_reference``: reference data (classes, payment terms ...) to Marketo custom objects
- ``preview_changes``: what the next cycle would write, writing nothing
- operator actions: ``show_status``, ``list_runs``, ``replay_job``, ``drain_queue``, ``redrive_dead_letters``,
  ``retry_quarantine``
- operator checks: ``check_connectivity`` (``ping``), ``check_deployment`` (``doctor``)
"""
