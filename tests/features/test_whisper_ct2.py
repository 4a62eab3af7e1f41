"""The CTranslate2 reader + PyTorch Whisper encoder against ctranslate2 itself, and batching."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from intervox import assets
from intervox.errors import UpstreamError
from intervox.features.ct2_format import read_ct2_model
from intervox.features.registry import get_upstream
from intervox.features.whisper_ct2 import WhisperEncoder, log_mel


def ct2_last_hidden(model_dir, mel: torch.Tensor) -> torch.Tensor:
    import ctranslate2

    model = ctranslate2.models.Whisper(str(model_dir), device="cpu", compute_type="float32", intra_threads=1)
    out = model.encode(ctranslate2.StorageView.from_array(mel[None].numpy()), to_cpu=True)
    return torch.from_numpy(np.array(out))[0]


def check_parity(model_dir, audio: np.ndarray) -> None:
    mel = log_mel(audio, padded=True)
    assert mel.shape == (80, 3000)
    enc = WhisperEncoder.from_ct2(model_dir / "model.bin")
    with torch.inference_mode():
        ours = enc(mel[None], torch.tensor([3000]))[-1, 0]
    ref = ct2_last_hidden(model_dir, mel)
    assert ours.shape == ref.shape
    cos = torch.nn.functional.cosine_similarity(ours.flatten(), ref.flatten(), dim=0).item()
    assert cos >= 0.999
    # frame by frame too: no frame may be wrong while the global cosine hides it
    per_frame = torch.nn.functional.cosine_similarity(ours, ref, dim=1)
    assert per_frame.min().item() >= 0.99


def test_tiny_en_encoder_matches_ctranslate2(speech):
    check_parity(assets.whisper_tiny_en_dir(), speech.audio)


@pytest.mark.slow
def test_base_encoder_matches_ctranslate2(speech, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path))
    check_parity(assets.whisper_base_dir(), speech.audio)


def test_reader_finds_every_encoder_variable():
    m = read_ct2_model(assets.whisper_tiny_en_dir() / "model.bin", prefix="encoder/")
    assert m.spec == "WhisperSpec"
    assert m.get("encoder/conv1/weight").shape == (384, 80, 3)
    assert m.get("encoder/layer_3/self_attention/linear_0/weight").shape == (3 * 384, 384)
    assert int(m.get("encoder/num_heads")) == 6
    assert not any(k.startswith("decoder/") for k in m.variables)


def test_reader_rejects_truncated_and_foreign_files(tmp_path):
    src = (assets.whisper_tiny_en_dir() / "model.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(src[: len(src) // 2])
    with pytest.raises(UpstreamError, match="cut.bin.*truncated"):
        read_ct2_model(tmp_path / "cut.bin")
    (tmp_path / "other.bin").write_bytes(struct.pack("<I", 99) + b"\0" * 64)
    with pytest.raises(UpstreamError, match="binary version 99"):
        read_ct2_model(tmp_path / "other.bin")


def test_log_mel_frames_and_range(speech):
    mel = log_mel(speech.audio)
    assert mel.shape == (80, math.ceil(len(speech.audio) / 160))
    # Whisper's floor: every value within 8 log10 units (2 after /4) of the clip's max
    assert float(mel.max() - mel.min()) <= 2.0 + 1e-6


@pytest.fixture(scope="module")
def tiny():
    return get_upstream("whisper-tiny.en")


def test_tiny_en_upstream_shapes_and_identity(tiny, speech):
    (states,) = tiny.forward([speech.audio])
    frames = math.ceil(math.ceil(len(speech.audio) / 160) / 2)
    assert states.shape == (5, frames, 384) and states.dtype == torch.float32
    assert tiny.num_hidden_states == 5
    ident = tiny.identity
    assert ident["name"] == "whisper-tiny.en" and ident["layers"] == 4 and ident["hidden"] == 384
    assert ident["frame_rate"] == 50.0 and len(ident["weights_sha256"]) == 64


def test_batched_clip_equals_clip_alone(tiny, clips):
    short, long_ = clips[0][2], clips[3][2]
    alone = tiny.forward([short])[0]
    batched = tiny.forward([long_, short])
    assert batched[1].shape == alone.shape
    torch.testing.assert_close(batched[1], alone, atol=2e-3, rtol=1e-3)
    assert batched[0].shape[1] == math.ceil(math.ceil(len(long_) / 160) / 2)


def test_padded_mode_keeps_valid_frames_and_differs_from_unpadded(speech):
    padded = get_upstream("whisper-tiny.en", padded=True)
    unpadded = get_upstream("whisper-tiny.en")
    a, b = padded.forward([speech.audio])[0], unpadded.forward([speech.audio])[0]
    assert a.shape == b.shape
    cos = torch.nn.functional.cosine_similarity(a[-1].flatten(), b[-1].flatten(), dim=0).item()
    assert 0.8 < cos < 0.9999  # close but not equal: attention sees 30 s of padding in one of them
    assert padded.identity["padded"] is True and "padded" not in unpadded.identity


def test_clip_longer_than_30_s_runs_in_chunks(tiny, speech):
    long_audio = np.tile(speech.audio, math.ceil(31 * 16000 / len(speech.audio)))[: 31 * 16000]
    (states,) = tiny.forward([long_audio])
    assert states.shape == (5, 1500 + 50, 384)
    assert torch.isfinite(states).all()


def test_unknown_upstream_name():
    with pytest.raises(UpstreamError, match="unknown upstream 'whisper-huge'"):
        get_upstream("whisper-huge")
