"""The cohort backend of a trained projector, fitted on unlabelled real clips.

Training on synthetic voices moves the projector only along the directions those voices vary
in, so on real recordings (1) the content subspace still carries real speakers, and (2) every
embedding sits in a domain its cosine scores were not fitted to. A cohort of real clips, with no
labels, fixes part of both:

- content: the speaker left in it is in part linearly predictable from the speaker subspace,
  which does transfer to real speakers, so a ridge regression of content on speaker removes it:
  content' = normalize(c - (s - mean(s)) @ W), W = argmin ||C0 - S0 W||^2 + ridge * n * ||W||^2
  (c, s: the L2-normalised subspace embeddings; S0, C0: the cohort's, centred);
- speaker: whitening with the cohort's mean and covariance (eigenvalues floored at `floor` x the
  largest) adapts the speaker subspace to the recordings' domain.

Fitted on the KTuberling cohort (corpora/ktuberling.py: 22 other voices saying other words) and
applied to the dev panel, 4 seeds, dev | test: the content subspace's speaker EER 0.362 | 0.402 ->
0.407 | 0.425, content 1-NN 0.159 | 0.289 -> 0.184 | 0.283; the speaker subspace's EER 0.153 |
0.234 -> 0.149 | 0.167 (raw layers gain from the same whitening: layer 0 0.209 | 0.298 -> 0.147 |
0.193). configs/train/default.yaml has the numbers.
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
# Eigenvalue floor of the whitening, as a fraction of the largest: directions the cohort hardly
# varies in are not blown up into noise (dev: 0.003-0.03 tie, 0.1 is worse; see default.yaml).
DEFAULT_FLOOR = 0.01
MIN_COHORT_CLIPS = 20


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def whitening(x: np.ndarray, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, projection) whitening the L2-normalised rows of `x` (apply with `whiten`).

    The covariance's eigenvalues are floored at `floor` x the largest.
    """
    e = _unit(x)
    mean = e.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((e - mean).T))
    values = np.maximum(values, 0.0)
    return mean, vectors / np.sqrt(values + floor * values.max())


def whiten(x: np.ndarray, mean: np.ndarray, projection: np.ndarray) -> np.ndarray:
    """Return the L2-normalised rows of `x` whitened by (mean, projection), as float32."""
    return ((_unit(x) - mean) @ projection).astype(np.float32)


@dataclass
class Cohort:
    """content' = normalize(c - (s - speaker_mean) @ weight); speaker' = (s - speaker_mean) @ white_proj.

    s and c are the L2-normalised subspace embeddings; speaker_mean is the cohort's mean of s.
    """

    weight: np.ndarray  # [speaker_dim, content_dim]
    speaker_mean: np.ndarray  # [speaker_dim]
    white_proj: np.ndarray  # [speaker_dim, speaker_dim]
    ridge: float
    floor: float
    clips: int
    source: str  # what the cohort was (a panel path and split)
    clip_hashes: tuple[str, ...] = ()  # the cohort's audio hashes: evaluation refuses to report on them

    def speaker(self, speaker: np.ndarray) -> np.ndarray:
        """Return the speaker embeddings [N, speaker_dim] whitened with the cohort's statistics."""
        if speaker.shape[1] != self.white_proj.shape[0]:
            raise TrainingError(f"cohort of {self.source} whitens {self.white_proj.shape[0]} dims, "
                                f"got {speaker.shape[1]}")
        return whiten(speaker, self.speaker_mean, self.white_proj)

    def content(self, speaker: np.ndarray, content: np.ndarray) -> np.ndarray:
        """Return content embeddings [N, content_dim] less their speaker-predicted part, L2-normalised."""
        if speaker.shape[1] != self.weight.shape[0] or content.shape[1] != self.weight.shape[1]:
            raise TrainingError(f"cohort regression of {self.source} maps {self.weight.shape[0]} -> "
                                f"{self.weight.shape[1]} dims, got {speaker.shape[1]} -> {content.shape[1]}")
        out = _unit(content) - (_unit(speaker) - self.speaker_mean) @ self.weight
        return _unit(out).astype(np.float32)

    def save(self, path: Path) -> None:
        meta = {"ridge": str(self.ridge), "floor": str(self.floor), "clips": str(self.clips),
                "source": self.source, "clip_hashes": json.dumps(list(self.clip_hashes))}
        arrays = {"weight": self.weight, "speaker_mean": self.speaker_mean, "white_proj": self.white_proj}
        tmp = path.with_name(path.name + ".tmp")
        save_file(arrays, str(tmp), metadata=meta)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Cohort:
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
            arrays = load_file(str(path))
            return cls(arrays["weight"], arrays["speaker_mean"], arrays["white_proj"],
                       float(meta["ridge"]), float(meta["floor"]), int(meta["clips"]), meta["source"],
                       tuple(json.loads(meta.get("clip_hashes", "[]"))))
        except Exception as exc:  # noqa: BLE001 - SafetensorError, KeyError, ValueError: not a cohort file
            raise TrainingError(f"{path}: not a readable cohort file ({exc})") from exc


def fit_cohort_backend(speaker: np.ndarray, content: np.ndarray, *, ridge: float = DEFAULT_RIDGE,
                       floor: float = DEFAULT_FLOOR, source: str = "",
                       clip_hashes: tuple[str, ...] = ()) -> Cohort:
    """Fit the content regression and the speaker whitening over a cohort of unlabelled clips."""
    if len(speaker) != len(content):
        raise TrainingError(f"cohort {source}: {len(speaker)} speaker but {len(content)} content embeddings")
    if len(speaker) < MIN_COHORT_CLIPS:
        raise TrainingError(f"cohort {source}: {len(speaker)} clips; a speaker regression needs "
                            f">= {MIN_COHORT_CLIPS} (from several speakers)")
    if ridge <= 0 or floor <= 0:
        raise TrainingError(f"cohort {source}: ridge and floor must be > 0, got {ridge} and {floor}")
    s, c = _unit(speaker), _unit(content)
    mean = s.mean(axis=0)
    s0, c0 = s - mean, c - c.mean(axis=0)
    gram = s0.T @ s0 + ridge * len(s) * np.eye(s.shape[1])
    weight = np.linalg.solve(gram, s0.T @ c0)
    _, white_proj = whitening(s, floor)  # its mean is `mean`: both are over the cohort's unit rows
    return Cohort(weight, mean, white_proj, float(ridge), float(floor), len(s), source, tuple(clip_hashes))
