"""Training (and evaluation's feature lookup) on a feature set at an s3:// URL: a local copy, same weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from intervox.config import load_config
from intervox.evaluation.run import features_from_config
from intervox.shards import storage
from intervox.training.config import TrainConfig
from intervox.training.loop import train

SMALL = ["model.hidden_dims=[64]", "model.speaker_dim=16", "model.content_dim=16",
         "data.speakers_per_batch=4", "data.contents_per_batch=8", "optim.steps=6"]


def test_training_on_an_s3_feature_set_gives_the_local_runs_weights(
        features: Path, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path / "cache"))
    url = f"{s3_bucket}/features"
    assert storage.upload_tree(features, url) > 0
    for name, feats in (("local", str(features)), ("s3", url)):
        overrides = [f"data.features=[{feats}]", f"run_dir={tmp_path / name}", *SMALL]
        train(load_config(None, TrainConfig, overrides))
    weights = "seed-0/projector.safetensors"
    assert (tmp_path / "s3" / weights).read_bytes() == (tmp_path / "local" / weights).read_bytes()
    saved = load_config(tmp_path / "s3" / "config.yaml", TrainConfig)
    assert saved.data.features == (url,)  # the run records the set as given, not this machine's copy
    copy = features_from_config({"data": {"features": [url]}}, tmp_path / "s3")  # what `intervox eval` reads
    assert copy.is_relative_to(tmp_path / "cache")
    assert sorted(p.name for p in copy.glob("*.tar")) == sorted(p.name for p in features.glob("*.tar"))
