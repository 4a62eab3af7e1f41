"""Speaker verification metrics: cosine trial scoring, EER, minDCF, DET points, gender pairs.

EER follows s3prl's `EER()` (ROC from sklearn, the point where fnr = 1 - tpr crosses fpr,
interpolated linearly along the ROC curve), written as an exact segment crossing instead of
brentq so that ties, vertical ROC segments and perfectly separated sets need no special
cases. minDCF is the NIST/Kaldi normalised detection cost with C_miss = C_fa = 1.

Degenerate sets (no target trials, or no non-target trials) have no EER or minDCF: the
functions return NaN for them (and a NaN threshold) rather than raising, because a gender
pair such as MF legitimately has no target trials.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import roc_curve

from intervox.evaluation.trials import Trial

P_TARGETS = (0.01, 0.05)


@dataclass(frozen=True)
class RocPoints:
    """ROC operating points sorted by decreasing threshold: accept when score >= threshold."""

    fpr: np.ndarray  # false-alarm rate, non-decreasing
    fnr: np.ndarray  # miss rate, non-increasing
    thresholds: np.ndarray  # finite; the first point accepts nothing


def _check(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(int)
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or Inf")
    if not np.all(np.isin(labels, (0, 1))):
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    return scores, labels


def is_degenerate(labels: np.ndarray) -> bool:
    """True when `labels` lack target or non-target trials (no EER/minDCF exists)."""
    labels = np.asarray(labels)
    return labels.size == 0 or bool(np.all(labels == 1)) or bool(np.all(labels == 0))


def roc_points(scores: np.ndarray, labels: np.ndarray) -> RocPoints:
    """Return every ROC operating point (sklearn's roc_curve, no points dropped)."""
    scores, labels = _check(scores, labels)
    fpr, tpr, thr = roc_curve(labels, scores, pos_label=1, drop_intermediate=False)
    thr = thr.astype(np.float64)
    # sklearn's first threshold is +inf ("accept nothing"); any value above the top score is equivalent.
    thr[0] = np.nextafter(scores.max(), np.inf)
    return RocPoints(fpr=fpr, fnr=1.0 - tpr, thresholds=thr)


def compute_eer(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Return (EER, threshold at the EER); (nan, nan) when one class is missing."""
    scores, labels = _check(scores, labels)
    if is_degenerate(labels):
        return float("nan"), float("nan")
    roc = roc_points(scores, labels)
    diff = roc.fnr - roc.fpr  # starts at 1, ends at -1, non-increasing
    i = int(np.nonzero(diff <= 0)[0][0])
    if diff[i] == 0 or i == 0:
        return float(roc.fpr[i]), float(roc.thresholds[i])
    # Linear crossing on the ROC segment (i-1, i): the same point brentq finds on s3prl's interp1d.
    t = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = roc.fpr[i - 1] + t * (roc.fpr[i] - roc.fpr[i - 1])
    thr = roc.thresholds[i - 1] + t * (roc.thresholds[i] - roc.thresholds[i - 1])
    return float(eer), float(thr)


def min_dcf(scores: np.ndarray, labels: np.ndarray, p_target: float,
            c_miss: float = 1.0, c_fa: float = 1.0) -> tuple[float, float]:
    """Return (normalised minDCF, its threshold) at `p_target`; (nan, nan) when degenerate."""
    scores, labels = _check(scores, labels)
    if is_degenerate(labels):
        return float("nan"), float("nan")
    roc = roc_points(scores, labels)
    dcf = c_miss * roc.fnr * p_target + c_fa * roc.fpr * (1.0 - p_target)
    # Normalised by the cost of the best trivial system (accept all or reject all).
    dcf = dcf / min(c_miss * p_target, c_fa * (1.0 - p_target))
    i = int(np.argmin(dcf))
    return float(dcf[i]), float(roc.thresholds[i])


def det_points(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (false-alarm rates, miss rates) along the DET curve: fpr up, fnr down."""
    roc = roc_points(scores, labels)
    return roc.fpr, roc.fnr


def error_rates(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Return (miss rate, false-alarm rate) at `threshold` (accept score >= threshold); NaN if no trials."""
    scores, labels = _check(scores, labels)
    tgt, non = scores[labels == 1], scores[labels == 0]
    miss = float(np.mean(tgt < threshold)) if tgt.size else float("nan")
    fa = float(np.mean(non >= threshold)) if non.size else float("nan")
    return miss, fa


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Return the rows of `x` scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def cosine_scores(embeddings: np.ndarray, index: Mapping[str, int], trials: Sequence[Trial]) -> np.ndarray:
    """Return the cosine similarity of each trial's enroll and test embedding rows."""
    missing = [k for t in trials for k in (t.enroll, t.test) if k not in index]
    if missing:
        raise KeyError(f"trial key {missing[0]!r} has no embedding ({len(missing)} missing)")
    e = l2_normalize(embeddings)
    a = np.array([index[t.enroll] for t in trials], dtype=np.int64)
    b = np.array([index[t.test] for t in trials], dtype=np.int64)
    return np.einsum("ij,ij->i", e[a], e[b])


def gender_pair(enroll_gender: str | None, test_gender: str | None) -> str | None:
    """Return 'MM', 'MF', 'FM' or 'FF' from clip genders ('m'/'f'), or None when either is unknown."""
    g = (str(enroll_gender or "").lower()[:1], str(test_gender or "").lower()[:1])
    if g[0] not in ("m", "f") or g[1] not in ("m", "f"):
        return None
    return (g[0] + g[1]).upper()


def gender_breakdown(scores: np.ndarray, labels: np.ndarray, pairs: Sequence[str | None],
                     threshold: float) -> dict[str, dict]:
    """Return per gender pair: trial counts, miss and false-alarm rates at the whole-set `threshold`.

    The threshold is fixed from the whole trial set (its EER threshold) so that the pairs
    are compared at one operating point; each pair's own EER is added where it exists.
    """
    scores, labels = _check(scores, labels)
    out: dict[str, dict] = {}
    pairs_arr = np.array([p or "" for p in pairs])
    for pair in ("MM", "MF", "FM", "FF"):
        m = pairs_arr == pair
        if not m.any():
            continue
        miss, fa = error_rates(scores[m], labels[m], threshold)
        eer, _ = compute_eer(scores[m], labels[m])
        out[pair] = {"n_target": int(labels[m].sum()), "n_nontarget": int((labels[m] == 0).sum()),
                     "miss": miss, "false_alarm": fa, "eer": eer}
    return out


def verify(embeddings: np.ndarray, index: Mapping[str, int], trials: Sequence[Trial],
           genders: Mapping[str, str | None] | None = None) -> dict:
    """Return the SV results of one embedding on a trial list: EER, minDCFs, DET points, gender pairs."""
    scores = cosine_scores(embeddings, index, trials)
    labels = np.array([t.label for t in trials], dtype=int)
    eer, thr = compute_eer(scores, labels)
    result: dict = {"eer": eer, "threshold": thr, "n_trials": len(trials),
                    "n_target": int(labels.sum())}
    for p in P_TARGETS:
        result[f"min_dcf_{p:g}"] = min_dcf(scores, labels, p)[0]
    fpr, fnr = det_points(scores, labels) if not is_degenerate(labels) else (np.zeros(0), np.zeros(0))
    result["det"] = _thin_det(fpr, fnr)
    if genders is not None:
        pairs = [gender_pair(genders.get(t.enroll), genders.get(t.test)) for t in trials]
        if any(pairs):
            result["gender_pairs"] = gender_breakdown(scores, labels, pairs, thr)
    return result


def _thin_det(fpr: np.ndarray, fnr: np.ndarray, max_points: int = 200) -> dict:
    """Return at most `max_points` DET points (evenly spaced along the curve) as lists."""
    if fpr.size > max_points:
        idx = np.unique(np.linspace(0, fpr.size - 1, max_points).round().astype(int))
        fpr, fnr = fpr[idx], fnr[idx]
    return {"fpr": [round(float(v), 6) for v in fpr], "fnr": [round(float(v), 6) for v in fnr]}
