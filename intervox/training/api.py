"""Load a trained projector: `load_trained(run_dir).project(pooled)` / `.embed(audio, sr)`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from intervox.config import load_config
from intervox.errors import TrainingError
from intervox.training.cohort import COHORT_FILE, Cohort
from intervox.training.config import TrainConfig
from intervox.training.model import InputSpec, SubspaceProjector

# embed() runs the upstream on windows of this length and mean-pools their frames weighted by
# frame count, so memory stays bounded on long input. 30 s is Whisper's context: the CTranslate2
# Whisper upstream cuts at the same points, so pooled features equal the feature stage's.
EMBED_WINDOW_SECONDS = 30.0
EMBED_MIN_TAIL_SECONDS = 1.0  # a shorter last window joins the one before (SSL convs need ~25 ms+)
PCM_INTS = {np.dtype(np.int8): (0, 2**7), np.dtype(np.int16): (0, 2**15), np.dtype(np.int32): (0, 2**31),
            np.dtype(np.uint8): (128, 128)}  # dtype -> (offset, full scale) of integer PCM


def as_mono_float32(audio: np.ndarray | torch.Tensor, sr: int) -> np.ndarray:
    """Return `audio` as float32 mono samples in [-1, 1], or raise ValueError saying what is wrong.

    Integer PCM (int8/int16/int32/uint8) is scaled to [-1, 1]; stereo [N, 2] or [2, N] is
    averaged to mono. Refused: a sample rate that is not a positive integer, empty input,
    more than 2 dimensions or channels, other dtypes, NaN or Inf samples.
    """
    if isinstance(sr, bool) or not isinstance(sr, (int, float, np.number)) or not 0 < sr < np.inf \
            or sr != int(sr):
        raise ValueError(f"sr must be a positive whole sample rate in Hz, got {sr!r}")
    x = audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)
    if x.dtype in PCM_INTS:
        offset, scale = PCM_INTS[x.dtype]
        x = (x.astype(np.float32) - offset) / scale
    elif x.dtype.kind != "f":
        raise ValueError(f"audio dtype {x.dtype} is not audio: pass float samples in [-1, 1] "
                         "or int16/int32/uint8 PCM")
    if x.size == 0:
        raise ValueError(f"audio is empty (shape {x.shape})")
    if x.ndim == 2 and x.shape[1] <= 2 < x.shape[0]:
        x = x.mean(axis=1)  # [N, channels]
    elif x.ndim == 2 and x.shape[0] <= 2 < x.shape[1]:
        x = x.mean(axis=0)  # [channels, N]
    if x.ndim != 1:
        raise ValueError(f"audio must be mono [N] or stereo [N, 2] / [2, N], got shape {x.shape}")
    x = x.astype(np.float32, copy=False)
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        raise ValueError(f"audio has {bad.size} NaN/Inf sample(s), the first at index {bad[0]}")
    return x


def resolve_seed_dir(path: str | Path, seed_index: int = 0) -> Path:
    """Return the seed dir holding projector.safetensors: `path` itself or `path/seed-K`."""
    p = Path(path)
    if (p / "projector.safetensors").is_file():
        return p
    if (p / f"seed-{seed_index}" / "projector.safetensors").is_file():
        return p / f"seed-{seed_index}"
    raise TrainingError(f"{p}: no projector.safetensors here or in seed-{seed_index}/ (unfinished run?)")


class TrainedModel:
    """A trained subspace projector with the description of the inputs it expects."""

    def __init__(self, model: SubspaceProjector, config: TrainConfig, inputs: list[InputSpec],
                 seed_dir: Path, cohort: Cohort | None = None) -> None:
        self.model = model.eval()
        self.config = config
        self.inputs = inputs
        self.seed_dir = seed_dir
        self.cohort = cohort  # seed_dir/cohort.safetensors when `intervox cohort` fitted one
        self._upstreams: dict[str, object] = {}

    @property
    def subspaces(self) -> dict[str, int]:
        """Return {subspace name: dim}."""
        return dict(self.model.subspaces)

    @property
    def input_description(self) -> str:
        """Return a one-line description of the expected input (upstreams, shapes, layer choice)."""
        m = self.config.model
        per_subspace = m.subspace_layers is not None or m.subspace_layer_ranges is not None
        how = (", ".join(f"{k}: {v}" for k, v in self.model.subspace_inputs().items()) if per_subspace
               else f"layer {m.layer}" if m.input == "layer" else "learned weighted sum of layers")
        ups = " + ".join(f"{s.name} pooled [N, {s.layers}, {s.hidden}]" for s in self.inputs)
        fused = f", fused to {m.fusion_dim}" if len(self.inputs) > 1 else ""
        return f"{ups}; {how}{fused}; {m.projector} projector -> " + ", ".join(
            f"{k} {v}" for k, v in self.subspaces.items())

    @torch.no_grad()
    def project(self, pooled: np.ndarray | torch.Tensor | Sequence[np.ndarray | torch.Tensor],
                normalize: bool = True, cohort: bool = True) -> dict[str, np.ndarray]:
        """Return {subspace: [N, dim] float32} for pooled [N, layers + 1, hidden] (a list for fusion).

        With `normalize` rows are L2-normalised, the space the contrastive loss compares in.
        With `cohort` and a fitted cohort (`intervox cohort`), the content rows lose what the
        speaker rows predict of them (L2-normalised) and the speaker rows are whitened with the
        cohort's statistics (training.cohort).
        """
        if isinstance(pooled, (np.ndarray, torch.Tensor)):
            pooled = [pooled]
        if len(pooled) != len(self.inputs):
            raise TrainingError(f"this projector takes {len(self.inputs)} upstream input(s), "
                                f"got {len(pooled)}")
        xs = []
        for x, _spec in zip(pooled, self.inputs, strict=False):
            t = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x).float()
            if t.ndim == 2:
                t = t.unsqueeze(0)
            xs.append(t)
        out = {k: (F.normalize(v, dim=1) if normalize else v).numpy() for k, v in self.model(xs).items()}
        if cohort and self.cohort is not None:
            out["content"] = self.cohort.content(out["speaker"], out["content"])
            out["speaker"] = self.cohort.speaker(out["speaker"])
        return out

    def embed(self, audio: np.ndarray | torch.Tensor, sr: int,
              normalize: bool = True, cohort: bool = True) -> dict[str, np.ndarray]:
        """Return {subspace: [1, dim]} for one clip: run the upstream(s), mean-pool frames, project.

        `audio` is float in [-1, 1] or int PCM, mono [N] or stereo [N, 2] / [2, N] (see
        `as_mono_float32`; anything else is a ValueError). Long input runs in 30 s windows.
        """
        x = as_mono_float32(audio, sr)
        return self.project([self._pooled(spec.name, x, int(sr)) for spec in self.inputs], normalize, cohort)

    def _pooled(self, name: str, x: np.ndarray, sr: int) -> torch.Tensor:
        """Return [1, layers + 1, hidden]: upstream `name`'s frame mean over `x`, window by window."""
        from intervox.audio import resample
        from intervox.features.registry import get_upstream

        if name not in self._upstreams:
            self._upstreams[name] = get_upstream(name)
        upstream = self._upstreams[name]
        rate = getattr(upstream, "sample_rate", 16000)
        x = resample(x, sr, rate) if sr != rate else x
        window, tail = int(EMBED_WINDOW_SECONDS * rate), int(EMBED_MIN_TAIL_SECONDS * rate)
        total, frames, start = None, 0, 0
        while start < len(x):
            stop = start + window if len(x) - (start + window) >= tail else len(x)
            hidden = torch.as_tensor(upstream.forward([x[start:stop]])[0]).double()  # [L + 1, T, H]
            total = hidden.sum(1) if total is None else total + hidden.sum(1)
            frames += hidden.shape[1]
            start = stop
        if not frames:
            raise ValueError(f"{name}: {len(x)} samples at {rate} Hz are too short for one frame")
        return (total / frames).float().unsqueeze(0)


def load_trained(run_dir: str | Path, seed_index: int = 0) -> TrainedModel:
    """Return the TrainedModel of a run dir (its seed-K) or of a seed dir."""
    seed_dir = resolve_seed_dir(run_dir, seed_index)
    weights = seed_dir / "projector.safetensors"
    try:  # safetensors parses a header and raw tensors only: a pickle or junk file is refused, never run
        with safe_open(str(weights), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # noqa: BLE001 - SafetensorError and OSError alike mean "not a projector"
        raise TrainingError(f"{weights}: not a readable safetensors file ({exc})") from exc
    try:
        inputs = [InputSpec(**d) for d in json.loads(meta["intervox"])["inputs"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise TrainingError(f"{weights}: metadata has no usable 'inputs' ({exc})") from exc
    config = load_config(seed_dir / "config.yaml", TrainConfig)
    model = SubspaceProjector(inputs, config.model)
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        raise TrainingError(f"{weights}: weights do not fit the model of "
                            f"{seed_dir / 'config.yaml'} ({exc})") from exc
    cohort = seed_dir / COHORT_FILE
    return TrainedModel(model, config, inputs, seed_dir,
                        Cohort.load(cohort) if cohort.is_file() else None)
