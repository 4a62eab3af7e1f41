"""Evaluation plots as PNG files: DET curves, confusion matrices, 2-D embeddings, invariance bars.

matplotlib runs with the non-interactive Agg backend; every function writes one PNG and
returns its path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def probit(p: np.ndarray, eps: float = 1e-4) -> np.ndarray:
    """Return the normal deviate of probabilities `p` (clipped away from 0 and 1): DET axis units."""
    from scipy.stats import norm

    return norm.ppf(np.clip(np.asarray(p, dtype=np.float64), eps, 1 - eps))


def det_plot(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: Path, title: str) -> Path:
    """Plot DET curves {name: (false-alarm rates, miss rates)} on probit axes; return the PNG path."""
    plt = _plt()
    ticks = np.array([0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95])
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (fpr, fnr) in curves.items():
        if len(fpr):
            ax.plot(probit(fpr), probit(fnr), label=name, lw=1.5)
    ax.plot(probit(ticks), probit(ticks), color="0.8", lw=0.8, ls="--")  # EER diagonal
    ax.set_xticks(probit(ticks), [f"{t:g}" for t in ticks * 100])
    ax.set_yticks(probit(ticks), [f"{t:g}" for t in ticks * 100])
    lim = probit(np.array([0.0005, 0.98]))
    ax.set_xlim(*lim)
    ax.set_ylim(*lim)
    ax.set_xlabel("false alarm rate (%)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, plt, path)


def confusion_plot(confusion: np.ndarray, classes: Sequence[str], path: Path, title: str) -> Path:
    """Plot a row-normalised confusion matrix (rows = true class); return the PNG path."""
    plt = _plt()
    c = np.asarray(confusion, dtype=np.float64)
    norm = c / np.maximum(c.sum(axis=1, keepdims=True), 1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(max(4, 0.4 * n + 2), max(4, 0.4 * n + 1.5)))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 40:
        ax.set_xticks(range(n), classes, rotation=90, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _save(fig, plt, path)


def scatter_2d(coords: np.ndarray, labels: Sequence[str], path: Path, title: str,
               max_legend: int = 12) -> Path:
    """Scatter 2-D points coloured by label (a legend only for few labels); return the PNG path."""
    plt = _plt()
    labels = np.asarray([str(v) for v in labels])
    uniq = sorted(set(labels))
    cmap = plt.get_cmap("tab20")
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for i, lab in enumerate(uniq):
        m = labels == lab
        ax.scatter(coords[m, 0], coords[m, 1], s=8, color=cmap(i % 20),
                   label=lab if len(uniq) <= max_legend else None)
    if len(uniq) <= max_legend:
        ax.legend(fontsize=6, markerscale=1.5)
    ax.set_title(f"{title} ({len(uniq)} classes)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, plt, path)


def invariance_plot(by_op: Mapping[str, Mapping], subspaces: Sequence[str], path: Path, title: str) -> Path:
    """Bar chart of mean cosine change per op (groups) and subspace (bars); return the PNG path."""
    plt = _plt()
    ops = list(by_op)
    fig, ax = plt.subplots(figsize=(max(5, 0.9 * len(ops) + 2), 3.5))
    width = 0.8 / max(1, len(subspaces))
    for j, s in enumerate(subspaces):
        vals = [by_op[o].get(s, np.nan) for o in ops]
        ax.bar(np.arange(len(ops)) + j * width, vals, width, label=s)
    ax.set_xticks(np.arange(len(ops)) + 0.4 - width / 2,
                  [f"{o}\n({by_op[o].get('target', '?')})" for o in ops], fontsize=7)
    ax.set_ylabel("mean 1 - cos")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    return _save(fig, plt, path)


def _save(fig, plt, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def ci_bars(rows: Sequence[Mapping], path: Path, title: str) -> Path:
    """Bar charts of speaker EER and content 1-NN per system, with 95% CI whiskers; return the PNG path.

    `rows` are dicts with `system` and optional `spk_eer`/`spk_eer_ci`, `top1`/`top1_ci`.
    """
    plt = _plt()
    names = [str(r["system"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(max(7, 0.5 * len(rows) + 3), 4))
    panels = (("spk_eer", "speaker EER (lower is better)"),
              ("top1", "cross-speaker content 1-NN (higher is better)"))
    for ax, (key, label) in zip(axes, panels, strict=True):
        vals = np.array([r.get(key) if r.get(key) is not None else np.nan for r in rows], dtype=np.float64)
        cis = [r.get(f"{key}_ci") or [None, None] for r in rows]
        lo = np.array([v - c[0] if c[0] is not None else 0 for v, c in zip(vals, cis, strict=True)])
        hi = np.array([c[1] - v if c[1] is not None else 0 for v, c in zip(vals, cis, strict=True)])
        x = np.arange(len(rows))
        ax.bar(x, np.nan_to_num(vals), color=["C1" if n.startswith("subspaces") else "C0" for n in names])
        # a percentile CI need not hold its point estimate (few resamples, a skewed statistic):
        # the whisker then ends at the bar, whose value is the estimate
        lo, hi = np.clip(np.nan_to_num(lo), 0, None), np.clip(np.nan_to_num(hi), 0, None)
        ax.errorbar(x, np.nan_to_num(vals), yerr=[lo, hi], fmt="none",
                    ecolor="black", capsize=3, lw=1)
        ax.set_xticks(x, names, rotation=70, ha="right", fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=9)
    return _save(fig, plt, path)
