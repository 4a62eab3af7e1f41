"""Hand-made feature shard dirs for the evaluation tests (imported by name: no tests/__init__).

The pooled features are built from known factors: every speaker and every content id has
a random vector; pooled layer 1 carries mostly speaker, layer 2 mostly content, layer 0
little of either. A "projector" that reads the speaker half of layer 1 and the content
half of layer 2 is then a clean disentangler by construction.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox.shards.write import write_shard

DIM = 8  # per factor
LAYERS = 4  # pooled rows: embedding output + 3 layers
HIDDEN = 2 * DIM


def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a)
    return buf.getvalue()


class World:
    """Random factor vectors by id, drawn reproducibly from one seed."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self.cache: dict[str, np.ndarray] = {}

    def vec(self, name: str) -> np.ndarray:
        if name not in self.cache:
            rng = np.random.default_rng([self.seed, *name.encode()])
            self.cache[name] = rng.standard_normal(DIM)
        return self.cache[name]

    def pooled(self, speaker: str, content: str, rng: np.random.Generator, noise: float = 0.3) -> np.ndarray:
        s, c = self.vec("spk:" + speaker), self.vec("con:" + content)
        rows = [
            np.concatenate([0.1 * s, 0.1 * c]),
            np.concatenate([s, 0.2 * c]),
            np.concatenate([0.2 * s, c]),
            np.concatenate([0.5 * s, 0.5 * c]),
        ]
        x = np.stack(rows) + noise * rng.standard_normal((LAYERS, HIDDEN))
        return x.astype(np.float16)


def clip(key: str, split: str, speaker: str, content: str, gender: str, text: str,
         op: dict | None = None, source_key: str | None = None, **extra) -> dict:
    return {"key": key, "speaker": speaker, "content": content, "channel": "clean", "gender": gender,
            "split": split, "text": text, "op": op, "source_key": source_key,
            "source_speaker": speaker.split("~")[0],
            "language": "en", "sr": 16000, **extra}


def grid_split(split: str, speakers: list[tuple[str, str]], contents: list[str]) -> list[dict]:
    """Anchors for every speaker x content, each with a speaker op and a content op clip."""
    clips = []
    n = 0
    for spk, gender in speakers:
        for con in contents:
            anchor = f"{split}-000000-{n:06d}"
            n += 1
            clips.append(clip(anchor, split, spk, con, gender, f"sentence {con}"))
            key = f"{split}-000000-{n:06d}"
            n += 1
            clips.append(clip(key, split, spk + "~p1", con, gender, f"sentence {con}", source_key=anchor,
                              op={"name": "pitch_shift", "target": "speaker", "params": {"semitones": 3}}))
            key = f"{split}-000000-{n:06d}"
            n += 1
            clips.append(clip(key, split, spk, con + "~w", gender, f"sentence {con} changed",
                              source_key=anchor,
                              op={"name": "word_swap", "target": "content", "params": {}}))
    return clips


def write_feature_dir(root: Path, world: World, splits: dict[str, list[dict]]) -> Path:
    rng = np.random.default_rng([world.seed, 99])
    root.mkdir(parents=True, exist_ok=True)
    for split, clips in splits.items():
        samples = [{"__key__": c["key"], "json": c,
                    "pooled.npy": npy_bytes(world.pooled(c["speaker"], c["content"], rng))} for c in clips]
        write_shard(root / f"{split}-000000.tar", samples, plan_hash="test")
    return root


@dataclass(frozen=True)
class FeatureWorld:
    features: Path
    world: World


def default_splits() -> dict[str, list[dict]]:
    val_spk = [("vm1", "m"), ("vm2", "m"), ("vm3", "m"), ("vf1", "f"), ("vf2", "f"), ("vf3", "f")]
    ood_spk = [("om1", "m"), ("om2", "m"), ("of1", "f"), ("of2", "f")]
    words = ["yes", "no", "up", "down", "stop"]
    kw = []
    n = 0
    for spk, gender in [("k1", "m"), ("k2", "f"), ("k3", "m"), ("k4", "f"), ("k5", "m"), ("k6", "f")]:
        for w in words:
            for _ in range(3):
                kw.append(clip(f"keywords-000000-{n:06d}", "keywords", spk, f"kw-{w}", gender, w))
                n += 1
    return {"validation": grid_split("validation", val_spk, [f"s{i}" for i in range(6)]),
            "test_ood": grid_split("test_ood", ood_spk, [f"t{i}" for i in range(5)]),
            "keywords": kw}


def clean_projector(pooled: np.ndarray) -> dict[str, np.ndarray]:
    """The disentangler by construction: speaker half of layer 1, content half of layer 2."""
    return {"speaker": pooled[:, 1, :DIM], "content": pooled[:, 2, DIM:]}


def json_dump(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))
