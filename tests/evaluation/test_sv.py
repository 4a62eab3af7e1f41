"""SV metrics against direct computations written here: threshold sweeps, hand-made score sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.interpolate import interp1d
from scipy.optimize import brentq
from sklearn.metrics import roc_curve

from intervox.evaluation.sv import (
    compute_eer,
    cosine_scores,
    det_points,
    error_rates,
    gender_breakdown,
    gender_pair,
    min_dcf,
    verify,
)
from intervox.evaluation.trials import Trial


def sweep(scores, labels):
    """(far, frr) at every threshold 'accept score >= t', t from above the top score down to the lowest."""
    scores, labels = np.asarray(scores, float), np.asarray(labels)
    tgt, non = scores[labels == 1], scores[labels == 0]
    ts = np.concatenate([[np.inf], np.sort(np.unique(scores))[::-1]])
    far = np.array([np.mean(non >= t) for t in ts])
    frr = np.array([np.mean(tgt < t) for t in ts])
    return far, frr, ts


def brute_eer(scores, labels):
    far, frr, _ = sweep(scores, labels)
    d = frr - far
    i = int(np.nonzero(d <= 0)[0][0])
    if d[i] == 0:
        return far[i]
    t = d[i - 1] / (d[i - 1] - d[i])
    return far[i - 1] + t * (far[i] - far[i - 1])


def s3prl_eer(scores, labels):
    """s3prl's EER(): brentq on the interpolated ROC."""
    fpr, tpr, _ = roc_curve(labels, scores, pos_label=1)
    return brentq(lambda x: 1.0 - x - interp1d(fpr, tpr)(x), 0.0, 1.0)


def test_eer_hand_made_sets():
    # Perfectly separated: EER 0, threshold accepts every target.
    eer, thr = compute_eer([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])
    assert eer == 0.0
    assert error_rates([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0], thr) == (0.0, 0.0)
    # Inverted: every target below every non-target.
    assert compute_eer([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0])[0] == 1.0
    # All scores tied: chance.
    assert compute_eer([0.5] * 6, [1, 1, 1, 0, 0, 0])[0] == pytest.approx(0.5)
    # One target of four below one non-target of four: the crossing lies at 1/4.
    eer, _ = compute_eer([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.0], [1, 1, 1, 1, 0, 0, 0, 0])
    assert eer == pytest.approx(0.25)


def test_eer_matches_sweep_and_s3prl_with_ties():
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(10, 200))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]
        scores = labels * rng.uniform(0.2, 2.0) + rng.standard_normal(n)
        if trial % 2:
            scores = np.round(scores, 1)  # many ties
        eer, _ = compute_eer(scores, labels)
        assert eer == pytest.approx(brute_eer(scores, labels), abs=1e-9)
        if trial % 2 == 0:
            assert eer == pytest.approx(s3prl_eer(scores, labels), abs=1e-6)
        far, frr, _ = sweep(scores, labels)
        # The EER lies between the best achievable max and min of the two error rates.
        assert np.max(np.minimum(far, frr)) - 1e-9 <= eer <= np.min(np.maximum(far, frr)) + 1e-9


def test_eer_threshold_gives_equal_error_rates_on_large_sets():
    rng = np.random.default_rng(1)
    labels = np.repeat([1, 0], 5000)
    scores = np.where(labels == 1, 1.0, 0.0) + rng.standard_normal(labels.size)
    eer, thr = compute_eer(scores, labels)
    miss, fa = error_rates(scores, labels, thr)
    assert miss == pytest.approx(eer, abs=2e-3) and fa == pytest.approx(eer, abs=2e-3)


def test_degenerate_sets_are_nan():
    for labels in ([1, 1, 1], [0, 0, 0]):
        eer, thr = compute_eer([0.1, 0.2, 0.3], labels)
        assert math.isnan(eer) and math.isnan(thr)
        assert math.isnan(min_dcf([0.1, 0.2, 0.3], labels, 0.01)[0])
    with pytest.raises(ValueError):
        compute_eer([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError):
        compute_eer([0.1, 0.2], [1, 2])


@pytest.mark.parametrize("p_target", [0.01, 0.05])
def test_min_dcf_matches_threshold_sweep(p_target):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 300)
    scores = np.round(labels * 1.5 + rng.standard_normal(300), 1)
    far, frr, _ = sweep(scores, labels)
    direct = np.min(frr * p_target + far * (1 - p_target)) / min(p_target, 1 - p_target)
    assert min_dcf(scores, labels, p_target)[0] == pytest.approx(direct)
    assert min_dcf([0.9, 0.8, 0.1], [1, 1, 0], p_target)[0] == 0.0
    # Never worse than the trivial systems (normalised cost 1).
    assert min_dcf(rng.standard_normal(50), rng.integers(0, 2, 50), p_target)[0] <= 1.0


def test_det_points_are_monotone():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 500)
    scores = np.round(labels + rng.standard_normal(500), 2)
    fpr, fnr = det_points(scores, labels)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(fnr) <= 0)
    assert (fpr[0], fnr[0]) == (0.0, 1.0) and (fpr[-1], fnr[-1]) == (1.0, 0.0)


def test_gender_pairs_on_hand_made_trials():
    assert [gender_pair("m", "f"), gender_pair("F", "f"), gender_pair(None, "m")] == ["MF", "FF", None]
    # Threshold 0.5 fixed from the whole set; pair rates are counted directly.
    scores = np.array([0.9, 0.4, 0.6, 0.2, 0.7, 0.8, 0.1, 0.3])
    labels = np.array([1, 1, 0, 0, 0, 1, 0, 1])
    pairs = ["MM", "MM", "MM", "MF", "FM", "FF", "FF", "FF"]
    out = gender_breakdown(scores, labels, pairs, threshold=0.5)
    assert out["MM"] == {"n_target": 2, "n_nontarget": 1, "miss": 0.5, "false_alarm": 1.0,
                         "eer": pytest.approx(0.5)}
    assert out["MF"]["n_target"] == 0 and math.isnan(out["MF"]["miss"]) and out["MF"]["false_alarm"] == 0.0
    assert out["FM"]["false_alarm"] == 1.0
    assert out["FF"]["miss"] == 0.5 and out["FF"]["false_alarm"] == 0.0 and out["FF"]["eer"] == 0.0


def test_verify_scores_cosine_and_reports_gender_pairs():
    emb = np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    index = {"a1": 0, "a2": 1, "b1": 2, "b2": 3}
    trials = [Trial(1, "a1", "a2"), Trial(1, "b1", "b2"), Trial(0, "a1", "b1"), Trial(0, "a2", "b2")]
    s = cosine_scores(emb, index, trials)
    assert s[2] == pytest.approx(0.0) and s[0] == pytest.approx(2 / np.hypot(2, 0.1))
    res = verify(emb, index, trials, {"a1": "m", "a2": "m", "b1": "f", "b2": "f"})
    assert res["eer"] == 0.0 and res["n_trials"] == 4 and res["n_target"] == 2
    assert set(res["gender_pairs"]) == {"MM", "FF", "MF"}
    assert res["min_dcf_0.01"] == 0.0
    with pytest.raises(KeyError, match="zz"):
        cosine_scores(emb, index, [Trial(1, "a1", "zz")])
