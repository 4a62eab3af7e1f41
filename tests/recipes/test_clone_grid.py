"""`intervox corpus clone`: a dense speakers x sentences grid from reference clips, through a content op
(respeak: a new text in the reference's voice) or a speaker op (world_vc on a voice-bank rendering)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf

from intervox.audio import load_audio
from intervox.cli import main
from intervox.config import load_config
from intervox.corpora.manifest import Utterance, read_manifest, write_manifest
from intervox.errors import ConfigError
from intervox.interventions import registry
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.clone_grid import CloneSpec, clone_grid
from intervox.interventions.signal import list_audio_files

VOICES = ["espeak:en-us:m3", "espeak:en-gb:f2", "espeak:en-us:m1"]  # voice-bank ids: respeak speaks as them
TEXTS = ["The old man walked slowly along the quiet river bank.",
         "She opened the window and looked at the morning sky today.",
         "A small dog ran across the garden after the red ball.",
         "They painted the kitchen walls a pale shade of green.",
         "He found the letter hidden under a pile of old books.",
         "We waited an hour for the last train to the city."]


@pytest.fixture(scope="module")
def references(tmp_path_factory, espeak) -> Path:
    """A manifest of 3 speakers x 2 real espeak-ng clips (the longer one of each is its reference)."""
    root = tmp_path_factory.mktemp("refs")
    utts = []
    for i, voice in enumerate(VOICES):
        for k in range(2):
            text = TEXTS[2 * i + k]
            wav = espeak(text, root / f"{i}{k}.wav", "en-us" if i != 1 else "en-gb", 40 + 30 * i)
            utts.append(Utterance(id=f"{i}{k}", audio=wav.name, speaker=voice, text=text, language="en",
                                  corpus="test", duration=sf.info(str(wav)).duration))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def spec(**kw) -> CloneSpec:
    base = {"speakers": 2, "sentences": 2, "val_speakers": 1, "val_sentences": 1, "min_ref_seconds": 1.0}
    return CloneSpec(**{**base, **kw})


def test_content_op_says_each_sentence_in_each_reference_voice(references, tmp_path):
    manifest = clone_grid(references, spec(op={"name": "respeak"}), tmp_path)
    utts = read_manifest(manifest)
    train = [u for u in utts if u.split == "train"]
    speakers, contents = {u.speaker for u in train}, {u.content_id for u in train}
    assert len(speakers) == 2 and len(contents) == 2 and len(train) == 4  # dense
    assert len([u for u in utts if u.split == "validation"]) == 1
    assert not speakers & {u.speaker for u in utts if u.split == "validation"}
    refs = {u.id: u for u in read_manifest(references)}
    for u in utts:
        params = u.extra["op"]["params"]
        assert params["text"] == u.text and params["voice"] == u.speaker  # respoken by the reference voice
        assert refs[u.extra["reference"]].speaker == u.speaker
        assert u.text not in {r.text for r in refs.values() if r.id == u.extra["reference"]}
        assert sf.info(str(tmp_path / u.audio)).samplerate == 16000
    summary = json.loads((tmp_path / "clone.json").read_text())
    assert summary["counts"] == {"planned": 5, "written": 5, "quarantined": 0}


def test_speaker_op_keeps_one_voice_per_speaker_and_resumes(references, tmp_path):
    s = spec(op={"name": "world_vc"}, val_speakers=0, val_sentences=0)
    utts = read_manifest(clone_grid(references, s, tmp_path))
    by_speaker: dict[str, list[dict]] = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, []).append(u.extra["op"]["params"])
    assert len(by_speaker) == 2
    first, second = (p for p in by_speaker.values())
    assert first[0] == first[1] and second[0] == second[1] and first[0] != second[0]
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").glob("*.flac")}
    assert read_manifest(clone_grid(references, s, tmp_path)) == utts  # same grid, nothing re-rendered
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").glob("*.flac")} == stamps
    # another op into the same folder: every clip is rendered again, none of the old grid is left
    other = spec(op={"name": "praat_gender"}, speakers=1, val_speakers=0, val_sentences=0)
    redone = read_manifest(clone_grid(references, other, tmp_path))
    assert len(redone) == 2 and all(u.extra["op"]["name"] == "praat_gender" for u in redone)
    assert sorted(p.name for p in (tmp_path / "audio").iterdir()) == sorted(
        f"{u.id}.{ext}" for u in redone for ext in ("flac", "json"))


def test_too_few_speakers_or_sentences_and_a_channel_op_are_config_errors(references, tmp_path):
    with pytest.raises(ConfigError, match=r"4 speakers asked \(3 \+ 1 validation\), only 3 have"):
        clone_grid(references, spec(speakers=3), tmp_path)
    with pytest.raises(ConfigError, match="6 sentences asked"):
        clone_grid(references, spec(sentences=5), tmp_path)
    with pytest.raises(ConfigError, match="noise is a channel op"):
        clone_grid(references, spec(op={"name": "noise"}), tmp_path)
    with pytest.raises(ConfigError, match="op"):
        load_config(None, CloneSpec, ["op=world_vc"])


def test_cli_renders_the_grid_and_a_failing_op_stops_early(references, tmp_path, capsys):
    main(["corpus", "clone", "--refs", str(references), "--out", str(tmp_path / "g"), "op={name: world_vc}",
          "speakers=2", "sentences=1", "val_speakers=0", "val_sentences=0", "min_ref_seconds=1.0"])
    assert "2 written, 0 quarantined of 2 planned" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:  # a voice the bank does not have: every clip fails
        main(["corpus", "clone", "--refs", str(references), "--out", str(tmp_path / "bad"),
              "op={name: world_vc}", "source_voice=espeak:xx:nobody", "speakers=2", "sentences=2",
              "val_speakers=1", "val_sentences=1", "min_ref_seconds=1.0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: clone grid: the first 5 clips all failed; the first: train-")  # all 5
    assert "espeak:xx:nobody" in err


@dataclass(frozen=True)
class ReferenceEcho(Intervention):
    """Test-only 'voice conversion' that returns its reference recording (as coqui_vc takes one)."""

    name: ClassVar[str] = "test_reference_echo"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = False
    reference_dir: str = ""

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        refs = list_audio_files(self.reference_dir, "reference_dir")
        return {"reference": refs[int(rng.integers(len(refs)))]}

    def apply(self, audio: np.ndarray, sr: int, *, reference: str) -> np.ndarray:
        return load_audio(Path(self.reference_dir) / reference, sr)[0]


def test_an_op_with_a_reference_dir_gets_only_its_speakers_reference(references, tmp_path, monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, ReferenceEcho.name, ReferenceEcho)
    utts = read_manifest(clone_grid(references, spec(op={"name": ReferenceEcho.name}), tmp_path))
    refs = {u.id: u for u in read_manifest(references)}
    for u in utts:
        ref = refs[u.extra["reference"]]
        assert ref.speaker == u.speaker and u.extra["op"]["params"] == {"reference": "reference.flac"}
        clip = load_audio(tmp_path / u.audio, 16000)[0]
        expected = load_audio(references.parent / ref.audio, 16000)[0]
        assert clip.shape == expected.shape and np.abs(clip - expected).max() < 1e-3  # the speaker's own clip
