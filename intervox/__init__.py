"""intervox: interventional post-training of speech foundation models."""

from __future__ import annotations

__version__ = "0.1.0"


def load(run_dir):  # noqa: ANN001, ANN201 - thin re-export, typed at its definition
    """Return the trained model of `run_dir` (see intervox.training.api.TrainedModel)."""
    from intervox.training.api import load_trained

    return load_trained(run_dir)
