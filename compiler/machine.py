"""What this machine lends a compile: the CPUs this process may run on and the memory it may
still take. Worker pools (compare's, sweep's) and calibration's threads size themselves by
these, so a container or a ``taskset`` limit is honoured, not the host's full count."""

from __future__ import annotations

import os
import pathlib


def usable_cpus() -> int:
    """CPUs this process may be scheduled on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS, Windows: no affinity call
        return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes this process may still allocate without swapping or hitting its control group's
    limit: the smaller of the kernel's MemAvailable and the cgroup v2 headroom; None where
    neither can be read (not Linux)."""
    figures = []
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                figures.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = pathlib.Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            used = int(pathlib.Path("/sys/fs/cgroup/memory.current").read_text().strip())
            figures.append(max(0, int(limit) - used))
    except (OSError, ValueError):
        pass
    return min(figures) if figures else None
