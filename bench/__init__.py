"""Benchmark harness (issue #8): ``python -m bench`` or ``make bench``; results in docs/benchmarks.md."""
