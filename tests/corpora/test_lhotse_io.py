"""Lhotse CutSet import/export: our own JSON reader/writer, checked against lhotse when installed."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import espeak_wav

from intervox.corpora.lhotse_io import export_lhotse, iter_cuts
from intervox.corpora.manifest import Utterance, read_manifest, validate_manifest, write_manifest
from intervox.corpora.prepare import prepare_corpus
from intervox.errors import ManifestError


def _manifest(tmp_path: Path) -> Path:
    """A manifest with relative paths, genders, content ids, extras and two slices of one file."""
    audio = tmp_path / "corpus" / "audio"
    audio.mkdir(parents=True)
    espeak_wav("Please call Stella.", audio / "a.wav", pitch=80)
    espeak_wav("Please call Stella.", audio / "b.wav", pitch=30)
    sf.write(audio / "noise.wav", 0.1 * np.random.default_rng([1]).standard_normal(32000), 16000)
    utts = [
        Utterance(id="a", audio="audio/a.wav", speaker="s1", text="Please call Stella.", language="en",
                  corpus="toy", sample_rate=22050, duration=sf.info(audio / "a.wav").duration, gender="f",
                  content_id="vctk-001", split="train", extra={"accent": "Scottish"}),
        Utterance(id="b", audio="audio/b.wav", speaker="s2", text="Please call Stella.", language="en",
                  corpus="toy", sample_rate=22050, duration=sf.info(audio / "b.wav").duration, gender="m",
                  content_id="vctk-001"),
        Utterance(id="sil/0", audio="audio/noise.wav", speaker="noise", text="_silence_", language="en",
                  corpus="toy", sample_rate=16000, offset=0.0, duration=1.0, split="test"),
        Utterance(id="sil/1", audio="audio/noise.wav", speaker="noise", text="_silence_", language="en",
                  corpus="toy", sample_rate=16000, offset=1.0, duration=1.0, split="test"),
    ]
    path = tmp_path / "corpus" / "manifest.jsonl"
    write_manifest(utts, path)
    return path


@pytest.mark.parametrize("name", ["cuts.jsonl", "cuts.jsonl.gz"])
def test_export_then_import_gives_the_same_utterances(tmp_path, name):
    manifest = _manifest(tmp_path)
    assert export_lhotse(manifest, tmp_path / "lh" / name) == 4
    if name.endswith(".gz"):
        with gzip.open(tmp_path / "lh" / name, "rt") as f:
            assert len(f.readlines()) == 4
    cuts = [c for _, c in iter_cuts(tmp_path / "lh" / name)]
    assert cuts[2]["recording"]["id"] == cuts[3]["recording"]["id"] == "sil/0"  # one file, one recording
    assert cuts[3]["start"] == 1.0 and cuts[2]["recording"]["num_samples"] == 32000
    back = prepare_corpus("lhotse", tmp_path / "lh" / name, tmp_path / "out")
    assert validate_manifest(back) == []
    original = {u.id: u for u in read_manifest(manifest)}
    for utt in read_manifest(back):
        want = original[utt.id]
        audio = str(want.resolve_audio(manifest.parent).absolute())
        assert utt == Utterance(**{**want.__dict__, "audio": audio})


def _cut(cid: str, source: dict, sups: list[dict], kind: str = "MonoCut", start: float = 0.0) -> dict:
    rec = {"id": f"rec-{cid}", "sources": [source], "sampling_rate": 22050, "num_samples": 22050,
           "duration": 1.0, "channel_ids": [0]}
    return {"id": cid, "start": start, "duration": 0.5, "channel": 0, "supervisions": sups, "recording": rec,
            "type": kind}


def _sup(text: str | None, speaker: str | None = "spk1", **kw) -> dict:
    return {"id": "s", "recording_id": "r", "start": 0.0, "duration": 0.5, "channel": 0, "text": text,
            "speaker": speaker, **kw}


def test_import_handwritten_cuts_and_quarantine_reasons(tmp_path):
    espeak_wav("Good evening to you all.", tmp_path / "good.wav")
    file_src = {"type": "file", "channels": [0], "source": "good.wav"}  # relative to the cut file
    cuts = [
        _cut("ok", file_src, [_sup("good", language="English", gender="F"), _sup("evening", start=0.3)],
             start=0.25),
        _cut("url", {"type": "url", "channels": [0], "source": "https://x/y.wav"}, [_sup("hi")]),
        _cut("two", file_src, [_sup("a", "spk1"), _sup("b", "spk2")]),
        _cut("notext", file_src, [_sup("")]),
        _cut("mixed", file_src, [_sup("hi")], kind="MixedCut"),
        _cut("gone", {"type": "file", "channels": [0], "source": "gone.wav"}, [_sup("hi")]),
    ]
    (tmp_path / "cuts_train.jsonl").write_text("".join(json.dumps(c) + "\n" for c in cuts))
    manifest = prepare_corpus("lhotse", tmp_path, tmp_path / "out", corpus="mine")
    (utt,) = read_manifest(manifest)
    assert (utt.id, utt.text, utt.speaker) == ("ok", "good evening", "spk1")
    assert (utt.language, utt.gender) == ("English", "f")
    assert (utt.offset, utt.duration, utt.sample_rate, utt.corpus) == (0.25, 0.5, 22050, "mine")
    assert utt.audio == str((tmp_path / "good.wav").absolute())
    reasons = {q["item"].rsplit(":", 1)[1]: q["reason"]
               for q in map(json.loads, (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines())}
    assert "type url is not supported" in reasons["2"]
    assert "needs exactly one speaker" in reasons["3"]
    assert "no supervision text" in reasons["4"]
    assert "MixedCut is not supported" in reasons["5"]
    assert "gone.wav: audio file does not exist" in reasons["6"]


def test_bad_cut_files_raise_naming_the_file(tmp_path):
    (tmp_path / "cuts.jsonl").write_text('{"id": 1}\nnot json\n[1]\n{"id": 2, "recording": {"sources": 5}, '
                                         '"supervisions": [{"text": "x"}]}\n')
    with pytest.raises(ManifestError, match=r"cuts\.jsonl:2: not valid JSON"):
        list(iter_cuts(tmp_path / "cuts.jsonl"))
    prepare_corpus("lhotse", tmp_path / "cuts.jsonl", tmp_path / "out")
    lines = (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    reasons = [json.loads(x)["reason"] for x in lines]
    assert len(reasons) == 4
    assert "cuts.jsonl:1: cut 1 has no recording" in reasons[0]
    assert "cuts.jsonl:2: not valid JSON" in reasons[1]
    assert "cuts.jsonl:3: line is not a JSON object" in reasons[2]
    assert "cuts.jsonl:4: malformed cut (TypeError" in reasons[3]
    (tmp_path / "cuts.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ManifestError, match=r"cuts\.jsonl\.gz: not a readable cut set"):
        prepare_corpus("lhotse", tmp_path / "cuts.jsonl.gz", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="no cuts"):
        prepare_corpus("lhotse", tmp_path / "empty", tmp_path / "out")


def test_real_lhotse_reads_our_export_and_we_read_its_cuts(tmp_path):
    lhotse = pytest.importorskip("lhotse")
    manifest = _manifest(tmp_path)
    export_lhotse(manifest, tmp_path / "cuts.jsonl.gz")
    cuts = lhotse.CutSet.from_jsonl(tmp_path / "cuts.jsonl.gz")
    by_id = {c.id: c for c in cuts}
    assert by_id["a"].supervisions[0].custom["content_id"] == "vctk-001"
    assert by_id["sil/1"].load_audio().shape == (1, 16000)
    noise, _ = sf.read(tmp_path / "corpus" / "audio" / "noise.wav", dtype="float32")
    np.testing.assert_allclose(by_id["sil/1"].load_audio()[0], noise[16000:32000], atol=1e-4)
    # and the other way: cuts written by lhotse itself
    rec = lhotse.Recording.from_file(tmp_path / "corpus" / "audio" / "b.wav", recording_id="b")
    sup = lhotse.SupervisionSegment(id="b", recording_id="b", start=0.0, duration=rec.duration,
                                    text="Please call Stella.", speaker="s2", language="en", gender="M")
    cutset = lhotse.CutSet.from_manifests(recordings=lhotse.RecordingSet.from_recordings([rec]),
                                          supervisions=lhotse.SupervisionSet.from_segments([sup]))
    (tmp_path / "theirs").mkdir()
    cutset.to_file(tmp_path / "theirs" / "cuts.jsonl.gz")
    (utt,) = read_manifest(prepare_corpus("lhotse", tmp_path / "theirs", tmp_path / "out"))
    assert (utt.speaker, utt.text, utt.gender, utt.sample_rate) == ("s2", "Please call Stella.", "m", 22050)
    assert utt.duration == pytest.approx(rec.duration)
