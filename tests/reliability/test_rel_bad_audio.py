"""Bad audio: a clear AudioError naming the file, a quarantine entry, or correct acceptance."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from intervox.audio import SILENCE_PEAK, load_audio
from intervox.corpora.manifest import Utterance, read_manifest, write_manifest
from intervox.errors import AudioError
from intervox.pipeline.run import build_shards, load_shards_config
from intervox.shards.read import decode_sample, iter_tar_samples, list_shards

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
RATES = (8000, 16000, 22050, 44100, 48000)


@SETTINGS
@given(data=arrays(np.float32, st.tuples(st.integers(0, 300), st.integers(1, 2)),
                   elements=st.floats(-4, 4, width=32) | st.sampled_from([np.nan, np.inf, -np.inf, 0.0])),
       sr=st.sampled_from(RATES))
def test_load_audio_accepts_or_names_file_and_problem(tmp_path: Path, data: np.ndarray, sr: int) -> None:
    path = tmp_path / "clip.wav"
    sf.write(path, data, sr, subtype="FLOAT")
    with np.errstate(invalid="ignore"):  # inf + -inf in a stereo frame: NaN, as load_audio sees it
        mono = data.mean(axis=1)
    try:
        with np.errstate(invalid="ignore"):
            audio, out_sr = load_audio(path, 16000)
    except AudioError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: ")
        if data.shape[0] == 0:
            assert "empty" in msg
        elif not np.all(np.isfinite(mono)):
            assert "NaN or Inf" in msg
        else:
            assert "silent" in msg and np.max(np.abs(mono)) < SILENCE_PEAK
        return
    assert data.shape[0] > 0 and np.all(np.isfinite(mono)) and np.max(np.abs(mono)) >= SILENCE_PEAK
    assert out_sr == 16000 and audio.ndim == 1 and audio.dtype == np.float32
    assert np.all(np.isfinite(audio))
    assert abs(audio.size - data.shape[0] * 16000 / sr) <= 1  # stereo downmixed, rate converted
    if sr == 16000:
        np.testing.assert_allclose(audio, mono, atol=1e-6)  # clipped (|x| > 1) samples pass unchanged


@SETTINGS
@given(blob=st.binary(min_size=0, max_size=600), riff=st.booleans())
def test_non_audio_bytes_give_audio_error_naming_the_file(tmp_path: Path, blob: bytes, riff: bool) -> None:
    path = tmp_path / "renamed.wav"
    path.write_bytes((b"RIFF" + struct.pack("<I", len(blob) + 4) + b"WAVE" if riff else b"") + blob)
    with pytest.raises(AudioError) as err:
        load_audio(path, 16000)
    assert str(err.value).startswith(f"{path}: ")


def wav_header_claiming(path: Path, seconds: float, sr: int = 16000, actual: float = 0.5) -> Path:
    """Write a 16-bit mono WAV whose header promises `seconds` of audio but holds `actual` seconds."""
    promised = int(seconds * sr) * 2
    pcm = (0.3 * np.sin(2 * np.pi * 220 * np.arange(int(actual * sr)) / sr) * 32767).astype("<i2").tobytes()
    header = b"RIFF" + struct.pack("<I", 36 + promised) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    path.write_bytes(header + b"data" + struct.pack("<I", promised) + pcm)
    return path


def test_header_claiming_hours_is_refused_quickly(tmp_path: Path) -> None:
    path = wav_header_claiming(tmp_path / "hours.wav", seconds=3 * 3600)
    with pytest.raises(AudioError, match=r"hours.wav: truncated \(data chunk promises 345600000 bytes"):
        load_audio(path, 16000)


def test_renamed_text_file_is_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.flac"
    path.write_text('{"this": "is json, not FLAC"}\n')
    with pytest.raises(AudioError, match=r"notes.flac: not readable as audio"):
        load_audio(path)


@pytest.fixture(scope="module")
def bad_audio_manifest(source: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    """A manifest of the 6 good clips + every kind of bad or odd audio; returns (manifest, bad, odd)."""
    d = tmp_path_factory.mktemp("badaudio")
    clip, sr = load_audio(read_manifest(source)[0].audio, 16000)
    sf.write(d / "empty.wav", np.zeros(0, np.float32), sr)
    sf.write(d / "zeros.wav", np.zeros(sr, np.float32), sr)
    nan = clip.copy()
    nan[100] = np.nan
    sf.write(d / "nan.wav", nan, sr, subtype="FLOAT")
    inf = clip.copy()
    inf[-1] = np.inf
    sf.write(d / "inf.wav", inf, sr, subtype="FLOAT")
    wav_header_claiming(d / "hours.wav", seconds=5 * 3600)
    long = np.tile(clip, int(np.ceil(120 * sr / clip.size)))[: 120 * sr]  # 2 minutes at 8 kHz below
    sf.write(d / "long.wav", long[::2], 8000)
    (d / "renamed.wav").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    sf.write(d / "clipped.wav", np.clip(clip * 8, -1, 1), sr)  # hard-clipped speech: usable
    sf.write(d / "stereo.wav", np.stack([clip, 0.5 * clip], axis=1), sr)
    from intervox.audio import resample

    sf.write(d / "rate8k.wav", resample(clip, sr, 8000), 8000)
    sf.write(d / "rate48k.wav", resample(clip, sr, 48000), 48000)
    bad = {"empty": "empty", "zeros": "silent", "nan": "NaN or Inf", "inf": "NaN or Inf",
           "hours": "truncated", "long": "too long", "renamed": "not readable as audio",
           "missing": "does not exist"}
    odd = {"clipped": 1.0, "stereo": 0.75, "rate8k": None, "rate48k": None}  # expected peak (None: any)
    utts = list(read_manifest(source))
    for k, name in enumerate([*bad, *odd]):
        utts.append(Utterance(id=f"x-{name}", audio=str(d / f"{name}.wav"), speaker=f"odd:{name}",
                              text="The cat sat on the mat.", language="en", corpus="test",
                              content_id=f"odd{k}", split="validation"))
    write_manifest(utts, d / "manifest.jsonl")
    return d / "manifest.jsonl", bad, odd


def test_pipeline_quarantines_bad_audio_and_accepts_odd_audio(
    bad_audio_manifest, write_config, tmp_path  # noqa: ANN001
) -> None:
    manifest, bad, odd = bad_audio_manifest
    config = write_config(tmp_path / "c.yaml", manifest, interventions=[], max_seconds=30.0,
                          max_quarantine_fraction=0.5)  # 8 of 18 planted bad inputs
    out = tmp_path / "out"
    report = build_shards(load_shards_config(config), out, scheduler="sync", progress=False)
    assert (report.planned, report.written, report.quarantined) == (6 + 12, 6 + 4, 8)
    entries = {e["item"]: e for e in map(json.loads, (out / "quarantine.jsonl").read_text().splitlines())}
    by_file = {}
    for e in entries.values():
        name = next(n for n in bad if f"/{n}.wav" in e["reason"])  # the reason names the file
        by_file[name] = e
    assert set(by_file) == set(bad)
    for name, needle in bad.items():
        assert needle in by_file[name]["reason"], (name, by_file[name])
        assert by_file[name]["split"] == "validation" and by_file[name]["stage"] in ("load", "check")
    assert "120.000 s > 30.0 s" in by_file["long"]["reason"]

    clips = {}
    for tar in list_shards(out):
        for s in iter_tar_samples(tar):
            d = decode_sample(s)
            clips[d["json"]["source_id"]] = d
    assert len(clips) == report.written
    ref = clips["v0s0"]["flac"][0]
    for name, peak in odd.items():
        audio, sr = clips[f"x-{name}"]["flac"]
        assert sr == 16000 and clips[f"x-{name}"]["json"]["sr"] == 16000
        assert abs(audio.size - ref.size) <= 2, name  # resampled back to the clip's length at 16 kHz
        if peak is not None:
            assert np.max(np.abs(audio)) == pytest.approx(peak * (np.max(np.abs(ref)) if peak < 1 else 1),
                                                          rel=0.01, abs=1e-3), name
        else:
            assert np.corrcoef(audio[: ref.size], ref[: audio.size])[0, 1] > 0.9, name
