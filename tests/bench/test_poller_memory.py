"""The poller's memory is flat in the window size (issue #3): nothing it holds grows with the records it reads.

Two real poller invocations (its own process, the services in another: see ``bench/memory.py``) read a window of
2,000 and of 12,000 customers and suppliers, payment facts included, and the peak of the Python heap is compared.
Anything kept per record (a set of ids, a dict of payment facts) costs at least 100 bytes each, so 1 MB more over
the 10,000 extra records; pages, which both runs hold one at a time, cost the same in both.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import memory

pytestmark = pytest.mark.heavy

SMALL, LARGE = 2_000, 12_000
PER_RECORD_BYTES = 100


def test_poller_heap_does_not_grow_with_the_window(tmp_path: Path) -> None:
    small = memory.measure(SMALL, tmp_path / "small", trace_python=True)
    large = memory.measure(LARGE, tmp_path / "large", trace_python=True)
    assert (small.messages_sent, large.messages_sent) == (SMALL, LARGE)
    assert small.python_peak_mb is not None and large.python_peak_mb is not None
    growth_mb = large.python_peak_mb - small.python_peak_mb
    print(f"Python heap peak: {small.python_peak_mb:.2f} MB at {SMALL}, {large.python_peak_mb:.2f} MB at {LARGE} "
          f"(+{growth_mb:.2f} MB)")
    assert growth_mb < (LARGE - SMALL) * PER_RECORD_BYTES / 2**20, f"the poller's heap grew {growth_mb:.2f} MB"
