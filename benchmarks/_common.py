"""What every benchmark script shares: the provenance line, the paths, the corpus lists.

``provenance()`` is the line each section prints under its heading: the command that produced it
(``.venv/bin/python -m benchmarks.<name> <args>``), the date, the git commit, the machine and its
load (the 1-minute load average when the script started, i.e. imported this module, and when the
line is written: the cores are shared with other jobs, so absolute times depend on it), and the
torch version and threads when torch is loaded.

Example:
    >>> line = provenance(name="continual", argv=["--quick"])
    >>> line.startswith("Command: `.venv/bin/python -m benchmarks.continual --quick` — ")
    True
"""
from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Sequence

from adapt.cache import cache_dir
from scenarios.corpora import DEV_CORPORA, SHARED_CORPORA

__all__ = ["ROOT", "HERE", "RESULTS", "provenance", "command", "load_average", "bench_cache", "DEV_CORPORA",
           "SHARED_CORPORA"]

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"


def load_average() -> float | None:
    """The 1-minute load average (``None`` where the platform has none)."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


_STARTED = dt.datetime.now(dt.timezone.utc)
_LOAD_AT_START = load_average()


def bench_cache(*parts: str) -> Path:
    """``<cache>/bench/<parts>`` (created): raw runs that a rerun resumes from (``adapt.cache.cache_dir``)."""
    return cache_dir("bench", *parts)


def _script_name() -> str:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    name = spec.name if spec is not None else Path(sys.argv[0]).stem
    return name.removeprefix("benchmarks.")


def command(name: str | None = None, argv: Sequence[str] | None = None) -> str:
    """``.venv/bin/python -m benchmarks.<name> <args>`` for this invocation (or the given one)."""
    args = list(sys.argv[1:] if argv is None else argv)
    return " ".join([".venv/bin/python", "-m", f"benchmarks.{name or _script_name()}", *map(shlex.quote, args)])


def _git_commit() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    return commit + (" + local changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or ""


def _torch() -> str:
    torch = sys.modules.get("torch")
    if torch is None:
        return ""
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"; {gpu}, torch {torch.__version__}, {torch.get_num_threads()} torch thread(s)"


def provenance(name: str | None = None, argv: Sequence[str] | None = None) -> str:
    """The section's provenance line (see the module docstring); call it when the results are in."""
    start, end = _LOAD_AT_START, load_average()
    load = "n/a" if start is None or end is None else f"{start:.1f} at start, {end:.1f} at end"
    cpu = _cpu_model()
    return (f"Command: `{command(name, argv)}` — {_STARTED:%Y-%m-%d %H:%M} UTC, commit {_git_commit()}; "
            f"machine: {platform.machine()}{f' ({cpu})' if cpu else ''}, {os.cpu_count()} CPU cores shared with "
            f"other jobs (1-min load average {load}){_torch()}.")
