"""What a benchmark ran on, printed first by every script in ``bench/``.

Ratios are comparable across machines; absolute rates are not (the same
script gave pg_recvlogical 90k rows/s on one 2-core VM and 216k on another),
so every run names its CPU, cores, memory, kernel, Python and the load it
started under.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    try:
        lines = cpuinfo.read_text().splitlines()
    except OSError:
        lines = []
    model = (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name"))
    return next(model, platform.processor() or "unknown cpu")


def memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def describe() -> str:
    """One line: ``machine: x86_64 <cpu>, 2 cpus, 24 GiB, Linux 6.1, Python 3.11.7, load ...``."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"machine: {platform.machine()} {cpu_model()}, {os.cpu_count()} cpus, "
            f"{memory_gib():.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load {load}")
