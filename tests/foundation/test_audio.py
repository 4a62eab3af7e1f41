"""Audio loader: real files in, mono float32 at the target rate out; malformed files named."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from intervox.audio import decode_audio_bytes, encode_flac, load_audio, trim_silence
from intervox.errors import AudioError


def test_resamples_and_downmixes(tmp_path, speech):
    stereo = np.stack([speech.audio, speech.audio * 0.5], axis=1)
    p = tmp_path / "s48.flac"
    sf.write(p, stereo, 48000)  # pretend it was recorded at 48 kHz
    audio, sr = load_audio(p, 16000)
    assert sr == 16000 and audio.ndim == 1 and audio.dtype == np.float32
    assert len(audio) == pytest.approx(len(speech.audio) / 3, rel=0.01)


def test_offset_and_duration(tmp_path, speech):
    audio, sr = load_audio(speech.path, offset=0.5, duration=1.0)
    assert len(audio) == sr


@pytest.mark.parametrize(
    "make, problem",
    [
        (lambda p: p.write_bytes(b""), "not readable"),
        (lambda p: p.write_bytes(b"this is a text file, renamed"), "not readable"),
        (lambda p: sf.write(p, np.zeros(16000, dtype=np.float32), 16000), "silent"),
        (lambda p: sf.write(p, np.zeros((0,), dtype=np.float32), 16000), "empty|not readable"),
    ],
)
def test_bad_files_are_named(tmp_path, make, problem):
    p = tmp_path / "bad.wav"
    make(p)
    with pytest.raises(AudioError, match=rf"bad\.wav: .*({problem})"):
        load_audio(p, 16000)


def test_nan_audio_named(tmp_path):
    p = tmp_path / "nan.wav"
    x = np.full(1600, 0.1, dtype=np.float32)
    x[10] = np.nan
    sf.write(p, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: .*NaN"):
        load_audio(p)


def test_truncated_file_named(tmp_path, speech):
    p = tmp_path / "trunc.wav"
    data = speech.path.read_bytes()
    p.write_bytes(data[: len(data) // 2])  # header still promises the full length
    with pytest.raises(AudioError, match=r"trunc\.wav: (truncated|not readable)"):
        load_audio(p)


def test_missing_file_named(tmp_path):
    with pytest.raises(AudioError, match=r"nope\.flac: file does not exist"):
        load_audio(tmp_path / "nope.flac")


def test_flac_roundtrip_is_deterministic(speech):
    a = encode_flac(speech.audio, speech.sr)
    assert a == encode_flac(speech.audio, speech.sr)
    back, sr = decode_audio_bytes(a, "x")
    assert sr == speech.sr and np.max(np.abs(back - speech.audio)) < 1e-4


def test_a_flac_that_does_not_give_its_length_is_refused_by_name(speech, tmp_path):
    # a FLAC written to a pipe leaves STREAMINFO's total-samples field at 0 ("unknown"); read
    # whole, soundfile would allocate 2**63 frames and fail with "array is too big"
    data = bytearray(encode_flac(speech.audio, speech.sr))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO first: its 36-bit count at bytes 21-25
    data[21] &= 0xF0
    data[22:26] = bytes(4)
    path = tmp_path / "streamed.flac"
    path.write_bytes(bytes(data))
    assert sf.info(str(path)).frames == 2**63 - 1  # libsndfile: length unknown
    with pytest.raises(AudioError, match=r"streamed\.flac: .*does not give the length .*re-encode"):
        decode_audio_bytes(bytes(data), "streamed.flac")
    with pytest.raises(AudioError, match=r"streamed\.flac: .*does not give the length"):
        load_audio(path)


def test_trim_silence_cuts_the_edges_to_the_margin_and_keeps_inner_pauses():
    sr = 16000
    rng = np.random.default_rng(0)
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(sr // 2) / sr)).astype(np.float32)
    hiss = (1e-4 * rng.standard_normal(sr)).astype(np.float32)  # -68 dB below the tone: silence
    pause = np.zeros(sr // 4, dtype=np.float32)
    clip = np.concatenate([hiss, tone, pause, tone, hiss[: sr // 2]])
    out = trim_silence(clip, sr, top_db=40.0, margin_s=0.05)
    speech = 2 * tone.size + pause.size
    assert out.size == speech + 2 * 800  # 50 ms kept each side, the inner 250 ms pause kept whole
    np.testing.assert_array_equal(out[800:800 + tone.size], tone)
    assert trim_silence(clip, sr, top_db=80.0).size == clip.size  # the hiss is within 80 dB: kept
    assert trim_silence(tone[:100], sr).size == 100  # shorter than a 10 ms frame: unchanged
