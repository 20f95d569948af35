"""One module per use case. The Lambda handlers and the CLI call these; each takes the container's
Runtime and, where time matters, the invocation's Deadline.

- ``dispatch_due_polls``: what the schedule runs: one poll-work message per due connection
- ``poll_one_connection``: one connection completely, under its lease (requeue deferred chunks, poll,
  reference data); what the poller runs per poll-work message
- ``run_poll_cycle``: every connection in turn, now (the CLI's cycle)
- ``poll_connection``: read one connection's Visma changes (all its entities) into a sink
- ``write_batch``: write one SQS batch to Marketo
- ``sync_reference``: reference data (classes, payment terms ...) to Marketo custom objects
- ``preview_changes``: what the next cycle would write, writing nothing
- operator actions: ``show_status``, ``list_runs``, ``replay_job``, ``drain_queue``, ``redrive_dead_letters``,
  ``retry_quarantine``
- operator checks: ``check_connectivity`` (``ping``), ``check_deployment`` (``doctor``)
"""
