"""Faults and untrusted input in `intervox features`: SIGKILL + rerun, corrupt shards, unsafe members."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from relhelpers import UNSAFE_KINDS, shas, tamper, truncate

from intervox.audio import encode_flac, load_audio
from intervox.corpora.manifest import read_manifest
from intervox.errors import ShardError
from intervox.features.extract import extract_features
from intervox.shards.write import write_shard

UP = "whisper-tiny.en"


def audio_shards(source: Path, directory: Path, n_shards: int = 12) -> Path:
    """Write `n_shards` one-clip audio shards of the espeak-ng source clips (cycled); return the folder."""
    utts = read_manifest(source)
    for i in range(n_shards):
        utt = utts[i % len(utts)]
        audio, sr = load_audio(utt.audio, 16000)
        key = f"train-{i:06d}-000000"
        meta = {"key": key, "speaker": utt.speaker, "content": utt.content_id, "channel": "clean",
                "language": "en", "text": utt.text, "split": "train", "block": -1, "op": None,
                "sr": sr, "duration": round(audio.size / sr, 4)}
        write_shard(directory / f"train-{i:06d}.tar", [{"__key__": key, "flac": encode_flac(audio, sr),
                                                        "json": meta}], plan_hash="audio")
    return directory


@pytest.fixture(scope="module")
def clean(source, tmp_path_factory) -> tuple[Path, dict[str, str]]:  # noqa: ANN001
    """(audio dir, {shard: sha256} of an uninterrupted feature run over it)."""
    root = tmp_path_factory.mktemp("featclean")
    audio = audio_shards(source, root / "audio")
    report = extract_features(audio, root / "feats", UP, device="cpu")
    assert report["written"] == 12 and report["bad_shards"] == []
    return audio, shas(root / "feats")


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_gives_identical_feature_shards(clean, tmp_path, run_cli) -> None:  # noqa: ANN001
    audio, expected = clean
    out = tmp_path / "feats"
    killed = run_cli(["-m", "intervox", "features", str(audio), "--out", str(out), "--upstream", UP,
                      "--device", "cpu"], fault="features.after_shard:2")
    assert killed.killed, killed.stderr  # died right after its third feature shard
    done = sorted(p.name for p in out.glob("*.tar"))
    assert len(done) == 3
    assert {n: expected[n] for n in done} == shas(out)  # what a reader sees is whole and final

    report = extract_features(audio, out, UP, device="cpu")
    assert (report["skipped_complete"], report["written"]) == (3, 9)
    assert shas(out) == expected
    assert not list(out.rglob("*.tmp"))


def test_corrupt_shards_are_skipped_named_counted_and_bounded(clean, tmp_path, caplog) -> None:  # noqa: ANN001
    src, expected = clean
    bad_dir = tmp_path / "audio"
    bad_dir.mkdir()
    for p in src.iterdir():
        (bad_dir / p.name).write_bytes(p.read_bytes())
    truncate(bad_dir / "train-000001.tar")
    with caplog.at_level(logging.WARNING):
        report = extract_features(bad_dir, tmp_path / "f", UP, device="cpu", max_bad_fraction=0.1)
    assert [b["shard"] for b in report["bad_shards"]] == ["train-000001.tar"]
    assert "train-000001.tar" in caplog.text and "skipping bad shard" in caplog.text
    assert report["written"] == 11 and not (tmp_path / "f" / "train-000001.tar").exists()
    assert {k: v for k, v in expected.items() if k != "train-000001.tar"} == shas(tmp_path / "f")
    index = json.loads((tmp_path / "f" / "index.json").read_text())
    assert [b["shard"] for b in index["features"]["bad_shards"]] == ["train-000001.tar"]

    truncate(bad_dir / "train-000002.tar", keep=0.3)  # 2 of 12 bad > 0.1: the run fails, naming both
    with pytest.raises(ShardError, match=r"2 of 12 .*train-000001.tar, train-000002.tar"):
        extract_features(bad_dir, tmp_path / "f", UP, device="cpu", max_bad_fraction=0.1)


@pytest.mark.parametrize("kind", UNSAFE_KINDS)
def test_unsafe_member_refused_by_feature_stage(clean, tmp_path, kind) -> None:  # noqa: ANN001
    src, _ = clean
    audio = tmp_path / "audio"
    audio.mkdir()
    (audio / "train-000000.tar").write_bytes((src / "train-000000.tar").read_bytes())
    (audio / "train-000000.json").write_bytes((src / "train-000000.json").read_bytes())
    marker = tmp_path / "unpickled"
    tamper(audio / "train-000000.tar", kind, marker)
    with pytest.raises(ShardError) as err:
        extract_features(audio, tmp_path / "f", UP, device="cpu", max_bad_fraction=0.0)
    assert "train-000000.tar" in str(err.value)
    assert not marker.exists() and not (tmp_path / "f" / "train-000000.tar").exists()
    assert not Path("/tmp/train-000000-000000.json").exists()
