"""Shared bench plumbing: result records, timing, child-process peak RSS, machine and versions.

Every claim is a ratio measured inside one run: the machine is shared and noisy, so a
candidate and its baseline are timed interleaved (A B A B ...) and each side keeps its
best (minimum) time, the estimate least disturbed by other load. Where the machine itself bounds
a ratio (cores, the decoder), the result also carries that ceiling, from the same run.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One measured figure: value with its unit, the baseline from the same run, ratio and target."""

    figure: str  # "1" .. "6"
    name: str  # short id, e.g. "ops/praat_gender"
    workload: str  # what was measured, in words
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    ratio: float | None = None
    ratio_label: str = ""  # what the ratio means, e.g. "pipeline / plain loop time"
    target: str = ""  # e.g. "<= 1.10"; empty when the figure has no target
    met: bool | None = None  # None when there is no target
    notes: str = ""
    # The best ratio this machine allows, bounded by this same run's own measurements (cores over
    # CPU seconds, a decode limit): a miss whose ceiling also misses is out of reach here.
    ceiling: float | None = None
    ceiling_label: str = ""  # how the bound is computed, in words

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class FigureError:
    """A figure that crashed: its traceback is kept so the run can continue and report it."""

    figure: str
    name: str
    error: str

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "crashed": True}


def check_target(ratio: float | None, target: str) -> bool | None:
    """Return whether `ratio` meets `target` ("<= x" or ">= x"); None without a target or ratio."""
    if not target or ratio is None:
        return None
    op, num = target.split()
    return ratio <= float(num) if op == "<=" else ratio >= float(num)


@dataclass
class Bench:
    """Run-wide settings and the collected results."""

    quick: bool
    work: Path  # scratch folder for data the figures make
    results: list[Result | FigureError] = field(default_factory=list)
    t0: float = field(default_factory=time.perf_counter)

    @property
    def cores(self) -> int:
        """Return the number of CPU cores this process may run on."""
        try:
            return len(os.sched_getaffinity(0))
        except AttributeError:
            return os.cpu_count() or 1

    def add(self, result: Result) -> Result:
        """Record `result` (met computed from ratio and target) and print it."""
        if result.met is None:
            result.met = check_target(result.ratio, result.target)
        self.results.append(result)
        ratio = f" ratio {result.ratio:.3g} ({result.ratio_label})" if result.ratio is not None else ""
        met = "" if result.met is None else (" [met]" if result.met else " [MISSED]")
        value = f"{result.value:.4g}" if result.value is not None else "-"
        ceiling = f"; ceiling here {result.ceiling:.3g}" if result.ceiling is not None else ""
        target = result.target or "-"
        log(self, f"  {result.name}: {value} {result.unit}{ratio} target {target}{met}{ceiling}")
        return result


def log(bench: Bench | None, msg: str) -> None:
    """Print a progress line with the run's elapsed time."""
    elapsed = time.perf_counter() - bench.t0 if bench is not None else 0.0
    print(f"[{elapsed:7.1f}s] {msg}", flush=True)


def interleaved_best(fns: Sequence[Callable[[], object]], rounds: int) -> list[float]:
    """Return the best (minimum) wall seconds of each fn over `rounds` interleaved rounds."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t)
    return best


def paired_best(fns: Sequence[Callable[[], object]], min_seconds: float, max_rounds: int = 30
                ) -> tuple[list[float], int]:
    """Return (best wall seconds of each fn, rounds): fns run interleaved (A B A B ...), at least 3
    rounds and until each has spent `min_seconds`, so a burst of load hits both sides alike."""
    best, spent, rounds = [float("inf")] * len(fns), [0.0] * len(fns), 0
    while rounds < 3 or (min(spent) < min_seconds and rounds < max_rounds):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            best[i], spent[i] = min(best[i], dt), spent[i] + dt
        rounds += 1
    return best, rounds


def best_rate(fn: Callable[[], float], min_seconds: float, max_rounds: int = 20) -> tuple[float, int]:
    """Return (best units per second, rounds): fn() does one round and returns its units of work.

    Rounds repeat until `min_seconds` of measured time have passed (at least two rounds).
    """
    best, spent, rounds = 0.0, 0.0, 0
    while rounds < 2 or (spent < min_seconds and rounds < max_rounds):
        t = time.perf_counter()
        units = fn()
        dt = time.perf_counter() - t
        spent += dt
        rounds += 1
        best = max(best, units / dt if dt > 0 else 0.0)
    return best, rounds


def child_env(threads: int = 1) -> dict[str, str]:
    """Return the environment of a bench child process: `threads` BLAS/torch threads, offline."""
    env = dict(os.environ)
    env.update(
        {
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TQDM_DISABLE": "1",
            "PYTHONPATH": str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
        }
    )
    return env


def run_child(args: Sequence[str], *, threads: int = 1, timeout: float = 900.0) -> tuple[dict, float]:
    """Run `python -m bench.jobs ARGS...` in a fresh process; return (its JSON result, its peak RSS MiB).

    The peak RSS is the child's own VmHWM (/proc/self/status), read by the child as it ends.
    Not `ru_maxrss`: Linux carries the high-water mark across fork + exec, so a child's
    ru_maxrss starts at its parent's resident size at fork time (every child of a bench
    that had loaded Whisper reported the same 887 MiB). Jobs run in one process (shard
    builds use the in-process scheduler), so the child's VmHWM is the whole job's peak.
    Raises RuntimeError with the child's stderr tail when it fails or times out.
    """
    cmd = [sys.executable, "-m", "bench.jobs", *args]
    try:
        proc = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=REPO,
            env=child_env(threads),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"child {' '.join(args)} ran past {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"child {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise RuntimeError(f"child {' '.join(args)} printed no JSON result: {proc.stderr[-2000:]}")
    result = json.loads(lines[-1])
    return result, float(result.pop("peak_rss_mib"))


def peak_rss_mib() -> float:
    """Return this process's peak resident set (VmHWM) in MiB; 0 where /proc is unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def drop_page_cache(paths: Sequence[Path]) -> int:
    """Ask the kernel to evict `paths` from the page cache (posix_fadvise DONTNEED); return count.

    Best effort and needs no root: clean pages are dropped, so the next read goes to disk.
    """
    n = 0
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            n += 1
        except OSError:
            pass
        finally:
            os.close(fd)
    return n


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def machine_info() -> dict:
    """Return cpu model, usable cores, RAM, load average, GPU (if any) and the OS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {
        "cpu": _cpu_model(),
        "cores": cores,
        "ram_gib": _ram_gib(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "gpu": None,
    }
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def versions() -> dict:
    """Return versions of python, intervox and the libraries the figures exercise."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in (
        "intervox",
        "torch",
        "numpy",
        "scipy",
        "soundfile",
        "soxr",
        "dask",
        "distributed",
        "praat-parselmouth",
        "pyworld",
        "librosa",
        "webdataset",
        "ctranslate2",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    try:
        out["espeak-ng"] = subprocess.run(
            ["espeak-ng", "--version"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["espeak-ng"] = None
    return out


def now_iso() -> str:
    """Return the current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
