"""Peak memory and CPU time of a process tree, for the benchmarks (Linux ``/proc``)."""

from __future__ import annotations

import os
import threading


def _memory_bytes(pid: int) -> int:
    """Memory of one process: PSS where the kernel reports it, else RSS.

    Forked workers share the parent's pages copy-on-write; summing their RSS would count
    those pages once per process, the proportional set size (PSS) counts them once.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _tree_memory_bytes(pid: int) -> int:
    """Memory (PSS) of ``pid`` and all its descendants (Linux /proc)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            total += _memory_bytes(p)
            with open(f"/proc/{p}/task/{p}/children") as fh:
                stack.extend(int(c) for c in fh.read().split())
        except (OSError, ValueError):
            continue  # a worker that just exited
    return total


class PeakMemory:
    """Samples the process tree's memory (PSS) in a background thread; ``peak_mib`` after the block."""

    def __init__(self, interval_s: float = 0.05) -> None:
        self.interval_s = interval_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_memory_bytes(pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakMemory:
        if not os.path.exists(f"/proc/{os.getpid()}/statm"):
            raise RuntimeError("peak-memory sampling needs Linux /proc")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.peak = max(self.peak, _tree_memory_bytes(os.getpid()))
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak / 2**20


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
