"""LibriSpeech and LibriTTS adapters on tiny trees laid out exactly like the releases."""

from __future__ import annotations

import json
from pathlib import Path

import soundfile as sf
from conftest import espeak_wav

from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import prepare_corpus

SPEAKERS_TXT = """\
; Some comment lines
;ID  |SEX| SUBSET           |MINUTES| NAME
19   | F | train-clean-100  | 25.19 | Kara Shallenberg
84   | F | dev-clean        |  8.02 | Christie Nowak
174  | M | dev-clean        |  8.04 | Peter Eastman
"""


def _flac(text: str, path: Path, pitch: int) -> None:
    wav = espeak_wav(text, path.with_suffix(".tmp.wav"), pitch=pitch)
    audio, sr = sf.read(wav)
    sf.write(path, audio, sr, format="FLAC")
    wav.unlink()


def _librispeech(root: Path) -> None:
    chapters = {("train-clean-100", "19", "198"): ["NORTHANGER ABBEY", "CHAPTER ONE"],
                ("dev-clean", "84", "121123"): ["GO DO YOU HEAR", "BUT IN LESS THAN FIVE MINUTES"],
                ("dev-clean", "174", "50561"): ["FORGOTTEN TOO THE NAME OF GILLIAN"]}
    for (subset, spk, chap), texts in chapters.items():
        d = root / subset / spk / chap
        d.mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            uid = f"{spk}-{chap}-{i:04d}"
            _flac(text.lower(), d / f"{uid}.flac", pitch=70 if spk != "174" else 30)
            lines.append(f"{uid} {text}\n")
        (d / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    (root / "SPEAKERS.TXT").write_text(SPEAKERS_TXT)


def test_librispeech_round_trip(tmp_path):
    root = tmp_path / "LibriSpeech"
    _librispeech(root)
    manifest = prepare_corpus("librispeech", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert len(utts) == 5
    u = utts["84-121123-0001"]
    assert (u.speaker, u.text, u.gender, u.split, u.extra["subset"]) == (
        "84", "BUT IN LESS THAN FIVE MINUTES", "f", "validation", "dev-clean")
    assert utts["174-50561-0000"].gender == "m"
    assert utts["19-198-0000"].split == "train"
    assert u.sample_rate == 22050 and u.duration > 0.5 and u.audio.endswith(".flac")
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert summary["splits"] == {"train": 2, "validation": 3} and summary["speakers"] == 3


def test_librispeech_quarantines_missing_transcript_audio_and_corrupt_file(tmp_path):
    root = tmp_path / "LibriSpeech"
    _librispeech(root)
    chap = root / "dev-clean" / "84" / "121123"
    (chap / "84-121123-0001.flac").unlink()  # transcript line without audio
    _flac("extra words", chap / "84-121123-0002.flac", 50)  # audio without transcript line
    (root / "train-clean-100" / "19" / "198" / "19-198-0001.flac").write_bytes(b"fLaC" + b"\0" * 40)
    (root / "dev-clean" / "84" / "999").mkdir()  # a chapter whose .trans.txt is missing altogether
    _flac("lost words", root / "dev-clean" / "84" / "999" / "84-999-0000.flac", 50)
    manifest = prepare_corpus("librispeech", root, tmp_path / "out")
    assert {u.id for u in read_manifest(manifest)} == {"19-198-0000", "84-121123-0000", "174-50561-0000"}
    q = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    reasons = " | ".join(e["reason"] for e in q)
    assert len(q) == 4 and "84-999-0000.flac: no transcript line" in reasons
    assert "'84-121123-0001'" in reasons and "has no audio file" in reasons
    assert "84-121123-0002.flac: no transcript line" in reasons
    assert "19-198-0001.flac: not readable as audio" in reasons
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert summary["input"] == summary["written"] + summary["quarantined"] == 7


def test_librispeech_without_speakers_file_has_no_gender(tmp_path):
    root = tmp_path / "LibriSpeech"
    _librispeech(root)
    (root / "SPEAKERS.TXT").unlink()
    assert {u.gender for u in read_manifest(prepare_corpus("librispeech", root, tmp_path / "o"))} == {None}


def test_libritts_round_trip_fallback_and_quarantine(tmp_path):
    root = tmp_path / "LibriTTS"
    items = {("train-clean-100", "19", "198", "19_198_000000_000000"): ("normalized", "Northanger Abbey."),
             ("train-clean-100", "19", "198", "19_198_000000_000001"): ("original", "Chapter 1."),
             ("test-clean", "1089", "134686", "1089_134686_000001_000001"): ("normalized", "He hoped so."),
             ("test-clean", "1089", "134686", "1089_134686_000002_000000"): (None, "")}
    for (subset, spk, chap, uid), (kind, text) in items.items():
        d = root / subset / spk / chap
        d.mkdir(parents=True, exist_ok=True)
        espeak_wav(text or "no text", d / f"{uid}.wav", pitch=60)
        if kind:
            (d / f"{uid}.{kind}.txt").write_text(text)
    (root / "speakers.tsv").write_text("READER\tGENDER\tSUBSET\tNAME\n19\tF\ttrain-clean-100\tKara\n"
                                       "1089\tM\ttest-clean\tBill\n")
    manifest = prepare_corpus("libritts", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert set(utts) == {"19_198_000000_000000", "19_198_000000_000001", "1089_134686_000001_000001"}
    assert utts["19_198_000000_000001"].text == "Chapter 1."  # from .original.txt
    u = utts["1089_134686_000001_000001"]
    assert (u.gender, u.split) == ("m", "test")
    assert (utts["19_198_000000_000000"].speaker, utts["19_198_000000_000000"].gender) == ("19", "f")
    (q,) = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert "1089_134686_000002_000000.wav: no transcript" in q["reason"]
