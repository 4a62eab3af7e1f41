"""A test-only op with a programming error; importing this module registers it.

Shard tasks import an op's module on the Dask worker (ShardTask.op_modules), so the op must
register itself at import. Only the test that uses it imports this module, and it removes
the op from the registry afterwards (other tests list every registered op).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register


@register
@dataclass(frozen=True)
class BuggyOp(Intervention):
    """Test-only channel op whose apply() has a bug (NameError): it must fail the build, not quarantine."""

    name: ClassVar[str] = "test_buggy"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    def sample_params(self, rng: np.random.Generator, utt: object) -> dict:
        return {}

    def apply(self, audio: np.ndarray, sr: int, **params: object) -> np.ndarray:
        return audio + undefined_gain  # noqa: F821 - the planted bug
