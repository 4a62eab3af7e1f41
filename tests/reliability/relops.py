"""A test-only op that kills its own worker process once; importing this module registers it.

Shard tasks import an op's module on the Dask worker (ShardTask.op_modules), so the op
must register itself at import. Only the test that uses it imports this module, and it
removes the op from the registry afterwards (other tests list every registered op).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register


@register
@dataclass(frozen=True)
class KillWorkerOnce(Intervention):
    """Test-only channel op: halves the gain; its first call ever (no marker yet) SIGKILLs its process."""

    name: ClassVar[str] = "test_kill_worker_once"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True
    marker: str = ""

    def sample_params(self, rng: np.random.Generator, utt: object) -> dict:
        return {"gain": 0.5}

    def apply(self, audio: np.ndarray, sr: int, *, gain: float) -> np.ndarray:
        try:  # O_EXCL: exactly one process ever wins the right to die
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return (audio * gain).astype(np.float32)
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


