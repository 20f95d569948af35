"""What the best possible writer would take for N Marketo calls, to compare a measured write phase against.

Two ideals of the same budget (``calls`` per ``window`` seconds, ``concurrency`` in flight, every call
``latency`` long, no guard):

- ``paced_makespan``: calls start at the budget's steady rate min(calls / window, concurrency / latency),
  evenly spaced. Issue #17's target is a rate (records per second against min(budget, C / L) × 300), so
  this is the ratio's ideal; it has no start-up burst.
- ``sliding_window_makespan``: calls start as soon as a sliding window and the concurrency allow, as
  Marketo itself would admit them: each window's calls go out at once, so over a few windows it finishes
  sooner than any steady rate. Reported beside the ratio: it shows how much of a gap is that burst.

The measured makespan is first call start to last call end; with calls of a fixed latency that is the
last completion minus the first, plus one latency.
"""

from __future__ import annotations


def paced_makespan(n: int, latency: float, calls: int, window: float, concurrency: int) -> float:
    if n <= 0:
        return 0.0
    rate = min(calls / window, concurrency / latency)
    return (n - 1) / rate + latency


def sliding_window_makespan(n: int, latency: float, calls: int, window: float, concurrency: int) -> float:
    """Call i starts at max(when the call ``concurrency`` before it ends, one window after the call ``calls``
    before it started); equal latencies keep ends in start order, so that is the earliest any scheduler can."""
    starts: list[float] = []
    for i in range(n):
        start = 0.0
        if i >= concurrency:
            start = max(start, starts[i - concurrency] + latency)
        if i >= calls:
            start = max(start, starts[i - calls] + window)
        starts.append(start)
    return starts[-1] + latency if starts else 0.0


def measured_makespan(completions: list[float], latency: float) -> float:
    """First start to last end, from the calls' completion times (each call ``latency`` long)."""
    return max(completions) - min(completions) + latency if completions else 0.0
