"""The machine a benchmark ran on, for docs/performance.md: CPU model, cores, Python, OS, date,
the commit measured, and the load average (other jobs on a shared machine skew the figures)."""

from __future__ import annotations

import os
import platform
import subprocess
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    usable_cores: int
    python: str
    os: str
    when: str
    commit: str
    load_start: float

    @classmethod
    def describe(cls) -> "Machine":
        return cls(
            cpu=_cpu_model(),
            cores=os.cpu_count() or 0,
            usable_cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0,
            python=f"{platform.python_implementation()} {platform.python_version()}",
            os=f"{_os_name()}, {platform.system()} {platform.release()} {platform.machine()}",
            when=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            commit=_commit(),
            load_start=os.getloadavg()[0],
        )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def _commit() -> str:
    """The commit measured, and whether the tree had uncommitted changes (read-only git calls)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    # Changed tracked files, or new source files: the code measured is not the commit alone.
    dirty = [line for line in status.splitlines() if not line.startswith("??") or line.rstrip("/").endswith((".py", ".sh"))]
    return f"{head} with uncommitted changes" if dirty else head
