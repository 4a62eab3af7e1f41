"""Audio encoding per plan: FLAC (default) or PCM WAV, recorded in index.json, read by the one reader."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pytest

from intervox.corpora.manifest import Utterance, write_manifest
from intervox.pipeline.config import BlockConfig, ShardsConfig, SourceConfig
from intervox.pipeline.run import build_shards
from intervox.shards.read import iter_shards, list_shards


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("encsrc")
    utts = []
    for i, voice in enumerate(("en-us", "en-gb")):
        for j, text in enumerate(("Open the door.", "Turn on the light.")):
            wav = root / f"v{i}s{j}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True)
            utts.append(Utterance(id=f"v{i}s{j}", audio=wav.name, speaker=f"espeak:{voice}", text=text,
                                  language="en", corpus="test", content_id=f"s{j}", split="train"))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def _build(manifest: Path, out: Path, **fmt: str) -> Path:
    cfg = ShardsConfig(source=SourceConfig(kind="manifest", path=str(manifest)),
                       block=BlockConfig(speakers=2, contents=2), shard_size=8, **fmt)
    build_shards(cfg, out, scheduler="sync", progress=False, command="test")
    return out


def test_wav_shards_hold_the_same_samples_as_flac_and_say_so(manifest: Path, tmp_path: Path) -> None:
    flac = _build(manifest, tmp_path / "flac")
    wav = _build(manifest, tmp_path / "wav", audio_format="wav")
    index, flac_index = (json.loads((d / "index.json").read_text()) for d in (wav, flac))
    assert index["audio_format"] == "wav" and flac_index["audio_format"] == "flac"
    assert index["plan_hash"] != flac_index["plan_hash"]  # other bytes, another plan
    with tarfile.open(list_shards(wav)[0]) as t:
        exts = {m.name.split(".", 1)[1] for m in t.getmembers()}
    assert exts == {"wav", "json"}
    assert "`KEY.wav` (16-bit mono)" in (wav / "dataset_card.md").read_text()
    a = {s["__key__"]: s["flac"] for s in iter_shards(list_shards(flac))}
    b = {s["__key__"]: s["wav"] for s in iter_shards(list_shards(wav))}
    assert a.keys() == b.keys() and len(a) == 4
    for key, (audio, sr) in a.items():  # both 16-bit PCM of the same render: equal samples
        assert b[key][1] == sr == 16000 and np.array_equal(b[key][0], audio)
    sizes = [sum(p.stat().st_size for p in list_shards(d)) for d in (wav, flac)]
    assert sizes[0] > 1.3 * sizes[1]  # FLAC is the compact one


def test_an_unknown_audio_format_is_a_config_error(tmp_path: Path) -> None:
    from intervox.config import load_config
    from intervox.errors import ConfigError

    cfg = tmp_path / "c.yaml"
    cfg.write_text("audio_format: mp3\n")
    with pytest.raises(ConfigError, match="audio_format"):
        load_config(cfg, ShardsConfig)


@pytest.mark.parametrize("channels, subtype", [(1, "PCM_16"), (2, "PCM_16"), (1, "FLOAT"), (1, "PCM_24")])
def test_wav_bytes_decode_as_libsndfile_reads_them(channels: int, subtype: str) -> None:
    """16-bit PCM is read straight from the data chunk (no decoder); other WAVs go to libsndfile."""
    import io

    import soundfile as sf

    from intervox.audio import decode_audio_bytes

    x = (np.random.default_rng(channels).standard_normal((8000, channels)) * 0.3).clip(-1, 1)
    x[:2] = [[1.0] * channels, [-1.0] * channels]
    buf = io.BytesIO()
    sf.write(buf, x, 16000, format="WAV", subtype=subtype)
    expected, sr = sf.read(io.BytesIO(buf.getvalue()), dtype="float32", always_2d=True)
    audio, got_sr = decode_audio_bytes(buf.getvalue(), "x.wav")
    mono = expected.mean(axis=1) if channels > 1 else expected[:, 0]
    assert got_sr == sr == 16000 and np.array_equal(audio, mono)
