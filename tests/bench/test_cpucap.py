"""bench.cpucap holds a busy process to its share of a core, and leaves it running afterwards."""

from __future__ import annotations

import subprocess
import sys
import time

from bench.cpucap import CpuCap, cpu_seconds


def test_a_busy_process_gets_its_share_and_no_more() -> None:
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # interpreter start-up, before the cap
        before = cpu_seconds(busy.pid)
        cap = CpuCap(share=0.2).start([busy.pid])
        time.sleep(2.0)
        stopped = cap.stop()
        used = cpu_seconds(busy.pid) - before
        assert used <= 0.2 * 2.0 + cap.burst_s + 0.15, used  # its share, the burst, /proc's 10 ms ticks
        assert used >= 0.2 * 2.0 * 0.5, used  # it did run
        assert stopped[busy.pid] > 1.0
        resumed = cpu_seconds(busy.pid)
        time.sleep(0.3)
        assert cpu_seconds(busy.pid) > resumed  # SIGCONT at stop(): it runs freely again
    finally:
        busy.kill()
        busy.wait()
