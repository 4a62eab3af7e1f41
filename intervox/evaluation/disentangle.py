"""Disentanglement measures of a speaker and a content subspace.

- Cross probes: speaker ID from the content subspace and content ID from the speaker
  subspace (lower = cleaner), beside the same probes on the "right" subspace. Each probe is
  tested on held-out levels of the *other* factor (speaker ID on unseen sentences, content
  ID on unseen speakers), so it measures the factor and not a memorised clip.
- Interventional invariance: for each (anchor, intervened) pair linked by `source_key`,
  the cosine change 1 - cos of each subspace, averaged per op and per target factor.
- Linear CKA between the subspaces (Kornblith et al. 2019, centred features).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from intervox.errors import IntervoxError
from intervox.evaluation.probes import ProbeConfig, split_by_group, train_probe
from intervox.evaluation.sv import l2_normalize


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Return linear CKA of two representations of the same N items (1 = same up to rotation/scale)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape[0] != y.shape[0] or x.shape[0] < 2:
        raise ValueError(f"CKA needs the same N >= 2 rows, got {x.shape} and {y.shape}")
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    # ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F): Kornblith 2019, eq. for linear kernels.
    cross = np.linalg.norm(y.T @ x) ** 2
    denom = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / denom) if denom > 0 else float("nan")


def intervention_pairs(keys: Sequence[str], metas: Sequence[dict]) -> list[tuple[int, int]]:
    """Return (anchor row, intervened row) for every clip whose `source_key` is present in `keys`."""
    index = {k: i for i, k in enumerate(keys)}
    pairs = []
    for i, m in enumerate(metas):
        src = m.get("source_key")
        if m.get("op") and src and src in index and index[src] != i:
            pairs.append((index[src], i))
    return pairs


def _op_name_target(meta: dict) -> tuple[str, str]:
    op = meta.get("op") or {}
    target = op.get("target") or "?"
    return str(op.get("name") or "?"), str(target.get("value") if isinstance(target, dict) else target)


def invariance(subspaces: Mapping[str, np.ndarray], pairs: Sequence[tuple[int, int]],
               metas: Sequence[dict]) -> dict:
    """Return mean cosine change (1 - cos) per subspace, per op name and per target factor.

    `{"by_op": {op: {"target", "n", subspace: mean}}, "by_target": {factor: {"n", subspace: mean}}}`.
    A speaker op should move the speaker subspace and leave the content subspace, and vice versa.
    """
    if not pairs:
        return {"by_op": {}, "by_target": {}}
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    change = {}
    for name, emb in subspaces.items():
        e = l2_normalize(emb)
        change[name] = 1.0 - np.einsum("ij,ij->i", e[a], e[b])
    groups: dict[str, list[int]] = defaultdict(list)
    targets: dict[str, list[int]] = defaultdict(list)
    op_target: dict[str, str] = {}
    for j, (_, i) in enumerate(pairs):
        name, target = _op_name_target(metas[i])
        groups[name].append(j)
        targets[target].append(j)
        op_target[name] = target

    def summary(idx: list[int]) -> dict:
        return {"n": len(idx), **{s: float(np.mean(change[s][idx])) for s in subspaces}}

    return {"by_op": {op: {"target": op_target[op], **summary(idx)} for op, idx in sorted(groups.items())},
            "by_target": {t: summary(idx) for t, idx in sorted(targets.items())}}


def factor_probe(x: np.ndarray, labels: Sequence[str], holdout: Sequence[str], cfg: ProbeConfig,
                 test_fraction: float = 0.3, salt: str = "") -> dict:
    """Return a probe's accuracy for `labels` from `x`, tested on held-out values of `holdout`.

    Only test clips whose label was seen in training count (a probe cannot name a class it
    never saw); if `holdout` has a single value the clips are split by item instead.
    """
    labels = np.array(labels, dtype=object)
    try:
        test = split_by_group(list(holdout), test_fraction, cfg.seed, salt=salt)
    except IntervoxError:
        test = split_by_group([str(i) for i in range(len(labels))], test_fraction, cfg.seed, salt=salt)
    train = ~test
    test &= np.isin(labels, labels[train])
    if not test.any() or len(set(labels[train])) < 2:
        return {"accuracy": float("nan"), "chance": float("nan"), "n_train": int(train.sum()),
                "n_test": 0, "n_classes": int(len(set(labels)))}
    res = train_probe(x[train], list(labels[train]), x[test], list(labels[test]), cfg)
    return res.to_dict(with_confusion=False)


def cross_probes(subspaces: Mapping[str, np.ndarray], metas: Sequence[dict], cfg: ProbeConfig,
                 test_fraction: float = 0.3) -> dict:
    """Return speaker-ID and content-ID probe accuracies on every subspace.

    `{"speaker_id": {subspace: result}, "content_id": {subspace: result}}`; speaker ID on the
    content subspace and content ID on the speaker subspace should be near chance.
    """
    speakers = [str(m.get("speaker")) for m in metas]
    contents = [str(m.get("content")) for m in metas]
    out: dict[str, dict] = {"speaker_id": {}, "content_id": {}}
    for name, emb in subspaces.items():
        out["speaker_id"][name] = factor_probe(emb, speakers, contents, cfg, test_fraction, "speaker_id")
        out["content_id"][name] = factor_probe(emb, contents, speakers, cfg, test_fraction, "content_id")
    return out


def pca_2d(x: np.ndarray) -> np.ndarray:
    """Return the first two principal-component coordinates of the rows of `x`."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    coords = x @ vt[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords
