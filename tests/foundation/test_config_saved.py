"""A run saves the resolved config: bases merged, overrides applied, no `base` key left."""

from __future__ import annotations

from pathlib import Path

import yaml

from intervox.config import load_config
from intervox.training.config import TrainConfig
from intervox.training.loop import train
from intervox.training.synthetic import write_synthetic_features

ROOT = Path(__file__).resolve().parents[2]


def test_training_run_saves_the_composed_config(tmp_path):
    feats = tmp_path / "feats"
    write_synthetic_features(feats, speakers=4, contents=8, layers=3, hidden=16, blocks_per_shard=1)
    child = tmp_path / "small.yaml"
    child.write_text(f"base: {ROOT / 'configs/train/default.yaml'}\n"
                     "seeds: [0]\nmodel: {hidden_dims: [32], speaker_dim: 8, content_dim: 8,"
                     " subspace_layer_ranges: {speaker: [0, 1], content: [2, 3]}}\n"
                     "data: {speakers_per_batch: 4, contents_per_batch: 8}\n"
                     # no real cohort, no frames
                     "loss: {cohort_weight: 0, cohort_speaker_weight: 0, frame_content_weight: 0}\n")
    cfg = load_config(child, TrainConfig, [f"data.features=[{feats}]", f"run_dir={tmp_path / 'run'}",
                                           "optim.steps=2"])
    train(cfg)
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert "base" not in saved
    assert saved["model"]["layer"] == 2 and saved["model"]["hidden_dims"] == [32]  # base + file
    assert saved["model"]["normalize_layers"] is True  # from the base, untouched by the file
    assert saved["model"]["input"] == "weighted_sum"  # from the base
    assert saved["model"]["subspace_layer_ranges"] == {"speaker": [0, 1], "content": [2, 3]}  # the file's
    assert saved["optim"]["steps"] == 2 and saved["data"]["features"] == [str(feats)]  # overrides
    assert load_config(tmp_path / "run" / "config.yaml", TrainConfig) == cfg
