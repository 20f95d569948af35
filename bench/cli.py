"""Command line of the benchmark harness."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import render, targets
from bench.run import Options, run

ROOT = Path(__file__).resolve().parent.parent
QUICK = {"records": 2000, "full_limit_records": 2000, "baseline_records": 40, "memory_sizes": [1000, 4000],
         "cold_import_runs": 3, "writer_cpu_chunks": 2}


def _sizes(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None = None) -> tuple[Options, Path]:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        epilog="Other runs: python -m bench.latency (throughput at Marketo latency L), python -m bench.fanout "
               "(many connections, one tick), python -m bench.large first-load|reconcile (100k records).")
    parser.add_argument("--records", type=int, help="records in Visma for the default-budget cycles (100000)")
    parser.add_argument("--full-limit-records", type=int, help="records for the full-instance-limit load (100000)")
    parser.add_argument("--writers", type=int, help="concurrent writer processes (4)")
    parser.add_argument("--baseline-records", type=int, help="records the baseline script writes (1000)")
    parser.add_argument("--memory-sizes", type=_sizes, help="poller memory runs, e.g. 10000,100000,1000000")
    parser.add_argument("--latency", type=float, nargs=2, metavar=("MIN", "MAX"),
                        help="Marketo and Visma latency per call in seconds (0.1 0.3)")
    parser.add_argument("--cold-import-runs", type=int, help="fresh interpreters per handler (7)")
    parser.add_argument("--writer-cpu-chunks", type=int,
                        help="300-record chunks one warm writer writes to measure its CPU (6; 0 skips it)")
    parser.add_argument("--split-emulators", action="store_true",
                        help="DynamoDB and SQS on moto processes of their own, not the bench process's moto thread")
    parser.add_argument("--latency-sweep", action="store_true",
                        help="then the time-scaled sweep of python -m bench.latency (L = 0.5, 1, 2 s at both budgets, "
                             "~20 min), its table in the report")
    parser.add_argument("--quick", action="store_true", help="a small run (2,000 records) to try the harness")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--log-dir", type=Path, default=ROOT / ".bench")
    args = parser.parse_args(argv)
    values: dict[str, object] = dict(QUICK) if args.quick else {}
    for name in ("records", "full_limit_records", "writers", "baseline_records", "memory_sizes", "cold_import_runs",
                 "writer_cpu_chunks"):
        if getattr(args, name) is not None:
            values[name] = getattr(args, name)
    if args.latency:
        values["marketo_latency_s"] = values["visma_latency_s"] = tuple(args.latency)
    values["log_dir"] = args.log_dir
    values["split_emulators"] = args.split_emulators
    values["latency_sweep"] = args.latency_sweep
    return Options.model_validate(values), args.output


def main(argv: list[str] | None = None) -> int:
    options, output = parse(argv)
    report = run(options)
    options.log_dir.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(report))
    (options.log_dir / "report.json").write_text(report.model_dump_json(indent=1))
    print(f"written {output}")
    missed = [t for t, _, ok, _ in targets(report) if not ok]
    for target in missed:
        print(f"missed: {target}")
    return 0
