"""Faults and untrusted files in training: SIGKILL + resume, bad feature shards, pickled checkpoints."""

from __future__ import annotations

import json
import logging
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from relhelpers import UNSAFE_KINDS, WritesMarker, tamper, truncate

from intervox.config import load_config
from intervox.errors import ShardError, TrainingError
from intervox.locking import LOCK_FILE
from intervox.training.api import load_trained
from intervox.training.checkpoint import load_checkpoint
from intervox.training.config import TrainConfig
from intervox.training.data import iter_fused_samples, load_feature_table, split_shards
from intervox.training.loop import train
from intervox.training.synthetic import write_synthetic_features

SMALL = ["model.hidden_dims=[32]", "model.speaker_dim=8", "model.content_dim=8",
         "data.speakers_per_batch=4", "data.contents_per_batch=8"]


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 speakers x 16 contents of synthetic features: 4 train shards of one 4 x 8 block (read-only)."""
    d = tmp_path_factory.mktemp("relfeats") / "synthetic"
    write_synthetic_features(d, speakers=8, contents=16, layers=3, hidden=16, blocks_per_shard=1)
    return d


@pytest.fixture
def features_copy(features: Path, tmp_path: Path) -> Path:
    """A private copy of the feature folder, for tests that damage shards."""
    return Path(shutil.copytree(features, tmp_path / "feats"))


def overrides(features: Path, run_dir: Path, *extra: str) -> list[str]:
    return [f"data.features=[{features}]", f"run_dir={run_dir}", *SMALL, *extra]


def run(features: Path, run_dir: Path, *extra: str) -> list[dict]:
    return train(load_config(None, TrainConfig, overrides(features, run_dir, *extra)))


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_rerun_gives_identical_projector(
    features, tmp_path, run_cli  # noqa: ANN001
) -> None:
    common = ["optim.steps=150", "checkpoint_every=15", "device=cpu"]
    args = ["-m", "intervox.training"]
    run(features, tmp_path / "whole", *common)  # the uninterrupted reference, in this process

    run_dir = tmp_path / "killed"
    ckpts = run_dir / "seed-0" / "checkpoints"
    killed = run_cli([*args, *overrides(features, run_dir, *common)], fault="train.after_checkpoint:45")
    assert killed.killed, killed.stderr  # died right after saving step 45, never by a timer
    assert not (run_dir / "seed-0" / "projector.safetensors").exists()
    assert max(int(p.name[5:11]) for p in ckpts.glob("step-*.pt")) == 45
    assert (run_dir / LOCK_FILE).is_file()  # the killed run could not release its lock

    again = run_cli([*args, *overrides(features, run_dir, *common)])
    assert again.returncode == 0, again.stderr
    assert "taking over the lock left by pid" in again.stderr and not (run_dir / LOCK_FILE).exists()
    summary = json.loads((run_dir / "seed-0" / "summary.json").read_text())
    assert summary["resumed_from"] == 45 and summary["completed"]
    a = (tmp_path / "whole" / "seed-0" / "projector.safetensors").read_bytes()
    assert (run_dir / "seed-0" / "projector.safetensors").read_bytes() == a
    assert not list(run_dir.rglob("*.tmp"))


def test_corrupt_shard_is_skipped_named_counted_and_bounded(features_copy, tmp_path, caplog) -> None:  # noqa: ANN001
    names = split_shards(features_copy, "train")
    assert len(names) == 4
    truncate(features_copy / names[1])
    with pytest.raises(ShardError, match=names[1]):  # default: no bad shard is allowed
        run(features_copy, tmp_path / "strict", "optim.steps=2")
    with caplog.at_level(logging.WARNING):
        summary = run(features_copy, tmp_path / "lenient", "optim.steps=2",
                      "data.max_bad_shard_fraction=0.25")[0]
    assert f"skipping bad feature shard {names[1]}" in caplog.text
    on_disk = json.loads((tmp_path / "lenient" / "seed-0" / "summary.json").read_text())
    assert [b["shard"] for b in on_disk["data"]["bad_shards"]] == [names[1]]
    assert summary["completed"] and summary["data"]["clips"] == 3 * 32
    truncate(features_copy / names[2])  # 2 of 4 > 0.25: refused
    with pytest.raises(ShardError, match=names[2]):
        run(features_copy, tmp_path / "two", "optim.steps=2", "data.max_bad_shard_fraction=0.25")


def test_corrupt_shard_in_block_stream_is_skipped(features_copy, tmp_path, caplog) -> None:  # noqa: ANN001
    names = split_shards(features_copy, "train")
    truncate(features_copy / names[0])
    with pytest.raises(ShardError, match=names[0]):
        run(features_copy, tmp_path / "strict", "optim.steps=2", "data.batching=blocks",
            "data.blocks_per_batch=1")
    with caplog.at_level(logging.WARNING):
        summary = run(features_copy, tmp_path / "ok", "optim.steps=6", "data.batching=blocks",
                      "data.blocks_per_batch=1", "data.max_bad_shard_fraction=0.25")[0]
    assert summary["completed"] and f"skipping bad shard {names[0]}" in caplog.text


@pytest.mark.parametrize("kind", UNSAFE_KINDS)
def test_unsafe_member_refused_by_training_readers(features_copy, tmp_path, kind) -> None:  # noqa: ANN001
    names = split_shards(features_copy, "train")
    marker = tmp_path / "unpickled"
    tamper(features_copy / names[0], kind, marker)
    with pytest.raises(ShardError, match=names[0]):
        load_feature_table([features_copy], "train")  # grid batching
    with pytest.raises(ShardError, match=names[0]):
        list(iter_fused_samples([features_copy], names))  # block streaming
    bad: list[dict] = []
    clips = list(iter_fused_samples([features_copy], names, max_bad_fraction=0.25, total=4, bad_shards=bad))
    assert len(clips) == 3 * 32 and [b["shard"] for b in bad] == [names[0]]
    assert not marker.exists()


def test_pyd_member_stops_a_training_run(features_copy, tmp_path) -> None:  # noqa: ANN001
    names = split_shards(features_copy, "train")
    marker = tmp_path / "unpickled"
    tamper(features_copy / names[2], "pyd", marker)
    with pytest.raises(ShardError, match="format intervox never writes"):
        run(features_copy, tmp_path / "r", "optim.steps=2", "data.batching=blocks", "data.blocks_per_batch=1")
    assert not marker.exists()


def test_pickled_checkpoint_is_refused_and_never_executed(features, tmp_path) -> None:  # noqa: ANN001
    run(features, tmp_path / "r", "optim.steps=4", "checkpoint_every=2", "max_steps=2")
    ckpt = tmp_path / "r" / "seed-0" / "checkpoints" / "step-000002.pt"
    assert load_checkpoint(ckpt)["step"] == 2  # a real checkpoint loads with weights_only=True
    marker = tmp_path / "unpickled"
    state = torch.load(ckpt, weights_only=True)
    state["data"] = {"kind": "grid", "payload": WritesMarker(str(marker))}
    evil = ckpt.with_name("step-000003.pt")  # the newest: a resume loads it
    torch.save(state, evil)
    with pytest.raises(TrainingError, match="step-000003.pt: cannot load checkpoint"):
        load_checkpoint(evil)
    with pytest.raises(TrainingError, match="step-000003.pt: cannot load checkpoint"):
        run(features, tmp_path / "r", "optim.steps=4", "checkpoint_every=2")
    assert not marker.exists()


def test_projector_is_safetensors_and_a_pickle_in_its_place_is_refused(features, tmp_path) -> None:  # noqa: ANN001
    run(features, tmp_path / "r", "optim.steps=2")
    path = tmp_path / "r" / "seed-0" / "projector.safetensors"
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")  # safetensors: u64 header size + JSON header + raw tensors
    header = json.loads(raw[8 : 8 + header_len])
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    assert "__metadata__" in header and tensors and all(v["dtype"] == "F32" for v in tensors.values())
    assert load_trained(tmp_path / "r").subspaces == {"speaker": 8, "content": 8}
    marker = tmp_path / "unpickled"
    path.write_bytes(pickle.dumps(WritesMarker(str(marker))))
    with pytest.raises(TrainingError, match="not a readable safetensors file"):
        load_trained(tmp_path / "r")
    assert not marker.exists()
