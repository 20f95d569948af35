"""An event source draining in another process, as a second concurrent Lambda execution environment would.

The handlers run one at a time in a process (``localrun.lambda_runtime`` holds a lock around os.environ), so
a second invocation that overlaps the first needs a process of its own; it reaches the same moto server
and sandboxes over HTTP (``bench.remote.StackSpec``).
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any

from localrun.environment import LocalEnvironment


def _drain(spec_data: dict[str, Any], function_logical_id: str, max_batches: int, log_path: str) -> dict[str, Any]:
    from bench.remote import StackSpec
    from localrun.event_source import SqsEventSource

    sys.stdout = Path(log_path).open("a", encoding="utf-8")  # noqa: SIM115 - lives as long as the process
    spec = StackSpec.model_validate(spec_data)
    source = SqsEventSource(spec.stack(), function_logical_id, env=spec.handler_env,
                            template_path=spec.template_path, keep_invisible=True)
    stats = source.drain(max_batches=max_batches)
    sys.stdout.flush()
    return stats.model_dump()


def drain_elsewhere(env: LocalEnvironment, pool: ProcessPoolExecutor, function_logical_id: str, log_path: Path,
                    max_batches: int = 1) -> Future[dict[str, Any]]:
    """Start draining ``max_batches`` batches into the function in one of ``pool``'s processes."""
    from bench.remote import StackSpec

    assert env.stack is not None
    spec = StackSpec.of(env.stack, env.env())
    return pool.submit(_drain, spec.model_dump(), function_logical_id, max_batches, str(log_path))


def process_pool(workers: int = 1) -> ProcessPoolExecutor:
    # spawn, not fork: this process runs moto's and the sandboxes' server threads.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
