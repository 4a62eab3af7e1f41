"""VCTK adapter: both releases' layouts, mic choice, content_id by number + text equality."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import espeak_wav

from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import prepare_corpus
from intervox.errors import ConfigError, ManifestError

TEXTS = {
    "p225": {"001": "Please call Stella.", "002": "Ask her to bring these things.",
             "003": "Six spoons of fresh snow peas."},
    "p226": {"001": "Please call Stella.", "002": "ask her to bring these things",
             "003": "The rainbow is a division of white light."},
    "p227": {"001": "Please call Stella.", "003": "Six spoons of fresh snow peas."},
}
INFO_092 = ("ID  AGE  GENDER  ACCENTS  REGION COMMENTS \n"
            "p225  23  F    English    Southern  England\n"
            "p226  22  M    English    Surrey\n"
            "p227  38  M    English    Cumbria\n"
            "p315  18  M    American    Connecticut  (text missing)\n")


def _vctk_092(root: Path) -> None:
    for spk, texts in TEXTS.items():
        (root / "txt" / spk).mkdir(parents=True)
        (root / "wav48_silence_trimmed" / spk).mkdir(parents=True)
        for num, text in texts.items():
            (root / "txt" / spk / f"{spk}_{num}.txt").write_text(text + "\n")
            wav = espeak_wav(text, root / f"{spk}_{num}.tmp.wav", pitch=80 if spk == "p225" else 35)
            audio, sr = sf.read(wav)
            for mic in ("mic1", "mic2"):
                sf.write(root / "wav48_silence_trimmed" / spk / f"{spk}_{num}_{mic}.flac", audio, sr)
            wav.unlink()
    # p315 has audio but no transcripts, as in the real 0.92 release
    (root / "wav48_silence_trimmed" / "p315").mkdir()
    espeak_wav("Something.", root / "x.wav")
    audio, sr = sf.read(root / "x.wav")
    sf.write(root / "wav48_silence_trimmed" / "p315" / "p315_001_mic1.flac", audio, sr)
    (root / "speaker-info.txt").write_text(INFO_092)


def test_vctk_092_round_trip_and_parallel_content(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    _vctk_092(root)
    manifest = prepare_corpus("vctk", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert len(utts) == 8 and all(i.endswith("_mic1") for i in utts)
    assert {u.gender for u in utts.values() if u.speaker == "p225"} == {"f"}
    assert utts["p226_001_mic1"].gender == "m" and utts["p226_001_mic1"].extra["accent"] == "English"
    # 001 is read by all three speakers with the same words
    assert {utts[f"{s}_001_mic1"].content_id for s in ("p225", "p226", "p227")} == {"vctk-001"}
    assert utts["p225_001_mic1"].extra["parallel"] == 3
    # 002 differs only in case and punctuation: still the same content
    assert utts["p225_002_mic1"].content_id == utts["p226_002_mic1"].content_id == "vctk-002"
    # 003: two speakers share one text, the third reads another sentence under the same number
    assert utts["p225_003_mic1"].content_id == utts["p227_003_mic1"].content_id == "vctk-003"
    assert utts["p226_003_mic1"].content_id == "vctk-003-2"
    # equal content_id <=> equal normalised text
    for a in utts.values():
        for b in utts.values():
            same_words = a.text.lower().strip(".") == b.text.lower().strip(".")
            assert (a.content_id == b.content_id) == same_words
    q = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert len(q) == 1 and "p315_001_mic1.flac: no transcript" in q[0]["reason"]
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert summary["skipped_other_mic"] == 8 and summary["input"] == 9


def test_vctk_both_mics_share_content(tmp_path):
    root = tmp_path / "VCTK-Corpus-0.92"
    _vctk_092(root)
    utts = {u.id: u for u in read_manifest(prepare_corpus("vctk", root, tmp_path / "o", mic="both"))}
    assert len(utts) == 16
    assert utts["p225_003_mic1"].content_id == utts["p225_003_mic2"].content_id
    with pytest.raises(ConfigError, match="mic must be"):
        prepare_corpus("vctk", root, tmp_path / "o2", mic="mic3")


def test_vctk_old_layout_and_unreadable_audio(tmp_path):
    root = tmp_path / "VCTK-Corpus"
    for spk in ("p225", "p226"):
        (root / "wav48" / spk).mkdir(parents=True)
        (root / "txt" / spk).mkdir(parents=True)
        (root / "txt" / spk / f"{spk}_001.txt").write_text("Please call Stella.")
    espeak_wav("Please call Stella.", root / "wav48" / "p225" / "p225_001.wav")
    (root / "wav48" / "p226" / "p226_001.wav").write_bytes(b"\0" * 100)
    (root / "speaker-info.txt").write_text("ID  AGE  GENDER  ACCENTS  REGION\n225 23 F English Southern\n")
    manifest = prepare_corpus("vctk", root, tmp_path / "out")
    (utt,) = read_manifest(manifest)
    assert (utt.id, utt.speaker, utt.gender, utt.content_id) == ("p225_001", "p225", "f", "vctk-001")
    (q,) = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert "p226_001.wav: not readable as audio" in q["reason"]


def test_vctk_without_audio_dir_is_a_clear_error(tmp_path):
    (tmp_path / "VCTK" / "txt").mkdir(parents=True)
    with pytest.raises(ManifestError, match="no audio directory"):
        prepare_corpus("vctk", tmp_path / "VCTK", tmp_path / "out")
