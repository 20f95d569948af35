"""What the shipped template deploys by default, so the bench runs the configuration users get."""

from __future__ import annotations

from pathlib import Path

from localrun.sam_template import load_template

TEMPLATE = Path(__file__).resolve().parents[1] / "template.yaml"


def parameter_default(name: str) -> int:
    return int(load_template(TEMPLATE)["Parameters"][name]["Default"])


def writer_concurrency(concurrent_calls: int) -> int:
    """The writer event source's MaximumConcurrency for a MarketoMaxConcurrentCalls value."""
    source = load_template(TEMPLATE)["Resources"]["WriterFunction"]["Properties"]["Events"]["SyncQueue"]
    _, table = source["Properties"]["ScalingConfig"]["MaximumConcurrency"]["Fn::Select"]
    return int(table[concurrent_calls])
