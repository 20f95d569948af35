"""Hold processes to a share of one core, as Lambda holds a function to the vCPU its memory buys.

Lambda gives a function CPU in proportion to its memory (1 vCPU at 1,769 MB), enforced by the kernel's
CPU quota. Locally a writer process takes a whole core when it can; in a time-scaled run (bench/latency.py)
that is k whole cores per scaled second. This cap stops (SIGSTOP) a process that has used more CPU than
its share since the start, with a small burst allowance, and resumes (SIGCONT) it when its share has
caught up: a token bucket per process, read from /proc every ``period`` seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of every thread of ``pid`` (/proc/<pid>/stat utime and stime)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


@dataclass
class _Bucket:
    pid: int
    used: float
    credit: float
    stopped: bool = False
    stopped_s: float = 0.0


@dataclass
class CpuCap:
    share: float  # of one core, e.g. 0.058
    burst_s: float = 0.05  # CPU seconds a process may run ahead of its share
    period: float = 0.02
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, pids: list[int]) -> CpuCap:
        for pid in pids:
            self.buckets[pid] = _Bucket(pid, cpu_seconds(pid), self.burst_s)
        self._thread = threading.Thread(target=self._run, name="cpu-cap", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[int, float]:
        """Resumes every process; returns each one's seconds spent stopped."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for bucket in self.buckets.values():
            self._resume(bucket)
        return {pid: round(b.stopped_s, 2) for pid, b in self.buckets.items()}

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(self.period):
            now = time.monotonic()
            elapsed, last = now - last, now
            for bucket in list(self.buckets.values()):
                self._account(bucket, elapsed)

    def _account(self, bucket: _Bucket, elapsed: float) -> None:
        try:
            used = cpu_seconds(bucket.pid)
        except (FileNotFoundError, ProcessLookupError):
            return  # it ended
        bucket.credit = min(bucket.credit + self.share * elapsed - (used - bucket.used), self.burst_s)
        bucket.used = used
        if bucket.stopped:
            bucket.stopped_s += elapsed
        if bucket.credit < 0 and not bucket.stopped:
            self._signal(bucket, signal.SIGSTOP)
            bucket.stopped = True
        elif bucket.credit >= 0 and bucket.stopped:
            self._resume(bucket)

    def _resume(self, bucket: _Bucket) -> None:
        if bucket.stopped:
            self._signal(bucket, signal.SIGCONT)
            bucket.stopped = False

    @staticmethod
    def _signal(bucket: _Bucket, signum: int) -> None:
        try:
            os.kill(bucket.pid, signum)
        except ProcessLookupError:
            pass
