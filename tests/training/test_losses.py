"""Loss terms against plain-loop references written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from intervox.training.losses import (
    epps_pulley,
    frame_content_loss,
    orthogonality_loss,
    sigreg_loss,
    supcon_loss,
)


def reference_supcon(z: np.ndarray, labels: list, tau: float, margin: float) -> tuple[float, int]:
    """Khosla et al. multi-positive SupCon by loops over anchors i and candidates j."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n = len(labels)
    losses = []
    for i in range(n):
        positives = [j for j in range(n) if j != i and labels[j] == labels[i]]
        if not positives:
            continue
        logits = {}
        for j in range(n):
            if j == i:
                continue
            s = float(z[i] @ z[j]) / tau
            if j in positives:
                s -= margin / tau
            logits[j] = s
        top = max(logits.values())
        log_denominator = top + math.log(sum(math.exp(v - top) for v in logits.values()))
        losses.append(-sum((logits[j] - log_denominator) / len(positives) for j in positives))
    return (sum(losses) / len(losses) if losses else 0.0), len(losses)


LABEL_PATTERNS = {
    "grid": [0, 0, 1, 1, 2, 2, 3, 3],
    "some_without_positives": [0, 1, 2, 2, 3, 4, 4, 4],
    "all_same": [5] * 8,
    "unbalanced": [0, 0, 0, 0, 0, 1, 1, 2],
}


@pytest.mark.parametrize("pattern", sorted(LABEL_PATTERNS))
@pytest.mark.parametrize("margin", [0.0, 0.2])
@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_supcon_equals_loop_reference(pattern: str, margin: float, tau: float) -> None:
    labels = LABEL_PATTERNS[pattern]
    z = np.random.default_rng([len(pattern), int(margin * 10)]).standard_normal((len(labels), 5))
    got = supcon_loss(torch.tensor(z, dtype=torch.float64), torch.tensor(labels), tau, margin)
    want, count = reference_supcon(z, labels, tau, margin)
    assert got.anchors_with_positives == count
    assert got.anchors == len(labels)
    assert float(got.loss) == pytest.approx(want, rel=1e-5, abs=1e-6)


def test_supcon_no_positive_anywhere_is_zero_with_gradient() -> None:
    z = torch.randn(4, 3, requires_grad=True)
    res = supcon_loss(z, torch.arange(4))
    assert res.anchors_with_positives == 0 and float(res.loss.detach()) == 0.0
    res.loss.backward()  # still part of the graph, so a batch like this does not crash training
    assert z.grad is not None


def test_supcon_is_low_when_classes_are_separated() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    good = torch.tensor([[1.0, 0], [1.0, 0.01], [0, 1.0], [0.01, 1.0]])
    bad = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0.01], [0.01, 1.0]])
    assert float(supcon_loss(good, labels).loss) < 1e-3 < float(supcon_loss(bad, labels).loss)


def test_orthogonality_variants_match_direct_formulas() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((6, 4)), rng.standard_normal((6, 5))
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    cross = [sum(an[n, p] * bn[n, q] for n in range(6)) for p in range(4) for q in range(5)]
    got = float(orthogonality_loss(torch.tensor(a), torch.tensor(b), "cross_covariance_ref"))
    assert got == pytest.approx(np.mean(np.square(cross)))
    got = float(orthogonality_loss(torch.tensor(a), torch.tensor(b), "cross_covariance"))
    assert got == pytest.approx(np.sum(np.square(np.array(cross) / 6)))
    b2 = rng.standard_normal((6, 4))  # pairwise (Zs Zc^T) needs equal subspace dims
    bn2 = b2 / np.linalg.norm(b2, axis=1, keepdims=True)
    pair = np.mean([sum(an[i, k] * bn2[j, k] for k in range(4)) ** 2 for i in range(6) for j in range(6)])
    assert float(orthogonality_loss(torch.tensor(a), torch.tensor(b2), "pairwise")) == pytest.approx(pair)
    # uncorrelated over the batch: both variants are zero
    zs = torch.tensor([[1.0, 0], [1.0, 0]])
    zc = torch.tensor([[0, 1.0], [0, -1.0]])
    assert float(orthogonality_loss(zs, zc, "cross_covariance")) == 0.0
    assert float(orthogonality_loss(zs, zc, "cross_covariance_ref")) == 0.0
    assert float(orthogonality_loss(zs, zc, "pairwise")) == 0.0


def test_orthogonality_does_not_depend_on_batch_size() -> None:
    gen = torch.Generator().manual_seed(0)
    shared = torch.randn(64, 8, generator=gen)  # correlated subspaces: a clear, non-zero penalty
    a = torch.cat([shared, torch.randn(64, 24, generator=gen)], 1)
    b = torch.cat([shared @ torch.randn(8, 8, generator=gen), torch.randn(64, 24, generator=gen)], 1)
    twice = {v: float(orthogonality_loss(a.repeat(2, 1), b.repeat(2, 1), v)) for v in
             ("cross_covariance", "cross_covariance_ref", "pairwise")}
    once = {v: float(orthogonality_loss(a, b, v)) for v in twice}
    assert once["cross_covariance"] > 0.01
    assert twice["cross_covariance"] == pytest.approx(once["cross_covariance"], rel=1e-5)
    assert twice["pairwise"] == pytest.approx(once["pairwise"], rel=1e-5)
    assert twice["cross_covariance_ref"] == pytest.approx(4 * once["cross_covariance_ref"], rel=1e-5)
    # the reference is B^2 / (Da Db) times the default
    ratio = once["cross_covariance_ref"] / once["cross_covariance"]
    assert ratio == pytest.approx(64**2 / (32 * 32), rel=1e-5)
    # identical one-direction subspaces are the maximum, 1
    same = torch.ones(10, 3)
    assert float(orthogonality_loss(same, same)) == pytest.approx(1.0)


def test_epps_pulley_equals_quadrature_by_hand() -> None:
    x = np.random.default_rng(0).standard_normal((50, 1))
    t = np.linspace(0, 3, 17)
    emp = np.array([np.mean(np.exp(1j * tk * x[:, 0])) for tk in t])
    integrand = np.exp(-t**2 / 2) * np.abs(emp - np.exp(-t**2 / 2)) ** 2
    want = sum((integrand[k] + integrand[k + 1]) / 2 * (t[k + 1] - t[k]) for k in range(16))
    assert float(epps_pulley(torch.tensor(x))[0]) == pytest.approx(want, rel=1e-4)


def test_sigreg_small_for_gaussian_large_for_collapse() -> None:
    gen = torch.Generator().manual_seed(0)
    gaussian = torch.randn(4096, 32, generator=gen)
    collapsed = torch.ones(4096, 32) * 0.5 + 0.01 * torch.randn(4096, 32, generator=gen)
    g = float(sigreg_loss(gaussian, torch.Generator().manual_seed(1)))
    c = float(sigreg_loss(collapsed, torch.Generator().manual_seed(1)))
    assert g < 1e-3
    assert c > 0.1
    # the same seeded generator gives the same directions, hence the same value
    assert float(sigreg_loss(gaussian, torch.Generator().manual_seed(1))) == g


def test_frame_content_loss_rewards_aligned_frames() -> None:
    gen = torch.Generator().manual_seed(0)
    src = torch.randn(3, 5, 8, generator=gen)
    aligned = frame_content_loss(src, src + 0.01 * torch.randn(3, 5, 8, generator=gen))
    shuffled = frame_content_loss(src, src[:, torch.randperm(5, generator=gen)])
    assert aligned.anchors_with_positives == 30
    assert float(aligned.loss) < float(shuffled.loss)


def test_leakage_is_zero_when_the_other_factor_leaves_no_trace_and_grows_with_it():
    from intervox.training.losses import leakage_loss

    gen = torch.Generator().manual_seed(0)
    speakers = torch.arange(4).repeat_interleave(4)  # 4 speakers x 4 contents
    contents = torch.arange(4).repeat(4)
    content_dirs = torch.randn(4, 32, generator=gen)
    speaker_dirs = torch.randn(4, 32, generator=gen)
    clean = content_dirs[contents]  # a content subspace that holds content only
    leaky = clean + 2.0 * speaker_dirs[speakers]  # ... and one that also holds the speaker
    assert float(leakage_loss(clean, contents, speakers)) == pytest.approx(0.0, abs=1e-6)
    assert float(leakage_loss(leaky, contents, speakers)) > 0.05
    # no pair that shares the other factor: nothing to compare, no loss
    assert float(leakage_loss(clean, contents, torch.arange(16))) == 0.0
