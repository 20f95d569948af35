"""``make demo``: two real sync cycles against the local stack, then a check that Marketo is right."""

from __future__ import annotations

import argparse
import io
import sys
from collections import Counter
from pathlib import Path
from typing import TextIO

from localrun.environment import ROOT, CycleProgress, LocalEnvironment

DEMO_LOG = ROOT / ".demo" / "lambda.log"


class LiveProgress:
    """A cycle's progress while it runs: one status line rewritten in place on a terminal, a plain line every
    couple of seconds otherwise (CI logs, pipes). Writes to the stream given at start: while a handler runs,
    sys.stdout is the Lambda log file."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.every_s = 0.5 if self.tty else 2.0

    def __call__(self, progress: CycleProgress) -> None:
        if progress.phase == "done":
            if self.tty:
                self.out.write("\r\x1b[K")  # the cycle's summary line takes the status line's place
                self.out.flush()
            return
        line = f"  {progress.label.strip()} {progress.elapsed_s:5.1f}s  " + (
            f"polling Visma: {progress.messages_sent} messages sent" if progress.phase == "polling" else
            f"read {progress.records_read}, sent {progress.messages_sent}, written {progress.written}, "
            f"writer batches done {progress.batches}")
        self.out.write(f"\r\x1b[K{line}" if self.tty else f"{line}\n")
        self.out.flush()


def run(seed: int = 7, customers: int = 2000, suppliers: int = 500, edits: int = 50) -> int:
    DEMO_LOG.parent.mkdir(exist_ok=True)
    DEMO_LOG.write_text("")
    live = LiveProgress(sys.stdout)
    print(f"Starting moto (local AWS from template.yaml) and the Visma and Marketo sandboxes "
          f"({customers} customers, {suppliers} suppliers, seed {seed}) ...")
    with LocalEnvironment(seed=seed, customers=customers, suppliers=suppliers, log_path=DEMO_LOG) as env:
        print(f"  Visma sandbox   {env.visma.url}\n  Marketo sandbox {env.marketo.url} "
              f"(Munchkin {env.marketo.munchkin_id})\n  AWS (moto)      {env.aws.endpoint_url}")
        first = env.cycle("Cycle 1 (full load)", progress=live, every_s=live.every_s)
        print(first.line())
        edited = env.visma.store.edit_random(edits, rng_seed=seed + 1)
        print(f"Edited {len(edited)} records in the Visma sandbox.")
        second = env.cycle("Cycle 2 (changes) ", progress=live, every_s=live.every_s)
        print(second.line())
        statuses = Counter(c.get("vismaPaymentStatus") for c in env.marketo.store.companies()
                           if c.get("vismaEntity") == "customer")
        print("Customers by payment status in Marketo: " + ", ".join(f"{k} {v}" for k, v in statuses.most_common()))
        verification = env.verify()
        print(verification.summary())
        print(f"Lambda logs and metrics (EMF): {Path(DEMO_LOG).relative_to(ROOT)}")
        return 0 if verification.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ml-connector demo", description=__doc__)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--suppliers", type=int, default=500)
    parser.add_argument("--edits", type=int, default=50)
    args = parser.parse_args(argv)
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)  # piped into tee or a CI log, lines still arrive as they happen
    return run(args.seed, args.customers, args.suppliers, args.edits)


if __name__ == "__main__":
    sys.exit(main())
