"""Checkpoints that resume exactly and load with `torch.load(weights_only=True)`.

A checkpoint holds model, optimiser and scheduler state, the torch RNG states (as tensors),
the data position (a plain dict), the step and a hash of the resume-relevant config.
Randomness outside torch is drawn from `np.random.default_rng([seed, rank, step, ...])`,
so the step and the data position are the whole numpy-side state.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from intervox.config import to_plain
from intervox.errors import TrainingError
from intervox.training.config import RESUME_FREE_KEYS, TrainConfig

CHECKPOINT_RE = re.compile(r"^step-(\d{6,})\.pt$")


def config_hash(cfg: TrainConfig) -> str:
    """Return a hash of the config keys that change a run's result (not max_steps, debug...)."""
    plain = to_plain(cfg)
    plain.pop("seeds", None)
    plain.pop("run_dir", None)
    for key in RESUME_FREE_KEYS:
        node = plain
        *parents, last = key.split(".")
        for p in parents:
            node = node.get(p, {})
        node.pop(last, None)
    return hashlib.sha256(json.dumps(plain, sort_keys=True).encode()).hexdigest()[:16]


def checkpoint_path(seed_dir: Path, step: int) -> Path:
    return seed_dir / "checkpoints" / f"step-{step:06d}.pt"


def list_checkpoints(seed_dir: Path) -> list[tuple[int, Path]]:
    """Return (step, path) of the finished checkpoints of a seed dir, oldest first."""
    d = seed_dir / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(found)


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` to `path` atomically (tmp file + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Return a checkpoint's state, loaded with weights_only=True (no arbitrary unpickling)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise TrainingError(f"{path}: cannot load checkpoint ({exc})") from exc


def prune_checkpoints(seed_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` checkpoints (keep=0 keeps everything)."""
    if keep > 0:
        for _, p in list_checkpoints(seed_dir)[:-keep]:
            p.unlink(missing_ok=True)


def rng_state() -> dict:
    """Return the torch CPU (and CUDA) RNG states as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def export_projector(path: Path, model: torch.nn.Module, metadata: dict) -> None:
    """Write the projector weights as safetensors with JSON metadata (inputs, subspaces)."""
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    # One metadata key: safetensors writes metadata keys in hash-map order, which varies by process.
    save_file(tensors, str(tmp), metadata={"intervox": json.dumps(metadata, sort_keys=True)})
    os.replace(tmp, path)
