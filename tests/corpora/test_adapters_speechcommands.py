"""Speech Commands adapter: splits from the lists, 12-class labels, _silence_ slices, versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import espeak_wav

from intervox.corpora.adapters.speechcommands import WORDS_V001, detect_version, which_set
from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import prepare_corpus

FILES = {"yes": ["0a7c2a8d_nohash_0", "0a7c2a8d_nohash_1", "1b2c3d4e_nohash_0"],
         "no": ["1b2c3d4e_nohash_0"], "bed": ["0a7c2a8d_nohash_0"], "follow": ["1b2c3d4e_nohash_0"]}


def _layout(root: Path) -> None:
    for word, stems in FILES.items():
        (root / word).mkdir(parents=True)
        for stem in stems:
            espeak_wav(word, root / word / f"{stem}.wav", pitch=80 if stem.startswith("0a") else 30)
    (root / "bed" / "2c3d4e5f_nohash_0.wav").write_bytes(b"RIFF\x10\0\0\0WAVEjunk")
    noise = root / "_background_noise_"
    noise.mkdir()
    rng = np.random.default_rng([0])
    sf.write(noise / "white_noise.wav", 0.1 * rng.standard_normal(int(10.5 * 16000)), 16000)
    sf.write(noise / "tiny.wav", 0.1 * rng.standard_normal(8000), 16000)
    (noise / "README.md").write_text("noise files")
    (root / "validation_list.txt").write_text("no/1b2c3d4e_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("yes/0a7c2a8d_nohash_1.wav\nbed/ffffffff_nohash_0.wav\n")
    (root / "LICENSE").write_text("CC-BY-4.0")


def _quarantine(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "quarantine.jsonl").read_text().splitlines()]


def test_speechcommands_round_trip(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    _layout(root)
    manifest = prepare_corpus("speechcommands", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    words = {k: u for k, u in utts.items() if not k.startswith("_silence_")}
    assert set(words) == {f"{w}/{s}" for w, stems in FILES.items() for s in stems}
    y = words["yes/0a7c2a8d_nohash_1"]
    assert (y.speaker, y.text, y.content_id, y.split) == ("0a7c2a8d", "yes", "kw-yes", "test")
    assert y.extra["label12"] == "yes"
    assert words["no/1b2c3d4e_nohash_0"].split == "validation"
    assert words["yes/0a7c2a8d_nohash_0"].split == "train"
    assert words["bed/0a7c2a8d_nohash_0"].extra["label12"] == "_unknown_"
    assert words["follow/1b2c3d4e_nohash_0"].extra["label12"] == "_unknown_"
    assert y.extra["version"] == "v0.02"  # "follow" exists only in v0.02
    silence = sorted((u for k, u in utts.items() if k.startswith("_silence_")), key=lambda u: u.offset)
    assert len(silence) == 10  # 10.5 s of noise -> ten 1 s windows; the 0.5 s file is too short
    assert [u.offset for u in silence] == [float(k) for k in range(10)]
    assert all(u.duration == 1.0 and u.extra["label12"] == "_silence_" for u in silence)
    assert [u.split for u in silence] == ["train"] * 8 + ["validation", "test"]
    reasons = {Path(q["item"]).name: q["reason"] for q in _quarantine(tmp_path / "out")}
    assert set(reasons) == {"2c3d4e5f_nohash_0.wav", "ffffffff_nohash_0.wav", "tiny.wav"}
    assert "not readable as audio" in reasons["2c3d4e5f_nohash_0.wav"]
    assert "in the test list but the file does not exist" in reasons["ffffffff_nohash_0.wav"]
    assert "shorter than 1 s" in reasons["tiny.wav"]
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert (summary["input"], summary["written"], summary["quarantined"]) == (19, 16, 3)
    assert summary["version"] == "v0.02"


def test_without_lists_the_hash_rule_assigns_splits_by_speaker(tmp_path):
    root = tmp_path / "sc"
    _layout(root)
    (root / "validation_list.txt").unlink()
    (root / "testing_list.txt").unlink()
    utts = read_manifest(prepare_corpus("speechcommands", root, tmp_path / "out", silence=False))
    assert len(utts) == 6 and not any(u.id.startswith("_silence_") for u in utts)
    for u in utts:
        assert u.split == which_set(u.id + ".wav")
    by_speaker: dict[str, set[str]] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, set()).add(u.split)
    assert all(len(s) == 1 for s in by_speaker.values())


def test_which_set_proportions_and_version_detection():
    splits = [which_set(f"{i:08x}_nohash_0.wav") for i in range(4000)]
    assert 0.07 < splits.count("validation") / 4000 < 0.13
    assert 0.07 < splits.count("test") / 4000 < 0.13
    assert which_set("yes/abc_nohash_3.wav") == which_set("no/abc_nohash_0.wav")
    assert len(WORDS_V001) == 30
    assert detect_version(set(WORDS_V001)) == "v0.01"
    assert detect_version(set(WORDS_V001) | {"visual"}) == "v0.02"
    assert detect_version({"yes", "no"}) is None
