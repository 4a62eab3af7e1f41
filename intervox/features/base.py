"""The Upstream contract: a frozen speech model that returns every hidden state per clip.

An upstream maps a batch of 16 kHz mono waveforms to one float32 tensor per clip of shape
`[layers + 1, frames, hidden]`: the embedding output (input of the first transformer layer)
followed by each layer's output, sliced to that clip's valid frames.
"""

from __future__ import annotations

import abc
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch

from intervox.assets import cache_dir


def resolve_device(device: str) -> str:
    """Return "cuda" or "cpu" for `device` in {"auto", "cpu", "cuda", "cuda:N"}."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class Upstream(abc.ABC):
    """A frozen SFM. Subclasses set `identity`, `sample_rate`, `device` and implement `forward`."""

    identity: dict  # {"name", "weights_sha256", "layers", "hidden", "frame_rate"}
    sample_rate: int = 16000
    device: str = "cpu"

    @property
    def num_hidden_states(self) -> int:
        """Return layers + 1 (the embedding output and every layer's output)."""
        return int(self.identity["layers"]) + 1

    @property
    def name(self) -> str:
        return str(self.identity["name"])

    @abc.abstractmethod
    def forward(self, batch: list[np.ndarray]) -> list[torch.Tensor]:
        """Return per clip a float32 CPU tensor [layers + 1, frames, hidden] of all hidden states."""

    def autocast(self) -> torch.autocast:
        """Return the autocast context: bf16 on a GPU, disabled on CPU (weights run in float32)."""
        kind = "cuda" if self.device.startswith("cuda") else "cpu"
        return torch.autocast(kind, dtype=torch.bfloat16, enabled=kind == "cuda")


def split_long(batch: list[np.ndarray], max_samples: int) -> tuple[list[np.ndarray], list[int]]:
    """Return (pieces, owner): each clip cut into <= `max_samples` pieces and the clip index of each."""
    pieces, owner = [], []
    for i, audio in enumerate(batch):
        audio = np.asarray(audio, dtype=np.float32)
        for start in range(0, max(len(audio), 1), max_samples):
            pieces.append(audio[start:start + max_samples])
            owner.append(i)
    return pieces, owner


def join_pieces(states: list[torch.Tensor], owner: list[int], n: int) -> list[torch.Tensor]:
    """Return per clip the frame-wise concatenation of its pieces' states ([L + 1, frames, H] each)."""
    out: list[list[torch.Tensor]] = [[] for _ in range(n)]
    for s, i in zip(states, owner, strict=True):
        out[i].append(s)
    return [parts[0] if len(parts) == 1 else torch.cat(parts, dim=1) for parts in out]


def cached_weights_sha256(files: list[Path]) -> str:
    """Return the sha256 of `files` (one file: its own hash; many: hash of "name hash" lines).

    Hashes are cached in `cache_dir()/hashes.json` keyed by path, size and mtime, so a
    multi-GB checkpoint is hashed once per machine.
    """
    store = cache_dir() / "hashes.json"
    try:
        known = json.loads(store.read_text())
    except (OSError, ValueError):
        known = {}
    hashes, changed = [], False
    for f in sorted(files, key=lambda p: p.name):
        st = f.stat()
        key = f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}"
        if key not in known:
            h = hashlib.sha256()
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
            known[key], changed = h.hexdigest(), True
        hashes.append((f.name, known[key]))
    if changed:
        try:
            store.parent.mkdir(parents=True, exist_ok=True)
            tmp = store.with_name(f"hashes.json.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, indent=1, sort_keys=True))
            os.replace(tmp, store)
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
    if len(hashes) == 1:
        return hashes[0][1]
    return hashlib.sha256("".join(f"{n} {h}\n" for n, h in hashes).encode()).hexdigest()
