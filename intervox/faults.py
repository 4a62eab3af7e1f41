"""Deterministic fault points: a process SIGKILLs itself (or raises) at a named point when told to.

Fault-injection tests must not race the code they kill (a kill "shortly after the first
checkpoint" can land after training has finished on a fast machine). Instead the code
calls `fault_point(NAME, step)` where a kill is interesting, and a test sets

    INTERVOX_FAULT=NAME          kill at the first call of NAME
    INTERVOX_FAULT=NAME:STEP     kill at the call of NAME with this step

so the process dies at exactly that point, every time. With `INTERVOX_FAULT_ONCE=PATH` a
fault fires only in the process that creates PATH first (O_EXCL; it writes its pid there):
a Dask task that is retried after its worker was killed then runs through.

The names and what their step means:

- `train.after_checkpoint`  a training checkpoint was saved; step = the optimizer step it holds
  (intervox/training/loop.py).
- `finetune.after_checkpoint`  a fine-tuning checkpoint was saved; step = the optimizer step it
  holds (intervox/training/finetune.py).
- `shards.after_shard`      the main process recorded a finished shard (tar + sidecar + stats
  are on disk); step = 0-based count of shards finished in this run (intervox/pipeline/run.py).
- `shards.in_task`          inside a shard task, after its clips are rendered and before its
  tar is written; step = the shard's position in the plan (intervox/pipeline/task.py). Runs
  on the Dask worker: it kills the worker, not the build.
- `features.after_shard`    the feature stage recorded a finished feature shard; step =
  0-based count of feature shards finished in this run (intervox/features/extract.py).
- `features.in_task`        RAISES InjectedFaultError (does not kill): a feature task has its features
  and is about to write its shard; step = the source shard's position in the sorted list. It
  stands for a task that fails (a bug, a CUDA error), which the stage retries; with
  INTERVOX_FAULT_ONCE the retry runs through (intervox/features/extract.py).

Without INTERVOX_FAULT a fault point costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "INTERVOX_FAULT"
ONCE_ENV = "INTERVOX_FAULT_ONCE"

NAMES = ("train.after_checkpoint", "finetune.after_checkpoint", "shards.after_shard", "shards.in_task",
         "features.after_shard", "features.in_task")
RAISING = ("features.in_task",)  # these raise InjectedFaultError: a failing task, not a dying process


class InjectedFaultError(RuntimeError):
    """The failure a RAISING fault point raises (a test's stand-in for a bug in a task)."""


def parse_fault(value: str) -> tuple[str, int | None]:
    """Return (name, step or None) of an INTERVOX_FAULT value; ValueError for an unknown name or step."""
    name, _, step = value.strip().partition(":")
    if name not in NAMES:
        raise ValueError(f"{FAULT_ENV}={value!r}: unknown fault point {name!r} (known: {', '.join(NAMES)})")
    try:
        return name, int(step) if step else None
    except ValueError:
        raise ValueError(f"{FAULT_ENV}={value!r}: the step after ':' must be an integer") from None


def fault_point(name: str, step: int | None = None) -> None:
    """SIGKILL this process (raise InjectedFaultError for a RAISING point) when INTERVOX_FAULT names this
    point (and step); otherwise return."""
    value = os.environ.get(FAULT_ENV)
    if not value:
        return
    want, want_step = parse_fault(value)
    if want != name or (want_step is not None and want_step != step):
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        try:  # O_EXCL: exactly one process ever wins the right to die
            fd = os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
    if name in RAISING:
        raise InjectedFaultError(f"{FAULT_ENV}={value}: injected failure at {name} (step {step})")
    os.kill(os.getpid(), signal.SIGKILL)
