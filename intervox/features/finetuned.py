"""Fine-tuned and merged upstreams: the trainable module inside an Upstream, and `finetuned:` names.

`intervox finetune` trains the PyTorch module inside an Upstream (the Whisper encoder built from
the CTranslate2 weights, or the transformers model of an `hf:` upstream); `intervox merge` writes
`theta_0 + alpha * (theta_ft - theta_0)` of that module's state_dict as safetensors. A merged
file loads back as an upstream like any other: `finetuned:RUN_DIR@0.25` (the file
RUN_DIR/merged/alpha-0.25.safetensors) or `finetuned:PATH.safetensors`; the base upstream named
in its metadata is built first, then the merged weights replace its own.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from intervox.errors import UpstreamError
from intervox.features.base import Upstream, cached_weights_sha256

PREFIX = "finetuned:"
METADATA_KEY = "intervox"


def upstream_module(upstream: Upstream) -> nn.Module:
    """Return the torch module whose weights are the upstream's (what fine-tuning trains)."""
    from intervox.features.hf import HFUpstream
    from intervox.features.whisper_ct2 import WhisperCT2Upstream

    if isinstance(upstream, WhisperCT2Upstream):
        return upstream.encoder
    if isinstance(upstream, HFUpstream):
        return upstream.model
    raise UpstreamError(f"upstream {upstream.name!r} ({type(upstream).__name__}) has no trainable "
                        "torch module")


def frontend_prefixes(upstream: Upstream) -> tuple[str, ...]:
    """Return the state_dict prefixes of the convolutional front end (never fine-tuned, as in Speech-FT).

    Whisper: conv1/conv2 (and its fixed sinusoidal positions); wav2vec 2.0 family: the conv
    feature extractor (the waveform encoder).
    """
    from intervox.features.hf import HFUpstream

    if isinstance(upstream, HFUpstream) and upstream.model_type != "whisper":
        return ("feature_extractor.",)
    return ("conv1.", "conv2.", "positions", "embed_positions.")


def transformer_layers(upstream: Upstream) -> nn.ModuleList:
    """Return the ModuleList of the upstream's transformer layers (for gradient checkpointing)."""
    module = upstream_module(upstream)
    layers = getattr(module, "layers", None) or getattr(getattr(module, "encoder", None), "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise UpstreamError(f"upstream {upstream.name!r}: cannot find its transformer layers")
    return layers


def enable_checkpointing(upstream: Upstream) -> None:
    """Recompute each transformer layer's activations in the backward pass (saves activation memory).

    The layer's `forward` is wrapped on the instance, so parameter names and the state_dict are
    unchanged; works in eval mode (transformers' own switch only acts in train mode).
    """
    from torch.utils.checkpoint import checkpoint

    for layer in transformer_layers(upstream):
        if not getattr(layer, "_intervox_checkpointed", False):
            layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)
            layer._intervox_checkpointed = True


def hidden_states(upstream: Upstream, batch: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (states [L + 1, B, T, H], valid frames per clip [B]) with autograd, for training.

    The same inputs as the upstream's own `forward` (Whisper log-mel per clip and masked padding;
    the wav2vec 2.0 family normalised per clip by its feature extractor), on clips of at most 30 s.
    """
    from intervox.features.hf import WHISPER_CHUNK, HFUpstream
    from intervox.features.whisper_ct2 import HOP, WhisperCT2Upstream, encoder_frames, log_mel

    device = upstream.device
    if isinstance(upstream, WhisperCT2Upstream):
        mels = [log_mel(a, upstream.padded) for a in batch]
        lengths = torch.tensor([m.shape[-1] for m in mels])
        t = int(lengths.max())
        mel = torch.stack([F.pad(m, (0, t - m.shape[-1])) for m in mels]).to(device)
        states = upstream.encoder(mel, lengths.to(device))
        frames = torch.tensor([encoder_frames(-(-len(a) // HOP)) for a in batch])
        return states, frames
    if not isinstance(upstream, HFUpstream):
        raise UpstreamError(f"upstream {upstream.name!r} cannot be fine-tuned")
    if upstream.model_type == "whisper":
        if max(len(a) for a in batch) > WHISPER_CHUNK:
            raise UpstreamError("fine-tuning a Whisper encoder takes clips of at most 30 s")
        feats = upstream.extractor(list(batch), sampling_rate=upstream.sample_rate, return_tensors="pt")
        out = upstream.model(feats.input_features.to(device), output_hidden_states=True)
        frames = torch.tensor([(-(-len(a) // 160) + 1) // 2 for a in batch])
        return torch.stack(out.hidden_states), frames
    rate = upstream.sample_rate
    values = [np.asarray(upstream.extractor(np.asarray(a, dtype=np.float32), sampling_rate=rate,
                                            return_tensors="np").input_values[0], dtype=np.float32)
              for a in batch]
    lengths = torch.tensor([len(v) for v in values])
    x = torch.zeros(len(values), int(lengths.max()))
    for i, v in enumerate(values):
        x[i, : len(v)] = torch.from_numpy(v)
    mask = None
    if getattr(upstream.extractor, "return_attention_mask", False):
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).long().to(device)
    out = upstream.model(x.to(device), attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states), upstream.model._get_feat_extract_output_lengths(lengths).cpu()


def pool_frames(states: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Return pooled [B, L + 1, H]: each layer's mean over a clip's valid frames (as the feature stage)."""
    t = states.shape[2]
    valid = (torch.arange(t, device=states.device)[None, :] < frames.to(states.device)[:, None])
    w = valid.to(states.dtype) / frames.clamp(min=1).to(states.device, states.dtype)[:, None]  # [B, T]
    return torch.einsum("lbth,bt->blh", states, w)


def alpha_tag(alpha: float) -> str:
    """Return the canonical text of an alpha in names and file names: 0.25 -> "0.25", 1.0 -> "1"."""
    return f"{float(alpha):g}"


def merged_path(name: str) -> Path:
    """Return the merged safetensors file a `finetuned:RUN_DIR@ALPHA` or `finetuned:FILE` name points at."""
    spec = name[len(PREFIX):] if name.startswith(PREFIX) else name
    run, sep, alpha = spec.rpartition("@")
    if sep:
        try:
            tag = alpha_tag(float(alpha))
        except ValueError:
            raise UpstreamError(f"upstream {name!r}: '{alpha}' after '@' is not a number (alpha)") from None
        path = Path(run) / "merged" / f"alpha-{tag}.safetensors"
        hint = f"run `intervox merge {run} --alpha {tag}` first"
    else:
        path = Path(spec)
        hint = "name a file written by `intervox merge`, or use finetuned:RUN_DIR@ALPHA"
    if not path.is_file():
        raise UpstreamError(f"upstream {name!r}: merged weights {path} do not exist; {hint}")
    return path


def read_merged_metadata(path: Path, required: tuple[str, ...] = ("base", "alpha")) -> dict:
    """Return the intervox metadata of a merged or fine-tuned safetensors file (base, alpha, config)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[METADATA_KEY])
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise UpstreamError(f"{path}: not written by `intervox finetune` / `intervox merge` ({exc})") from exc
    missing = [k for k in required if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise UpstreamError(f"{path}: its intervox metadata lacks {', '.join(missing)}")
    return meta


def load_finetuned(name: str, device: str = "cpu", padded: bool = False) -> Upstream:
    """Return the merged upstream `name` (finetuned:RUN_DIR@ALPHA or finetuned:FILE) on `device`."""
    from safetensors.torch import load_file

    from intervox.features.registry import get_upstream

    path = merged_path(name)
    meta = read_merged_metadata(path)
    base = meta["base"]
    upstream = get_upstream(base["name"], device=device, padded=padded)
    if upstream.identity["weights_sha256"] != base["weights_sha256"]:
        raise UpstreamError(f"{path}: merged from {base['name']} with weights {base['weights_sha256'][:12]}, "
                            f"but that upstream now has weights {upstream.identity['weights_sha256'][:12]}")
    module = upstream_module(upstream)
    try:
        module.load_state_dict(load_file(str(path), device=str(device)), strict=True)
    except RuntimeError as exc:
        raise UpstreamError(f"{path}: does not fit {base['name']} ({str(exc).splitlines()[0]})") from exc
    upstream.identity = {**upstream.identity, "name": name, "weights_sha256": cached_weights_sha256([path]),
                         "base": base["name"], "alpha": float(meta["alpha"])}
    return upstream
