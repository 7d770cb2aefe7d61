"""What this machine lends a compile: the CPUs this process may run on and the memory it may
still take (worker pools, compare's and sweep's, and calibration's threads size themselves by
these, so a container or a ``taskset`` limit is honoured, not the host's full count), and how
its memory allocator is set for a compile's pattern of large, short-lived arrays."""

from __future__ import annotations

import os
import pathlib
import sys


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


# glibc's malloc settings (mallopt's parameter numbers, malloc.h) for a compile: freed memory is
# kept for reuse instead of returned to the kernel, so the next array of that size costs no page
# faults (1.7 us a 4 kB page on the build machine: ResNet-50's compare made 300k of them); arrays
# under 32 MB come from the heap, larger ones are mapped and unmapped (a 1 GB threshold was as
# fast and grew reram's peak by 20-30 MB); threads share two arenas. light_resnet50's compare:
# 1.27-1.32 s without, 1.23-1.25 s with; reram's peak 614 MB with, 621-628 MB without.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8
ALLOCATOR_SETTINGS = {_M_MMAP_THRESHOLD: 32 << 20, _M_TRIM_THRESHOLD: 1 << 30, _M_ARENA_MAX: 2}


def tune_memory() -> bool:
    """Applies ALLOCATOR_SETTINGS to this process's glibc malloc; False where it is not glibc,
    or the user set malloc's own environment variables (theirs are kept).

    And turns off numpy's transparent huge pages (``NUMPY_MADVISE_HUGEPAGE=0`` unless the user
    set it): where the kernel compacts memory on a huge-page fault of a madvised region
    (``defrag = madvise``, the default), numpy's large arrays stalled on compaction after another
    big process had run: the same compare took 1.22-2.60 s with them, 1.24-1.28 s without
    (five runs each, light_resnet50, the 2-core build machine)."""
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    numpy = sys.modules.get("numpy")
    if numpy is not None and os.environ["NUMPY_MADVISE_HUGEPAGE"] == "0":  # imported before: the variable came too late
        core = getattr(numpy, "_core", None) or getattr(numpy, "core", None)
        setter = getattr(getattr(core, "multiarray", None), "_set_madvise_hugepage", None)
        if setter is not None:
            setter(False)
    if any(key.startswith("MALLOC_") or key == "GLIBC_TUNABLES" for key in os.environ):
        return False
    try:
        import ctypes

        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows)
        return False
    return all(mallopt(param, value) == 1 for param, value in ALLOCATOR_SETTINGS.items())
