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
from intervox.training.config import TrainConfig
from intervox.training.model import InputSpec, SubspaceProjector


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
                 seed_dir: Path) -> None:
        self.model = model.eval()
        self.config = config
        self.inputs = inputs
        self.seed_dir = seed_dir
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
                normalize: bool = True) -> dict[str, np.ndarray]:
        """Return {subspace: [N, dim] float32} for pooled [N, layers + 1, hidden] (a list for fusion).

        With `normalize` rows are L2-normalised, the space the contrastive loss compares in.
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
        out = self.model(xs)
        return {k: (F.normalize(v, dim=1) if normalize else v).numpy() for k, v in out.items()}

    def embed(self, audio: np.ndarray, sr: int, normalize: bool = True) -> dict[str, np.ndarray]:
        """Return {subspace: [1, dim]} for one clip: run the upstream(s), mean-pool frames, project."""
        from intervox.audio import resample
        from intervox.features.registry import get_upstream

        pooled = []
        for spec in self.inputs:
            if spec.name not in self._upstreams:
                self._upstreams[spec.name] = get_upstream(spec.name)
            upstream = self._upstreams[spec.name]
            wanted = getattr(upstream, "sample_rate", 16000)
            x = np.asarray(audio, dtype=np.float32)
            if sr != wanted:
                x = resample(x, sr, wanted)
            hidden = upstream.forward([x])[0]  # [layers + 1, frames, hidden]
            pooled.append(torch.as_tensor(hidden).float().mean(1, keepdim=False).unsqueeze(0))
        return self.project(pooled, normalize)


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
    return TrainedModel(model, config, inputs, seed_dir)
