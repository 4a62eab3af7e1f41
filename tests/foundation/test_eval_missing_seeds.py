"""`intervox eval` on a multi-seed run whose last seeds never finished names the missing seeds."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from intervox.config import dump_config
from intervox.errors import IntervoxError
from intervox.evaluation.config import EvalConfig
from intervox.evaluation.run import read_run_config, run_systems
from intervox.training.checkpoint import export_projector
from intervox.training.config import ModelConfig, TrainConfig
from intervox.training.model import InputSpec, SubspaceProjector


def write_run(run_dir: Path, n_seeds: int, finished: list[int]) -> None:
    """A run dir configured for `n_seeds` seeds of which only `finished` exported a projector."""
    cfg = TrainConfig(run_dir=str(run_dir), seeds=tuple(range(10, 10 + n_seeds)),
                      model=ModelConfig(layer=1, hidden_dims=(8,), speaker_dim=4, content_dim=4))
    run_dir.mkdir(parents=True)
    dump_config(cfg, run_dir / "config.yaml")
    spec = InputSpec(name="fake", layers=3, hidden=6)
    for k in range(n_seeds):
        (run_dir / f"seed-{k}" / "checkpoints").mkdir(parents=True)  # every seed started
        if k in finished:
            with torch.random.fork_rng():
                torch.manual_seed(k)
                model = SubspaceProjector([spec], cfg.model)
            dump_config(cfg, run_dir / f"seed-{k}" / "config.yaml")
            export_projector(run_dir / f"seed-{k}" / "projector.safetensors", model,
                             {"inputs": [spec.to_dict()]})


def test_unfinished_seeds_are_named_and_recorded(tmp_path, caplog):
    write_run(tmp_path / "run", n_seeds=3, finished=[0, 1])
    cfg = EvalConfig(layer_baselines=False)
    with caplog.at_level(logging.WARNING, logger="intervox.evaluation.run"):
        systems, info = run_systems(tmp_path / "run", read_run_config(tmp_path / "run"), None, None, cfg)
    assert [s.seed for s in systems if s.name == "projector"] == [0, 1]
    assert info["seeds"] == ["seed-0", "seed-1"] and info["seeds_missing"] == ["seed-2"]
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "1 of the 3 configured seeds did not finish" in warning and "seed-2" in warning


def test_finished_run_warns_nothing(tmp_path, caplog):
    write_run(tmp_path / "run", n_seeds=2, finished=[0, 1])
    with caplog.at_level(logging.WARNING, logger="intervox.evaluation.run"):
        _, info = run_systems(tmp_path / "run", read_run_config(tmp_path / "run"), None, None,
                              EvalConfig(layer_baselines=False))
    assert info["seeds_missing"] == [] and not caplog.records


def test_no_finished_seed_is_an_error(tmp_path):
    write_run(tmp_path / "run", n_seeds=2, finished=[])
    with pytest.raises(IntervoxError, match="no seed-K/projector.safetensors"):
        run_systems(tmp_path / "run", read_run_config(tmp_path / "run"), None, None, EvalConfig())
