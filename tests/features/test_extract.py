"""Feature stage: audio shards in, feature shards out with the same keys; resumable; bad shards counted."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from intervox.errors import ConfigError, ShardError
from intervox.features.extract import (
    extract_features,
    length_batches,
    load_upstream,
    plan_hash,
    source_sha256,
)
from intervox.shards.read import decode_sample, iter_tar_samples, list_shards
from intervox.shards.write import read_sidecar

UP = "whisper-tiny.en"


def read_features(directory):
    out = {}
    for tar in list_shards(directory):
        for s in iter_tar_samples(tar):
            out[s["__key__"]] = decode_sample(s)
    return out


def test_feature_shards_mirror_audio_shards(audio_dir, tmp_path, clips):
    out = tmp_path / "feats"
    report = extract_features(audio_dir, out, UP, frames_layers=(2, 4), device="cpu")
    assert report["written"] == 2 and report["clips"] == 4 and report["bad_shards"] == []
    assert [p.name for p in list_shards(out)] == [p.name for p in list_shards(audio_dir)]
    feats = read_features(out)
    audio = read_features(audio_dir)
    assert feats.keys() == audio.keys()
    ident = load_upstream(UP, "cpu").identity
    for key, f in feats.items():
        assert set(f) - {"__key__", "__shard__"} == {"json", "pooled.npy", "frames.npy"}
        assert f["json"] == {**audio[key]["json"], "upstream": ident}
        assert f["pooled.npy"].dtype == np.float16 and f["pooled.npy"].shape == (5, 384)
        n_frames = int(np.ceil(np.ceil(f["json"]["duration"] * 16000 / 160) / 2))
        assert f["frames.npy"].dtype == np.float16 and f["frames.npy"].shape == (2, n_frames, 384)
        frames_mean = f["frames.npy"].astype(np.float32).mean(axis=1)
        assert np.allclose(frames_mean, f["pooled.npy"][[2, 4]], atol=2e-2)
    # pooled equals the mean of the upstream's own hidden states, computed directly for one clip
    key = "train-000001-000003"
    direct = load_upstream(UP, "cpu").forward([audio[key]["flac"][0]])[0].mean(dim=1).numpy()
    np.testing.assert_allclose(feats[key]["pooled.npy"].astype(np.float32), direct, atol=2e-2, rtol=5e-3)
    for tar in list_shards(out):
        expected = plan_hash(ident, (2, 4), source_sha256(audio_dir / tar.name))
        assert read_sidecar(tar).plan_hash == expected and read_sidecar(tar).count == 2
    index = json.loads((out / "index.json").read_text())
    assert index["kind"] == "features" and index["source"]["dir"] == str(audio_dir)  # its own index
    assert index["upstream"] == ident and index["features"]["frames_layers"] == [2, 4]
    assert [e["shard"] for e in index["shards"]] == ["train-000000.tar", "train-000001.tar"]


def test_rerun_does_no_work_and_changes_redo(audio_dir, tmp_path):
    out = tmp_path / "feats"
    extract_features(audio_dir, out, UP, device="cpu")
    before = {p.name: p.stat().st_mtime_ns for p in list_shards(out)}
    again = extract_features(audio_dir, out, UP, device="cpu")
    assert again["written"] == 0 and again["skipped_complete"] == 2 and again["clips"] == 0
    assert {p.name: p.stat().st_mtime_ns for p in list_shards(out)} == before
    # other frame layers -> other plan hash -> every shard is redone
    redo = extract_features(audio_dir, out, UP, frames_layers=(1,), device="cpu")
    assert redo["written"] == 2 and redo["skipped_complete"] == 0


def test_corrupt_shard_is_skipped_then_fails_above_fraction(audio_dir, tmp_path, caplog):
    bad = audio_dir / "train-000001.tar"
    bad.write_bytes(bad.read_bytes()[:1500])  # truncated copy
    with pytest.raises(ShardError, match=r"1 of 2 source shards are corrupt.*train-000001.tar"):
        extract_features(audio_dir, tmp_path / "f1", UP, device="cpu")
    assert (tmp_path / "f1" / "train-000000.tar").is_file()  # the good shard was still written
    report = extract_features(audio_dir, tmp_path / "f2", UP, device="cpu", max_bad_fraction=0.5)
    assert report["written"] == 1 and [b["shard"] for b in report["bad_shards"]] == ["train-000001.tar"]
    assert "train-000001.tar" in caplog.text
    index = json.loads((tmp_path / "f2" / "index.json").read_text())
    assert index["features"]["bad_shards"][0]["shard"] == "train-000001.tar"


def test_bad_frame_layer_and_empty_dir(audio_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"frames_layers \[5\]"):
        extract_features(audio_dir, tmp_path / "f", UP, frames_layers=(5,), device="cpu")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ShardError, match="no audio shards"):
        extract_features(tmp_path / "empty", tmp_path / "f", UP, device="cpu")


def test_length_batches_sort_and_fill():
    durations = [5.0, 1.0, 2.0, 30.0, 2.5]
    batches = length_batches(durations, batch_seconds=8.0)
    assert sorted(i for b in batches for i in b) == list(range(5))
    assert batches == [[1, 2, 4], [0], [3]]  # 3 x 2.5 <= 8; 5 alone; 30 alone (over budget but >= 1)


def test_cli_features(audio_dir, tmp_path):
    from intervox.features.commands import features_cmd

    out = tmp_path / "cli"
    result = CliRunner().invoke(features_cmd, [str(audio_dir), "--out", str(out), "--upstream", UP,
                                               "--frames-layers", "4", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clips"] == 4
    assert read_features(out)["train-000000-000000"]["frames.npy"].shape[0] == 1
    assert "Example" in CliRunner().invoke(features_cmd, ["--help"]).output


@pytest.mark.slow
def test_dask_workers_give_the_same_features(audio_dir, tmp_path):
    extract_features(audio_dir, tmp_path / "serial", UP, device="cpu")
    report = extract_features(audio_dir, tmp_path / "dask", UP, device="cpu", workers=2)
    assert report["workers"] == 2 and report["written"] == 2
    a, b = read_features(tmp_path / "serial"), read_features(tmp_path / "dask")
    for key in a:
        np.testing.assert_allclose(a[key]["pooled.npy"].astype(np.float32),
                                   b[key]["pooled.npy"].astype(np.float32), atol=1e-2)
