"""data.exclude_ops: training without the clips an op made, in grid and block batching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from intervox.config import load_config
from intervox.errors import ConfigError, TrainingError
from intervox.shards.read import iter_tar_samples
from intervox.shards.write import write_shard
from intervox.training.config import TrainConfig
from intervox.training.loop import train
from intervox.training.synthetic import write_synthetic_features

SMALL = ["model.hidden_dims=[32]", "model.speaker_dim=8", "model.content_dim=8",
         "data.speakers_per_batch=2", "data.contents_per_batch=4", "optim.steps=3", "debug.log_keys=true"]
BLOCKS = ["data.batching=blocks", "data.blocks_per_batch=2"]


@pytest.fixture(scope="module")
def half_copies(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """Feature shards whose speakers 0-3 are plain clips and 4-7 praat_gender copies, and the copies' keys."""
    feats = tmp_path_factory.mktemp("exclude") / "feats"
    write_synthetic_features(feats, speakers=8, contents=8, layers=3, hidden=16, block_speakers=4,
                             block_contents=4, blocks_per_shard=1, frames=4)
    (feats / "index.json").write_text(json.dumps({"features": {"frames_layers": [3]}}))
    copies = set()
    for tar in sorted(feats.glob("*.tar")):
        samples = []
        for s in iter_tar_samples(tar):
            meta = json.loads(s["json"])
            if int(meta["speaker"][-4:]) < 4:
                meta = {**meta, "op": None, "source_key": None}
            elif meta["split"] == "train":
                copies.add(s["__key__"])
            samples.append({k: meta if k == "json" else s[k] for k in ("__key__", "json", "pooled.npy",
                                                                       "frames.npy")})
        write_shard(tar, samples, plan_hash="synthetic")
    return feats, copies


def _train(feats: Path, run_dir: Path, *overrides: str) -> dict:
    cfg = load_config(None, TrainConfig, [f"data.features=[{feats}]", f"run_dir={run_dir}", *SMALL,
                                          "model.subspace_layers={speaker: 1, content: 3}", *overrides])
    return train(cfg)[0]


def _keys_seen(run_dir: Path) -> set[str]:
    lines = (run_dir / "seed-0" / "debug" / "rank-0.txt").read_text().splitlines()
    return {line.split("\t")[2] for line in lines if line.startswith("K\t")}


@pytest.mark.parametrize("batching", [[], BLOCKS], ids=["grid", "blocks"])
def test_excluded_ops_clips_are_never_drawn(half_copies: tuple[Path, set[str]], tmp_path: Path,
                                            batching: list[str]) -> None:
    feats, copies = half_copies
    _train(feats, tmp_path / "all", *batching)
    assert _keys_seen(tmp_path / "all") & copies  # the copies are drawn unless left out
    summary = _train(feats, tmp_path / "run", "data.exclude_ops=[praat_gender]", *batching)
    seen = _keys_seen(tmp_path / "run")
    assert seen and not seen & copies
    if not batching:
        assert summary["data"]["excluded_clips"] == len(copies) == 32
        assert summary["data"]["speakers"] == 4


@pytest.mark.parametrize("batching", [[], BLOCKS], ids=["grid", "blocks"])
def test_the_frame_loss_with_its_copies_left_out_is_refused(half_copies: tuple[Path, set[str]],
                                                            tmp_path: Path, batching: list[str]) -> None:
    with pytest.raises(TrainingError, match="has a timing-preserving copy"):
        _train(half_copies[0], tmp_path / "run", "data.exclude_ops=[praat_gender]",
               "loss.frame_content_weight=1", *batching)


def test_an_unknown_op_name_is_a_config_error(half_copies: tuple[Path, set[str]], tmp_path: Path) -> None:
    message = r"data.exclude_ops: names no op: 'praat_gendre' \(ops: .*praat_gender[,)]"
    with pytest.raises(ConfigError, match=message):
        _train(half_copies[0], tmp_path / "run", "data.exclude_ops=[praat_gendre]")
    assert not (tmp_path / "run").exists()
