"""Whisper's encoder in PyTorch, built from a CTranslate2 `model.bin`, returning all hidden states.

Architecture (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak
Supervision"): log-mel (80 bins, 25 ms window, 10 ms hop) -> conv1 + GELU -> conv2 (stride
2) + GELU -> + position embedding -> pre-LN transformer layers -> final layer norm.

Hidden states follow Hugging Face's `WhisperEncoder(output_hidden_states=True)`: entry 0
is the embedding output (after the position embedding), entries 1..L-1 are the raw outputs
of layers 1..L-1 (the un-normalised residual stream), and the LAST entry is layer L's output
AFTER the final layer norm, which is also what `ctranslate2.models.Whisper.encode` returns.
So `hf:openai/whisper-base` and `whisper-base` agree entry by entry.

Unpadded mode (default) feeds only the clip's own mel frames (5-7x faster than 30 s padding;
hidden states keep cosine 0.96-0.99 to the padded ones); `padded=True` reproduces Whisper's
30 s input. In a batch, shorter clips are zero-padded and masked out of attention and the
convolutions' receptive field, so a clip's states do not depend on its batch-mates.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from intervox.errors import UpstreamError
from intervox.features.base import Upstream, cached_weights_sha256, join_pieces, split_long
from intervox.features.ct2_format import read_ct2_model

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
CHUNK_SAMPLES = 30 * SAMPLE_RATE  # Whisper's 30 s context: 3000 mel frames -> 1500 encoder frames
N_FRAMES = CHUNK_SAMPLES // HOP


@lru_cache(maxsize=2)
def mel_filters(n_mels: int = N_MELS) -> torch.Tensor:
    """Return Whisper's [n_mels, 201] mel filterbank (librosa, slaney scale and norm)."""
    import librosa

    return torch.from_numpy(librosa.filters.mel(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=n_mels)).float()


def log_mel(audio: np.ndarray | torch.Tensor, padded: bool = False) -> torch.Tensor:
    """Return Whisper's normalised log-mel [80, frames] of one 16 kHz clip.

    frames = ceil(len / 160) unpadded, 3000 padded. The log10 floor (max - 8) and (x + 4) / 4
    scaling are Whisper's; the max is taken per clip, so a clip's features never depend on
    the other clips of a batch.
    """
    x = torch.as_tensor(audio, dtype=torch.float32)
    n = x.shape[-1]
    if padded:
        x = F.pad(x[:CHUNK_SAMPLES], (0, max(0, CHUNK_SAMPLES - n)))
    stft = torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    power = stft.abs() ** 2  # [201, 1 + len // hop]
    frames = N_FRAMES if padded else math.ceil(n / HOP)
    spec = mel_filters() @ power[:, :frames]
    log_spec = torch.clamp(spec, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def encoder_frames(mel_frames: int) -> int:
    """Return the encoder frames for `mel_frames` input frames (conv2 has stride 2, padding 1)."""
    return (mel_frames + 1) // 2


class EncoderLayer(nn.Module):
    """Pre-LN transformer layer: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads = heads
        self.attn_ln = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)  # CTranslate2 fuses q, k, v rows; k has a zero bias
        self.out = nn.Linear(d, d)
        self.mlp_ln = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, ffn)
        self.fc2 = nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.attn_ln(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # SDPA scales q.k by 1/sqrt(head_dim), as Whisper and ctranslate2 do.
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)
        x = x + self.out(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.mlp_ln(x))))


class WhisperEncoder(nn.Module):
    """Whisper's audio encoder; `forward` returns all L + 1 hidden states."""

    def __init__(self, n_mels: int, d: int, heads: int, layers: int, ffn: int, n_ctx: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d, 3, padding=1)
        self.conv2 = nn.Conv1d(d, d, 3, stride=2, padding=1)
        self.register_buffer("positions", torch.zeros(n_ctx, d))
        self.layers = nn.ModuleList(EncoderLayer(d, heads, ffn) for _ in range(layers))
        self.ln_post = nn.LayerNorm(d)

    def forward(self, mel: torch.Tensor, mel_lengths: torch.Tensor) -> torch.Tensor:
        """Return [L + 1, batch, frames, d] for mel [batch, n_mels, T] zero-padded past mel_lengths."""
        t_in = mel.shape[-1]
        valid_in = torch.arange(t_in, device=mel.device)[None, :] < mel_lengths[:, None]
        h = F.gelu(self.conv1(mel)) * valid_in[:, None, :]  # conv2 must see zeros past the clip, as alone
        h = F.gelu(self.conv2(h)).transpose(1, 2)
        t = h.shape[1]
        if t > self.positions.shape[0]:
            raise UpstreamError(f"whisper encoder input of {t} frames exceeds its {self.positions.shape[0]}")
        x = h + self.positions[:t].to(h.dtype)
        lengths = (mel_lengths + 1) // 2
        key_mask = None
        if bool((lengths < t).any()):
            valid = torch.arange(t, device=mel.device)[None, :] < lengths[:, None]
            key_mask = valid[:, None, None, :]  # [b, 1, 1, t]: True = attend
        states = [x]
        for layer in self.layers:
            x = layer(x, key_mask)
            states.append(x)
        states[-1] = self.ln_post(x)
        return torch.stack(states)

    @classmethod
    def from_ct2(cls, model_bin: Path) -> WhisperEncoder:
        """Return the encoder with weights read from CTranslate2 `model_bin` (float32)."""
        m = read_ct2_model(model_bin, prefix="encoder/")
        if m.spec != "WhisperSpec":
            raise UpstreamError(f"{model_bin}: spec {m.spec!r} is not a Whisper model")
        w = {k[len("encoder/"):]: torch.from_numpy(v.astype(np.float32)) for k, v in m.variables.items()}
        d, n_mels = w["conv1/weight"].shape[:2]
        layers = len({k.split("/")[0] for k in w if k.split("/")[0].removeprefix("layer_").isdigit()})
        heads = int(m.get("encoder/num_heads"))
        enc = cls(n_mels, d, heads, layers, w["layer_0/ffn/linear_0/weight"].shape[0],
                  w["position_encodings/encodings"].shape[0])
        sd = {"conv1.weight": "conv1/weight", "conv1.bias": "conv1/bias", "conv2.weight": "conv2/weight",
              "conv2.bias": "conv2/bias", "positions": "position_encodings/encodings",
              "ln_post.weight": "layer_norm/gamma", "ln_post.bias": "layer_norm/beta"}
        per_layer = {"attn_ln.weight": "self_attention/layer_norm/gamma",
                     "attn_ln.bias": "self_attention/layer_norm/beta",
                     "qkv.weight": "self_attention/linear_0/weight",
                     "qkv.bias": "self_attention/linear_0/bias",
                     "out.weight": "self_attention/linear_1/weight",
                     "out.bias": "self_attention/linear_1/bias",
                     "mlp_ln.weight": "ffn/layer_norm/gamma", "mlp_ln.bias": "ffn/layer_norm/beta",
                     "fc1.weight": "ffn/linear_0/weight", "fc1.bias": "ffn/linear_0/bias",
                     "fc2.weight": "ffn/linear_1/weight", "fc2.bias": "ffn/linear_1/bias"}
        for i in range(layers):
            sd.update({f"layers.{i}.{k}": f"layer_{i}/{v}" for k, v in per_layer.items()})
        missing = [v for v in sd.values() if v not in w]
        if missing:
            raise UpstreamError(f"{model_bin}: Whisper encoder variables missing: {missing[:5]}")
        enc.load_state_dict({k: w[v] for k, v in sd.items()}, strict=True)
        return enc.eval().requires_grad_(False)


class WhisperCT2Upstream(Upstream):
    """A Whisper encoder read from a CTranslate2 model directory, as an Upstream."""

    def __init__(self, name: str, model_dir: Path, device: str = "cpu", padded: bool = False) -> None:
        model_bin = Path(model_dir) / "model.bin"
        self.encoder = WhisperEncoder.from_ct2(model_bin).to(device)
        self.device, self.padded = device, padded
        first = self.encoder.layers[0]
        self.identity = {"name": name, "weights_sha256": cached_weights_sha256([model_bin]),
                         "layers": len(self.encoder.layers), "hidden": first.out.out_features,
                         "frame_rate": SAMPLE_RATE / HOP / 2}
        if padded:  # padded and unpadded states differ: keep them apart in plan hashes
            self.identity["padded"] = True

    def forward(self, batch: list[np.ndarray]) -> list[torch.Tensor]:
        """Return per clip [L + 1, frames, hidden] float32; clips over 30 s run as 30 s chunks."""
        pieces, owner = split_long(batch, CHUNK_SAMPLES)
        mels = [log_mel(p, self.padded) for p in pieces]
        lengths = torch.tensor([m.shape[-1] for m in mels])
        t = int(lengths.max())
        mel = torch.stack([F.pad(m, (0, t - m.shape[-1])) for m in mels]).to(self.device)
        with torch.inference_mode(), self.autocast():
            states = self.encoder(mel, lengths.to(self.device)).float().cpu()
        per_piece = [states[:, j, :encoder_frames(math.ceil(len(p) / HOP))] for j, p in enumerate(pieces)]
        return join_pieces(per_piece, owner, len(batch))
