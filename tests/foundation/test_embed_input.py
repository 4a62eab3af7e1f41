"""`intervox.load(run).embed(audio, sr)`: int PCM and stereo converted, bad input refused,
long input windowed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from intervox.training.api import EMBED_WINDOW_SECONDS, TrainedModel
from intervox.training.config import ModelConfig, TrainConfig
from intervox.training.model import InputSpec, SubspaceProjector

SR = 16000
HOP = 320  # 20 ms frames; 30 s windows hold whole frames, so windowing cannot move a frame


class FrameLocalUpstream:
    """A deterministic stand-in SFM whose frame features depend on that frame's samples only."""

    sample_rate = SR

    def __init__(self, layers: int = 3, hidden: int = 8) -> None:
        self.proj = torch.from_numpy(np.random.default_rng(0).standard_normal((HOP, hidden))).float()
        self.layers = layers
        self.calls: list[int] = []  # samples per forward call

    def forward(self, batch: list[np.ndarray]) -> list[torch.Tensor]:
        out = []
        for audio in batch:
            self.calls.append(len(audio))
            frames = torch.from_numpy(np.asarray(audio[: len(audio) // HOP * HOP], np.float32)).view(-1, HOP)
            base = frames @ self.proj  # [T, hidden]
            out.append(torch.stack([torch.tanh(base * (i + 1)) for i in range(self.layers + 1)]))
        return out


@pytest.fixture
def model(tmp_path, monkeypatch) -> tuple[TrainedModel, FrameLocalUpstream]:
    upstream = FrameLocalUpstream()
    monkeypatch.setattr("intervox.features.registry.get_upstream", lambda name, *a, **k: upstream)
    torch.manual_seed(0)
    cfg = TrainConfig(model=ModelConfig(layer=2, hidden_dims=(16,), speaker_dim=4, content_dim=4))
    spec = InputSpec(name="frame-local", layers=4, hidden=8)
    return TrainedModel(SubspaceProjector([spec], cfg.model), cfg, [spec], tmp_path), upstream


def speech_like(seconds: float, seed: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    noise = np.random.default_rng(seed).standard_normal(len(t))
    voiced = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (voiced + 0.05 * noise).astype(np.float32)


def same(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=atol) for k in a)


def test_int_pcm_is_scaled_like_float(model):
    m, _ = model
    x = speech_like(2.0)
    pcm16 = np.round(x * 32767).astype(np.int16)
    as_float = m.embed(pcm16.astype(np.float32) / 32768, SR)
    assert np.array_equal(m.embed(pcm16, SR)["speaker"], as_float["speaker"])
    pcm32 = pcm16.astype(np.int32) * 65536
    assert same(m.embed(pcm32, SR), as_float)
    u8 = np.round(x * 127 + 128).astype(np.uint8)
    assert same(m.embed(u8, SR), m.embed((u8.astype(np.float32) - 128) / 128, SR))


def test_stereo_either_layout_is_downmixed(model):
    m, _ = model
    left, right = speech_like(2.0, seed=1), speech_like(2.0, seed=2)
    mono = m.embed((left + right) / 2, SR)
    assert same(m.embed(np.stack([left, right], axis=1), SR), mono)  # [N, 2]
    assert same(m.embed(np.stack([left, right]), SR), mono)  # [2, N]
    assert same(m.embed(torch.from_numpy(np.stack([left, right])), SR), mono)
    assert same(m.embed(left[:, None], SR), m.embed(left, SR))  # [N, 1]


@pytest.mark.parametrize(("audio", "sr", "message"), [
    (np.array([0.1, np.nan, 0.2] * 1000, np.float32), SR, "NaN/Inf sample.*index 1"),
    (np.array([0.1, 0.2, np.inf] * 1000, np.float32), SR, "NaN/Inf sample.*index 2"),
    (np.zeros(0, np.float32), SR, "empty"),
    (np.zeros((0, 2), np.float32), SR, "empty"),
    (np.zeros(16000, np.float32), 0, "sr must be a positive"),
    (np.zeros(16000, np.float32), -16000, "sr must be a positive"),
    (np.zeros(16000, np.float32), 16000.5, "sr must be a positive"),
    (np.zeros(16000, np.float32), None, "sr must be a positive"),
    (np.zeros((2, 3, 16000), np.float32), SR, r"mono \[N\] or stereo.*\(2, 3, 16000\)"),
    (np.zeros((16000, 6), np.float32), SR, r"mono \[N\] or stereo.*\(16000, 6\)"),
    (np.zeros(16000, np.int64), SR, "int64 is not audio"),
    (np.array(["a"] * 100), SR, "is not audio"),
    (np.float32(0.5), SR, "mono"),
], ids=["nan", "inf", "empty", "empty-stereo", "sr0", "sr-neg", "sr-frac", "sr-none", "3d", "6ch", "int64",
        "str", "scalar"])
def test_bad_input_is_a_clear_value_error(model, audio, sr, message):
    m, _ = model
    with pytest.raises(ValueError, match=message):
        m.embed(audio, sr)


def test_long_input_runs_in_windows_and_pools_by_frame_count(model):
    m, upstream = model
    x = speech_like(75.3)
    windowed = m.embed(x, SR)
    window = int(EMBED_WINDOW_SECONDS * SR)
    assert upstream.calls == [window, window, len(x) - 2 * window]  # memory: 30 s at a time
    hidden = upstream.forward([x])[0]  # the whole clip at once: the frame mean it must equal
    assert same(windowed, m.project(hidden.mean(1).unsqueeze(0)), atol=1e-5)
    upstream.calls.clear()
    m.embed(speech_like(60.5), SR)  # a tail under 1 s joins the window before it
    assert upstream.calls == [window, len(speech_like(60.5)) - window]
