"""Common Voice adapter on a tiny release with real MP3 clips (libsndfile writes MPEG layer III)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import soundfile as sf
from conftest import espeak_wav

from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.prepare import prepare_corpus
from intervox.errors import ManifestError

pytestmark = pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile built without MP3")

HEADER = ("client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\tgender"
          "\taccents\tvariant\tlocale\tsegment\n")
A, B = "a" * 64, "b" * 64  # client ids are long hashes


def _mp3(text: str, path: Path, voice: str, pitch: int) -> None:
    wav = espeak_wav(text, path.with_suffix(".wav"), voice=voice, pitch=pitch)
    audio, sr = sf.read(wav)
    sf.write(path, audio, sr, format="MP3")
    wav.unlink()


def _row(client: str, clip: str, sid: str, sentence: str, gender: str, locale: str) -> str:
    return f"{client}\t{clip}\t{sid}\t{sentence}\t\t2\t0\tthirties\t{gender}\t\t\t{locale}\t\n"


def _release(root: Path) -> Path:
    en = root / "en"
    (en / "clips").mkdir(parents=True)
    rows = {"train": [(A, "common_voice_en_1.mp3", "s1", 'He said "hello" twice.', "male_masculine"),
                      (B, "common_voice_en_2.mp3", "s1", 'He said "hello" twice.', "female_feminine"),
                      (B, "common_voice_en_3.mp3", "s2", "Bring the red box.", "female_feminine")],
            "dev": [(A, "common_voice_en_4.mp3", "s3", "It rained all day.", "")],
            "test": [(A, "common_voice_en_5.mp3", "s4", "Not a real clip.", "male")]}
    for name, items in rows.items():
        lines = [_row(c, p, s, t, g, "en") for c, p, s, t, g in items]
        (en / f"{name}.tsv").write_text(HEADER + "".join(lines))
        for c, clip, _, text, _ in items:
            if clip != "common_voice_en_5.mp3":
                _mp3(text, en / "clips" / clip, "en-us", 80 if c == B else 30)
    (en / "clips" / "common_voice_en_5.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00garbage" * 5)
    validated = [_row(A, "common_voice_en_1.mp3", "s1", 'He said "hello" twice.', "male_masculine", "en"),
                 _row(A, "common_voice_en_6.mp3", "s5", "Only validated.", "male_masculine", "en")]
    (en / "validated.tsv").write_text(HEADER + "".join(validated))
    _mp3("Only validated.", en / "clips" / "common_voice_en_6.mp3", "en-us", 30)
    cy = root / "cy"
    (cy / "clips").mkdir(parents=True)
    (cy / "train.tsv").write_text("client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n"
                                  f"{B}\tcommon_voice_cy_1.mp3\tBore da.\t2\t0\t\tfemale\t\n")
    _mp3("Bore da.", cy / "clips" / "common_voice_cy_1.mp3", "cy", 80)
    return root


def test_commonvoice_round_trip_with_mp3(tmp_path):
    root = _release(tmp_path / "cv-corpus-17.0")
    manifest = prepare_corpus("commonvoice", root, tmp_path / "out")
    assert validate_manifest(manifest) == []
    utts = {u.id: u for u in read_manifest(manifest)}
    assert set(utts) == {f"common_voice_en_{i}" for i in (1, 2, 3, 4)} | {"common_voice_cy_1"}
    u1, u2 = utts["common_voice_en_1"], utts["common_voice_en_2"]
    assert u1.text == 'He said "hello" twice.'  # unquoted TSV: quotes kept
    assert (u1.speaker, u1.gender, u2.gender, utts["common_voice_en_4"].gender) == (A, "m", "f", None)
    assert u1.content_id == u2.content_id == "cv-s1" != utts["common_voice_en_3"].content_id
    assert (u1.split, utts["common_voice_en_4"].split) == ("train", "validation")
    assert u1.sample_rate == 22050 and 0.5 < u1.duration < 4 and u1.audio.endswith(".mp3")
    cy = utts["common_voice_cy_1"]
    assert (cy.language, cy.gender, cy.content_id.startswith("cv-cy-")) == ("cy", "f", True)
    (q,) = [json.loads(x) for x in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert "common_voice_en_5.mp3: not readable as audio" in q["reason"] and q["item"].endswith("test.tsv:2")
    summary = json.loads((tmp_path / "out" / "prepare_summary.json").read_text())
    assert (summary["input"], summary["written"], summary["quarantined"]) == (6, 5, 1)
    assert any(p.endswith("cy/dev.tsv") for p in summary["missing_tsvs"])


def test_commonvoice_validated_adds_only_new_clips_and_language_option(tmp_path):
    root = _release(tmp_path / "cv")
    manifest = prepare_corpus("commonvoice", root / "en", tmp_path / "out", language="en-US",
                              tsvs=["train", "dev", "test", "validated"])
    utts = {u.id: u for u in read_manifest(manifest)}
    assert utts["common_voice_en_6"].split == "validated" and utts["common_voice_en_1"].split == "train"
    assert {u.language for u in utts.values()} == {"en-US"}
    assert len(utts) == 5  # en_1 listed twice is one item; en_5 is quarantined


def test_commonvoice_bad_layout_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no Common Voice language folder"):
        prepare_corpus("commonvoice", tmp_path / "empty", tmp_path / "out")
    root = _release(tmp_path / "cv")
    (root / "en" / "train.tsv").write_text("path\tsentence\nx.mp3\thi\n")
    with pytest.raises(ManifestError, match=r"train\.tsv: missing column\(s\) client_id"):
        prepare_corpus("commonvoice", root / "en", tmp_path / "out")
