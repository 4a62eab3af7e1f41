"""QC in shard tasks: planted bad ops go to quarantine, a real speaker op passes, the card shows validity."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import yaml

from intervox.config import load_config
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register
from intervox.pipeline.config import ShardsConfig
from intervox.pipeline.plan import build_plan
from intervox.pipeline.run import build_shards
from intervox.shards.read import iter_tar_samples
from intervox.shards.write import file_sha256

# 2 voices x 2 sentences: one dense 2 x 2 block, so every clip has a same-speaker reference. The
# sentences are ones whisper-tiny.en gets right from these voices before and after praat_gender
# (measured: "Open the window before dinner." from en-us p30 at pitch x1.4 loses 2/3 of its characters).
VOICES = (("en-us", 30), ("en-us", 50))
SENTENCES = ("Please bring me a glass of water.", "The sun is shining today.")
QC = {"asr_model": "whisper-tiny.en", "max_refs": 2,
      # -1 disables the channel similarity check, so a channel op can only fail on CER here
      "channel_min_similarity": -1.0}


@dataclass(frozen=True)
class SameVoice(Intervention):
    """Test-only speaker op that returns its input: it claims a new speaker but changes nothing."""

    name: ClassVar[str] = "test_same_voice"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = True

    def sample_params(self, rng: np.random.Generator, utt: object) -> dict:
        return {}

    def apply(self, audio: np.ndarray, sr: int, **params: object) -> np.ndarray:
        return audio


@pytest.fixture(scope="module")
def same_voice_op() -> Iterator[None]:
    """Register the test-only op for this module, then remove it (other tests list registered ops)."""
    from intervox.interventions import registry

    register(SameVoice)
    yield
    registry._REGISTRY.pop(SameVoice.name, None)


@pytest.fixture(scope="module")
def qc_config(tmp_path_factory: pytest.TempPathFactory, same_voice_op: None,
              espeak_manifest: Callable[..., Path]) -> Path:
    """A ShardsConfig YAML with QC on: an identity speaker op, strong praat_gender, noise at -10 dB."""
    root = tmp_path_factory.mktemp("qc_src")
    cfg = {
        "source": {"kind": "manifest", "path": str(espeak_manifest(root, VOICES, SENTENCES))},
        "interventions": [
            {"op": {"name": "test_same_voice"}, "splits": ["train"]},
            {"op": {"name": "praat_gender", "formant_ratio": [1.2, 1.2], "pitch_ratio": [1.4, 1.4],
                    "pitch_range": [1.0, 1.0]}, "splits": ["train"]},
            {"op": {"name": "noise", "snr_db": [-10.0, -10.0], "colours": ["white"]}, "splits": ["train"]},
        ],
        "block": {"speakers": 2, "contents": 2},
        "shard_size": 64,
        "qc": QC,
        # the identity judge would drop the planted same-voice op before any clip exists; QC is under test
        "identities": {"judge": "none"},
    }
    path = root / "qc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _build(config: Path, out: Path) -> object:
    return build_shards(load_config(config, ShardsConfig), out, scheduler="sync", progress=False)


@pytest.fixture(scope="module")
def built(qc_config: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """The shard set of `qc_config`, built in-process."""
    out = tmp_path_factory.mktemp("qc_shards")
    return out, _build(qc_config, out)


def _clips(out: Path) -> dict[str, dict]:
    tars = sorted(out.glob("*.tar"))
    return {s["__key__"]: json.loads(s["json"]) for tar in tars for s in iter_tar_samples(tar)}


def _quarantine(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_qc_rejects_planted_ops_and_keeps_real_ones(built: tuple[Path, object]) -> None:
    out, report = built
    clips, quarantine = _clips(out), _quarantine(out)
    assert report.planned == 16 == len(clips) + len(quarantine)  # 4 anchors x (source + 3 ops)
    assert report.written == len(clips) and report.quarantined == len(quarantine)
    by_op: dict[str | None, list[dict]] = {}
    for c in clips.values():
        by_op.setdefault(c["op"]["name"] if c["op"] else None, []).append(c)
    # the identity "speaker" op: all 4 rejected for keeping the voice, none in the tars
    same = [e for e in quarantine if "speaker_similarity 1.00 >= max 0.85 for a speaker op" in e["reason"]]
    assert len(same) == 4 and "test_same_voice" not in by_op
    assert all(e["stage"] == "qc" and e["reason"].startswith("qc: ") and e["split"] == "train" for e in same)
    # noise at -10 dB SNR destroys the words: rejected on CER
    noisy = [e for e in quarantine if "cer_increase" in e["reason"] and "channel op" in e["reason"]]
    assert len(noisy) == 4, quarantine
    assert len(quarantine) == len(same) + len(noisy)
    # strong praat_gender (formant 1.2, pitch 1.4) changes the speaker and keeps the words
    gender = by_op["praat_gender"]
    assert len(gender) == 4, quarantine
    for c in gender:
        qc = c["qc"]
        assert qc["accepted"] and qc["reason"] is None and qc["asr_model"] == "whisper-tiny.en"
        assert qc["speaker_similarity"] < 0.8 and qc["cer_increase"] < 0.15
        assert 0.8 * 1.4 < qc["pitch_ratio"] < 1.25 * 1.4
        assert qc["requested_pitch_ratio"] == pytest.approx(1.4)
        assert qc["n_refs"] == 1 and qc["own_speaker_similarity"] is not None  # the block's other content
        assert "seconds" not in qc  # timings would break byte-reproducibility
    # anchors are scored too (the source baseline), always kept
    assert len(by_op[None]) == 4 and all(c["qc"]["accepted"] and c["qc"]["speaker_similarity"] is None
                                         for c in by_op[None])
    # stats, index and card agree with the tars
    index = json.loads((out / "index.json").read_text())
    assert index["splits"]["train"]["by_op"]["praat_gender"]["clips"] == 4
    assert "test_same_voice" not in index["splits"]["train"]["by_op"]
    assert index["counts"] == {"input": 16, "written": len(clips), "quarantined": len(quarantine),
                               "source_quarantined": 0}
    qc = index["qc"]
    assert qc["n_scored"] == 16 and qc["n_rejected"] == len(quarantine)
    table = qc["validity"]["ops"]
    assert table["test_same_voice"]["accepted_fraction"] == 0.0
    assert table["test_same_voice"]["changed_speaker_fraction"] == 0.0
    assert table["test_same_voice"]["rejections"] == {"speaker_similarity": 4}
    assert table["praat_gender"]["accepted_fraction"] == 1.0
    assert table["praat_gender"]["speaker_similarity_median"] < 0.8
    assert table["noise"]["cer_increase_median"] > 0.15
    card = (out / "dataset_card.md").read_text()
    assert "## Intervention validity" in card and "QC ran inside the shard tasks" in card
    assert "| test_same_voice | speaker | 4 | 0% |" in card
    assert "need similarity to source < 0.8" in card  # the thresholds used


@pytest.mark.slow
def test_qc_build_is_byte_reproducible(built: tuple[Path, object], qc_config: Path, tmp_path: Path) -> None:
    from intervox.judges import content, speaker

    out, _ = built
    content._TRANSCRIPTS.clear()  # judge again from scratch, not from the per-process caches
    speaker._EMBEDDINGS.clear()
    _build(qc_config, tmp_path)
    for name in ("train-000000.tar", "quarantine.jsonl", "index.json", "dataset_card.md"):
        assert file_sha256(tmp_path / name) == file_sha256(out / name), name


@pytest.mark.slow
def test_shards_qc_after_the_fact_updates_card(built: tuple[Path, object], tmp_path: Path) -> None:
    import shutil

    from click.testing import CliRunner

    from intervox.shards.commands import shards

    src, _ = built
    d = tmp_path / "copy"
    shutil.copytree(src, d)
    res = CliRunner().invoke(shards, ["qc", str(d), "--fraction", "0.5", "--asr-model", "none"])
    assert res.exit_code == 0, res.output
    assert "updated the validity section" in res.output
    summary = json.loads((d / "qc_summary.json").read_text())
    assert summary["plan_hash"] == json.loads((d / "index.json").read_text())["plan_hash"]
    assert 0 < summary["n_scored"] < summary["n_clips"]
    card = (d / "dataset_card.md").read_text()
    assert "Scored after the build by `intervox shards qc`" in card
    assert "QC ran inside the shard tasks" in card  # the build's own table stays
    # a summary of another plan's shards is not shown
    summary["plan_hash"] = "0" * 64
    (d / "qc_summary.json").write_text(json.dumps(summary))
    from intervox.shards.index import write_card

    assert "Scored after the build" not in write_card(d).read_text()


def test_qc_config_is_part_of_the_plan_hash(qc_config: Path) -> None:
    from intervox.corpora.manifest import read_manifest

    cfg = load_config(qc_config, ShardsConfig)
    utts = read_manifest(cfg.source.path)
    on = build_plan(cfg, utts).plan_hash
    stricter = load_config(qc_config, ShardsConfig, ["qc.speaker_max_similarity=0.7"])
    off = load_config(qc_config, ShardsConfig, ["qc=null"])
    assert build_plan(stricter, utts).plan_hash != on
    assert off.qc is None and build_plan(off, utts).plan_hash != on
    # QC off hashes as if the field did not exist, so builds made before it stay resumable
    import hashlib

    from intervox import __version__
    from intervox.config import to_plain
    from intervox.pipeline.plan import canonical_json, manifest_hash

    hashed = to_plain(off)
    for k in ("qc", "strict", "audio_format"):  # audio_format flac (the default) hashes as before it existed
        hashed.pop(k)
    hashed["source"].pop("synth_workers")
    hashed["source"].pop("sentences_per_voice")  # None (a dense grid) hashes as before it existed
    from intervox.pipeline.identities import derive_identities

    hashed["identity_decisions"] = derive_identities(off, utts).decision_hash()
    want = canonical_json({"config": hashed, "manifest": manifest_hash(utts), "intervox": __version__})
    assert build_plan(off, utts).plan_hash == hashlib.sha256(want.encode()).hexdigest()


def test_qc_config_errors_name_the_key(qc_config: Path) -> None:
    from intervox.errors import ConfigError

    with pytest.raises(ConfigError, match="qc.fraction"):
        load_config(qc_config, ShardsConfig, ["qc.fraction=0"])
    with pytest.raises(ConfigError, match="unknown key 'thresh'"):
        load_config(qc_config, ShardsConfig, ["qc.thresh=1"])
