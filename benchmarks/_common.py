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
import socket
import subprocess
import sys
import time
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


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of process ``pid`` in MB (``/proc``; None when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(db: Path, port: int, log: Path, extra: Sequence[str] = (), *,
                 timeout_s: float = 180.0) -> tuple[subprocess.Popen, float]:
    """``ser-adapt serve --store db --port port [extra]`` on this checkout's code in a subprocess
    (output appended to ``log``); returns it once ``/health`` answers 200, with the start-up seconds.

    Raises ``RuntimeError`` with the log's tail if it exits or does not answer within ``timeout_s``."""
    import httpx

    with open(log, "a") as out:   # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([str(Path(sys.executable).parent / "ser-adapt"), "serve", "--store", str(db),
                                 "--port", str(port), *extra], stdout=out, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                env={**os.environ, "PYTHONPATH": str(ROOT)})   # this checkout's code
    t0 = time.time()
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc, time.time() - t0
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.time() - t0 > timeout_s:
            proc.kill()
            raise RuntimeError(f"server did not start; log:\n{Path(log).read_text()[-2000:]}")
        time.sleep(0.3)
