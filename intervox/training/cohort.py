"""A speaker regression for the content subspace, fitted on unlabelled real clips (a cohort).

Training on synthetic voices moves the projector only along the directions those voices vary
in, so on real recordings the content subspace still carries real speakers. The speaker
subspace does transfer to real speakers, so on real clips the speaker left in the content
embedding is in part linearly predictable from the speaker embedding. A ridge regression of
content on speaker, fitted on any set of real clips without labels, removes that part:

    content' = normalize(c - (s - mean(s)) @ W),   W = argmin ||C0 - S0 W||^2 + ridge * n * ||W||^2

(c, s: the L2-normalised subspace embeddings; S0, C0: the cohort's, centred). Fitted on the dev
panel's dev split and applied to its test split (other speakers, other languages) it raises the
content subspace's speaker EER from 0.36-0.40 to 0.41-0.44 and keeps or raises cross-speaker
content retrieval (configs/train/default.yaml has the numbers). The speaker subspace is untouched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from intervox.errors import TrainingError

COHORT_FILE = "cohort.safetensors"
# Relative to the clip count: on unit-norm 384-d embeddings (per-dimension variance ~1/384) 0.03
# keeps only the cohort's strongest speaker directions. Chosen on the dev panel: see the module doc.
DEFAULT_RIDGE = 0.03
MIN_COHORT_CLIPS = 20


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@dataclass
class SpeakerRegression:
    """content' = normalize(c - (s - speaker_mean) @ weight), on L2-normalised embeddings."""

    weight: np.ndarray  # [speaker_dim, content_dim]
    speaker_mean: np.ndarray  # [speaker_dim]
    ridge: float
    clips: int
    source: str  # what the cohort was (a panel path and split)
    clip_hashes: tuple[str, ...] = ()  # the cohort's audio hashes: evaluation refuses to report on them

    def apply(self, speaker: np.ndarray, content: np.ndarray) -> np.ndarray:
        """Return content embeddings [N, content_dim] less their speaker-predicted part, L2-normalised."""
        if speaker.shape[1] != self.weight.shape[0] or content.shape[1] != self.weight.shape[1]:
            raise TrainingError(f"cohort regression of {self.source} maps {self.weight.shape[0]} -> "
                                f"{self.weight.shape[1]} dims, got {speaker.shape[1]} -> {content.shape[1]}")
        out = _unit(content) - (_unit(speaker) - self.speaker_mean) @ self.weight
        return _unit(out).astype(np.float32)

    def save(self, path: Path) -> None:
        meta = {"ridge": str(self.ridge), "clips": str(self.clips), "source": self.source,
                "clip_hashes": json.dumps(list(self.clip_hashes))}
        tmp = path.with_name(path.name + ".tmp")
        save_file({"weight": self.weight, "speaker_mean": self.speaker_mean}, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> SpeakerRegression:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
            arrays = load_file(str(path))
            return cls(arrays["weight"], arrays["speaker_mean"], float(meta["ridge"]), int(meta["clips"]),
                       meta["source"], tuple(json.loads(meta.get("clip_hashes", "[]"))))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, KeyError, ValueError: not a cohort file
            raise TrainingError(f"{path}: not a readable cohort regression ({exc})") from exc


def fit_speaker_regression(speaker: np.ndarray, content: np.ndarray, *, ridge: float = DEFAULT_RIDGE,
                           source: str = "", clip_hashes: tuple[str, ...] = ()) -> SpeakerRegression:
    """Fit the ridge regression of content on speaker embeddings over a cohort of unlabelled clips."""
    if len(speaker) != len(content):
        raise TrainingError(f"cohort {source}: {len(speaker)} speaker but {len(content)} content embeddings")
    if len(speaker) < MIN_COHORT_CLIPS:
        raise TrainingError(f"cohort {source}: {len(speaker)} clips; a speaker regression needs "
                            f">= {MIN_COHORT_CLIPS} (from several speakers)")
    if ridge <= 0:
        raise TrainingError(f"cohort {source}: ridge must be > 0, got {ridge}")
    s, c = _unit(speaker), _unit(content)
    mean = s.mean(axis=0)
    s0, c0 = s - mean, c - c.mean(axis=0)
    gram = s0.T @ s0 + ridge * len(s) * np.eye(s.shape[1])
    weight = np.linalg.solve(gram, s0.T @ c0)
    return SpeakerRegression(weight, mean, float(ridge), len(s), source, tuple(clip_hashes))
