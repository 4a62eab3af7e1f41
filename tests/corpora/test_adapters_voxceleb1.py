"""VoxCeleb1 adapter: utterances, gender/split from vox1_meta.csv, trial list normalised and checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import espeak_wav

from intervox.corpora.adapters.voxceleb1 import UNKNOWN_TEXT
from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import prepare_corpus
from intervox.errors import ManifestError

UTTS = {"id10001/1zcIwhmdeo4/00001": 80, "id10001/7gWzIy6yIIk/00002": 80,
        "id10270/x6uYqmx31kE/00001": 30, "id10270/8jEAjG6SegY/00008": 30,
        "id10271/1gtz-CUIygI/00001": 60}
META = ("VoxCeleb1 ID\tVGGFace1 ID\tGender\tNationality\tSet\n"
        "id10001\tA.J._Buckley\tm\tIreland\tdev\n"
        "id10270\tEddie_Kaye_Thomas\tm\tUSA\ttest\n"
        "id10271\tEdgar_Ramirez\tf\tVenezuela\ttest\n")
TRIALS = ("1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav\n"
          "0 id10270/x6uYqmx31kE/00001.wav id10271/1gtz-CUIygI/00001.wav\n"
          "0 id10270/x6uYqmx31kE/00001.wav id10309/missing/00001.wav\n"
          "\n"
          "this line is broken\n")


def _layout(root: Path) -> None:
    for uid, pitch in UTTS.items():
        (root / "wav" / uid).parent.mkdir(parents=True, exist_ok=True)
        espeak_wav("Hello from the interview.", root / "wav" / f"{uid}.wav", pitch=pitch)
    (root / "veri_test2.txt").write_text(TRIALS)


def test_voxceleb1_with_meta_and_trials(tmp_path):
    root = tmp_path / "voxceleb1"
    _layout(root)
    (root / "vox1_meta.csv").write_text(META)
    manifest = prepare_corpus("voxceleb1", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert set(utts) == set(UTTS)
    u = utts["id10271/1gtz-CUIygI/00001"]
    assert (u.speaker, u.text, u.language, u.gender, u.split) == ("id10271", UNKNOWN_TEXT, "en", "f", "test")
    assert u.content_id is None and u.extra == {"youtube_id": "1gtz-CUIygI", "nationality": "Venezuela"}
    assert utts["id10001/1zcIwhmdeo4/00001"].split == "train"
    trials = (tmp_path / "out" / "trials.txt").read_text().splitlines()
    assert trials == ["1 id10270/x6uYqmx31kE/00001 id10270/8jEAjG6SegY/00008",
                      "0 id10270/x6uYqmx31kE/00001 id10271/1gtz-CUIygI/00001"]
    assert all(tok in utts for line in trials for tok in line.split()[1:])
    dropped = [json.loads(x) for x in (tmp_path / "out" / "trials_quarantine.jsonl").read_text().splitlines()]
    assert len(dropped) == 2
    first, second = dropped[0]["reason"], dropped[1]["reason"]
    assert "veri_test2.txt:3" in first and "id10309/missing/00001.wav is missing" in first
    assert "veri_test2.txt:5" in second and "not a 'label enroll test' line" in second
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert summary["trials"] == {"source": str(root / "veri_test2.txt"), "input": 4, "written": 2,
                                 "quarantined": 2}


def test_voxceleb1_without_meta_splits_by_trial_speakers_and_quarantines_bad_audio(tmp_path):
    root = tmp_path / "vox1"
    _layout(root)
    (root / "wav" / "id10270" / "8jEAjG6SegY" / "00008.wav").write_bytes(b"not audio")
    manifest = prepare_corpus("voxceleb1", root, tmp_path / "out")
    utts = {u.id: u for u in read_manifest(manifest)}
    assert len(utts) == 4 and {u.gender for u in utts.values()} == {None}
    assert {u.split for u in utts.values() if u.speaker in ("id10270", "id10271")} == {"test"}
    assert {u.split for u in utts.values() if u.speaker == "id10001"} == {"train"}
    (q,) = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert "8jEAjG6SegY/00008.wav: not readable as audio" in q["reason"]
    # the trial that used the quarantined file is dropped, not kept dangling
    trials = (tmp_path / "out" / "trials.txt").read_text().splitlines()
    assert trials == ["0 id10270/x6uYqmx31kE/00001 id10271/1gtz-CUIygI/00001"]


def test_voxceleb1_strict_trials_and_missing_trial_file(tmp_path):
    root = tmp_path / "vox1"
    _layout(root)
    with pytest.raises(ManifestError, match=r"2 trial\(s\) unusable.*id10309/missing"):
        prepare_corpus("voxceleb1", root, tmp_path / "out", strict_trials=True)
    with pytest.raises(ManifestError, match="nope.txt: trial list does not exist"):
        prepare_corpus("voxceleb1", root, tmp_path / "out", trials=root / "nope.txt")
    (root / "veri_test2.txt").unlink()
    prepare_corpus("voxceleb1", root, tmp_path / "o2")
    assert not (tmp_path / "o2" / "trials.txt").exists()
    assert {u.split for u in read_manifest(tmp_path / "o2" / "manifest.jsonl")} == {None}
