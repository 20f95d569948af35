"""The latency bench's ideals (bench/makespan.py): the figures its ratios divide by."""

from __future__ import annotations

import pytest

from bench.makespan import measured_makespan, paced_makespan, sliding_window_makespan


def test_sliding_window_sends_each_window_at_once_when_concurrency_allows() -> None:
    # 10 calls / 20 s, 5 in flight, 2.5 s a call: 5 at 0, 5 at 2.5; the 11th waits for the window, at 20.
    assert sliding_window_makespan(10, 2.5, 10, 20.0, 5) == pytest.approx(5.0)
    assert sliding_window_makespan(11, 2.5, 10, 20.0, 5) == pytest.approx(22.5)
    assert sliding_window_makespan(30, 2.5, 10, 20.0, 5) == pytest.approx(45.0)


def test_sliding_window_bound_by_concurrency() -> None:
    # 100 calls / 20 s but 2 in flight of 1 s each: pairs, one second apart.
    assert sliding_window_makespan(6, 1.0, 100, 20.0, 2) == pytest.approx(3.0)


def test_paced_runs_at_the_budgets_rate() -> None:
    assert paced_makespan(30, 2.5, 10, 20.0, 5) == pytest.approx(29 * 2.0 + 2.5)  # budget: 0.5 calls/s
    assert paced_makespan(6, 1.0, 100, 20.0, 2) == pytest.approx(5 * 0.5 + 1.0)  # concurrency: 2 calls/s


def test_a_paced_limiter_is_short_of_the_sliding_window_ideal_over_few_windows() -> None:
    # The connector's limiter paces calls (window × 1.02 / calls apart): against the paced ideal it is at 98 %,
    # against the bursting ideal far less over three windows, nearer 98 % over many.
    paced = 2.04
    few, many = 30, 300
    connector = [(n - 1) * paced + 2.5 for n in (few, many)]
    assert paced_makespan(few, 2.5, 10, 20.0, 5) / connector[0] == pytest.approx(0.98, abs=0.01)
    assert sliding_window_makespan(few, 2.5, 10, 20.0, 5) / connector[0] < 0.75
    assert sliding_window_makespan(many, 2.5, 10, 20.0, 5) / connector[1] > 0.95


def test_measured_is_first_start_to_last_end() -> None:
    assert measured_makespan([12.0, 10.0, 15.5], 2.0) == pytest.approx(7.5)
    assert measured_makespan([], 2.0) == 0.0
    assert paced_makespan(0, 1.0, 10, 20.0, 5) == 0.0
    assert sliding_window_makespan(0, 1.0, 10, 20.0, 5) == 0.0
