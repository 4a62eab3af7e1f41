"""Hugging Face transformers SFMs (WavLM, HuBERT, wav2vec 2.0, data2vec-audio, Whisper) as Upstreams.

`hf:<model id or directory>` loads with `local_files_only=True` unless a download is allowed
explicitly, so nothing reaches the hub by default. Hidden states are the model's own
`output_hidden_states=True` tuple (embedding output + every layer), sliced per clip to its
valid frames.

Waveforms are normalised one clip at a time by the model's feature extractor (its
`do_normalize`), then zero-padded into a batch; the attention mask is passed only when the
feature extractor's `return_attention_mask` says the model was trained with one (wav2vec2
base / HuBERT base use group norm and must see zero padding without a mask, per their model
cards; WavLM and large wav2vec2 models use the mask).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import torch

from intervox.errors import UpstreamError
from intervox.features.base import Upstream, cached_weights_sha256, join_pieces, split_long

log = logging.getLogger(__name__)

WAV2VEC_TYPES = ("wavlm", "hubert", "wav2vec2", "data2vec-audio", "wav2vec2-conformer", "unispeech-sat",
                 "unispeech")
WHISPER_CHUNK = 30 * 16000
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def _missing_message(source: str, exc: Exception) -> str:
    hub = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return (f"hf model {source!r} is not available offline ({reason}). "
            f"Put it in the Hugging Face cache ({hub}) with `hf download {source}` on a machine with network "
            f"(or copy the cache), or pass a local directory as `hf:/path/to/model` (config.json + weights + "
            f"preprocessor_config.json)")


def _weight_files(source: str, allow_download: bool) -> list[Path]:
    """Return the weight files of a local directory or of the cached snapshot of a hub id."""
    directory = Path(source).expanduser()
    if not directory.is_dir():
        from huggingface_hub import snapshot_download

        directory = Path(snapshot_download(source, local_files_only=True))
    files = [p for p in directory.iterdir() if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES)]
    safetensors = [p for p in files if p.name.endswith(".safetensors")]
    return safetensors or files  # transformers prefers safetensors when both exist


class HFUpstream(Upstream):
    """A transformers speech encoder (wav2vec 2.0 family or Whisper's encoder) as an Upstream."""

    def __init__(self, source: str, device: str = "cpu", allow_download: bool = False) -> None:
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

        local_only = not allow_download
        try:
            config = AutoConfig.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            raise UpstreamError(_missing_message(source, exc)) from exc
        self.model_type = config.model_type
        if self.model_type not in WAV2VEC_TYPES and self.model_type != "whisper":
            raise UpstreamError(f"hf model {source!r} has model_type {self.model_type!r}; supported: "
                                f"{', '.join(WAV2VEC_TYPES)}, whisper")
        try:
            model = AutoModel.from_pretrained(source, local_files_only=local_only)
            files = _weight_files(source, allow_download)
        except (OSError, ValueError) as exc:
            raise UpstreamError(_missing_message(source, exc)) from exc
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=local_only)
        except (OSError, ValueError) as exc:
            if self.model_type == "whisper":
                raise UpstreamError(_missing_message(source, exc)) from exc
            from transformers import Wav2Vec2FeatureExtractor

            # No preprocessor_config.json: the defaults of the wav2vec2 model cards.
            log.warning("hf model %s has no feature extractor config; normalising waveforms", source)
            self.extractor = Wav2Vec2FeatureExtractor(
                do_normalize=True, return_attention_mask=getattr(config, "feat_extract_norm", "") == "layer")
        if self.model_type == "whisper":
            model = model.get_encoder() if hasattr(model, "get_encoder") else model.encoder
            layers, hidden, frame_rate = config.encoder_layers, config.d_model, 50.0
        else:
            layers, hidden = config.num_hidden_layers, config.hidden_size
            frame_rate = 16000 / math.prod(config.conv_stride)
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = device
        self.sample_rate = int(getattr(self.extractor, "sampling_rate", 16000))
        if not files:
            raise UpstreamError(f"hf model {source!r}: no weight files (*.safetensors, *.bin) found")
        self.identity = {"name": f"hf:{source}", "weights_sha256": cached_weights_sha256(files),
                         "layers": int(layers), "hidden": int(hidden), "frame_rate": float(frame_rate)}

    def forward(self, batch: list[np.ndarray]) -> list[torch.Tensor]:
        """Return per clip [L + 1, frames, hidden] float32 CPU tensors of every hidden state."""
        if self.model_type == "whisper":
            return self._forward_whisper(batch)
        values = [np.asarray(self.extractor(np.asarray(a, dtype=np.float32), sampling_rate=self.sample_rate,
                                            return_tensors="np").input_values[0], dtype=np.float32)
                  for a in batch]
        lengths = torch.tensor([len(v) for v in values])
        t = int(lengths.max())
        x = torch.zeros(len(values), t)
        for i, v in enumerate(values):
            x[i, : len(v)] = torch.from_numpy(v)
        mask = None
        if getattr(self.extractor, "return_attention_mask", False):
            mask = (torch.arange(t)[None, :] < lengths[:, None]).long().to(self.device)
        with torch.inference_mode(), self.autocast():
            out = self.model(x.to(self.device), attention_mask=mask, output_hidden_states=True)
            states = torch.stack(out.hidden_states).float().cpu()  # [L + 1, B, T, H]
            frames = self.model._get_feat_extract_output_lengths(lengths)
        return [states[:, i, : int(frames[i])] for i in range(len(batch))]

    def _forward_whisper(self, batch: list[np.ndarray]) -> list[torch.Tensor]:
        # HF's WhisperEncoder accepts only 30 s (3000 mel frames) inputs: pad, then slice.
        pieces, owner = split_long(batch, WHISPER_CHUNK)
        feats = self.extractor(pieces, sampling_rate=self.sample_rate, return_tensors="pt").input_features
        with torch.inference_mode(), self.autocast():
            out = self.model(feats.to(self.device), output_hidden_states=True)
            states = torch.stack(out.hidden_states).float().cpu()
        per_piece = [states[:, j, : (math.ceil(len(p) / 160) + 1) // 2] for j, p in enumerate(pieces)]
        return join_pieces(per_piece, owner, len(batch))
