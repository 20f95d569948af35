"""Live progress of a cycle (what `make demo` shows while it runs), and how the demo prints it."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from localrun.demo import LiveProgress
from localrun.environment import CycleProgress, LocalEnvironment

CUSTOMERS, SUPPLIERS = 300, 60


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    with LocalEnvironment(seed=3, customers=CUSTOMERS, suppliers=SUPPLIERS,
                          log_path=tmp_path_factory.mktemp("logs") / "lambda.log") as environment:
        yield environment


def test_a_cycle_reports_progress_while_it_runs_and_once_at_the_end(env: LocalEnvironment) -> None:
    seen: list[CycleProgress] = []
    report = env.cycle("full load", progress=seen.append, every_s=0.05)
    assert len(seen) >= 3, "samples while polling or writing, then the final one"
    running, final = seen[:-1], seen[-1]
    assert {p.phase for p in running} <= {"polling", "writing"} and final.phase == "done"
    assert all(p.label == "full load" for p in seen)
    # Counts only grow, and the last sample is the cycle's report.
    for earlier, later in zip(seen, seen[1:], strict=False):
        assert later.elapsed_s >= earlier.elapsed_s
        assert later.written >= earlier.written and later.delivered >= earlier.delivered
    assert (final.records_read, final.messages_sent) == (report.records_read, report.messages_sent)
    assert final.written == report.created + report.updated + report.skipped == CUSTOMERS + SUPPLIERS
    # Delivered counts SQS messages (packs of records), as the drain does.
    assert final.delivered == report.drain.messages and final.batches == report.drain.batches  # type: ignore[union-attr]
    assert any(0 < p.written < final.written for p in running), "progress seen mid-write"


def test_a_cycle_without_a_hook_runs_as_before(env: LocalEnvironment) -> None:
    env.visma.store.edit_random(5, rng_seed=1)
    report = env.cycle("changes")
    assert report.messages_sent == 5 and report.updated == 5
    assert env.verify().ok


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _progress(phase: str, **counts: int) -> CycleProgress:
    return CycleProgress("Cycle 1 (full load)", phase, 4.25, **counts)  # type: ignore[arg-type]


def test_plain_lines_when_not_a_terminal() -> None:
    out = io.StringIO()
    live = LiveProgress(out)
    live(_progress("polling", messages_sent=1200))
    live(_progress("writing", messages_sent=2500, records_read=2500, written=900, batches=3))
    live(_progress("done", messages_sent=2500, records_read=2500, written=2500, batches=9))
    assert live.every_s == 2.0
    assert out.getvalue().splitlines() == [
        "  Cycle 1 (full load)   4.2s  polling Visma: 1200 messages sent",
        "  Cycle 1 (full load)   4.2s  read 2500, sent 2500, written 900, writer batches done 3",
    ]


def test_one_status_line_rewritten_on_a_terminal() -> None:
    out = _Terminal()
    live = LiveProgress(out)
    live(_progress("polling", messages_sent=10))
    live(_progress("writing", messages_sent=20, records_read=20, written=10, batches=1))
    live(_progress("done", messages_sent=20, records_read=20, written=20, batches=2))
    text = out.getvalue()
    assert "\n" not in text and text.count("\r\x1b[K") == 3 and text.endswith("\r\x1b[K")
