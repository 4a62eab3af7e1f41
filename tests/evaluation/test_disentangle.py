"""Disentanglement measures: CKA, interventional invariance, cross probes."""

from __future__ import annotations

import numpy as np
import pytest
from evalfixtures import clean_projector, default_splits

from intervox.evaluation.data import load_split
from intervox.evaluation.disentangle import (
    cross_probes,
    intervention_pairs,
    invariance,
    linear_cka,
    pca_2d,
)
from intervox.evaluation.probes import ProbeConfig


def test_linear_cka_identical_rotated_and_independent():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 10))
    q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    assert linear_cka(x, x) == pytest.approx(1.0)
    assert linear_cka(x, 3.0 * x @ q + 5.0) == pytest.approx(1.0)  # rotation, scale, shift
    assert linear_cka(x, rng.standard_normal((500, 10))) < 0.05
    assert linear_cka(x, x[:, :3]) == pytest.approx(np.sqrt(3 / 10), abs=0.1)
    with pytest.raises(ValueError):
        linear_cka(x, x[:10])


def test_invariance_on_hand_made_pairs():
    keys = ["a", "b", "c", "d"]
    metas = [{"op": None}, {"op": {"name": "pitch", "target": "speaker"}, "source_key": "a"},
             {"op": {"name": "swap", "target": "content"}, "source_key": "a"},
             {"op": {"name": "pitch", "target": "speaker"}, "source_key": "missing"}]
    pairs = intervention_pairs(keys, metas)
    assert pairs == [(0, 1), (0, 2)]
    speaker = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0]])  # moved by the speaker op only
    content = np.array([[1.0, 0.0], [3.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])  # flipped by the content op only
    out = invariance({"speaker": speaker, "content": content}, pairs, metas)
    assert out["by_op"]["pitch"] == {"target": "speaker", "n": 1, "speaker": 1.0, "content": 0.0}
    assert out["by_op"]["swap"] == {"target": "content", "n": 1, "speaker": 0.0, "content": 2.0}
    assert out["by_target"]["speaker"]["speaker"] == 1.0
    assert invariance({"speaker": speaker}, [], metas) == {"by_op": {}, "by_target": {}}


@pytest.fixture(scope="module")
def validation(feature_world):
    return load_split(feature_world.features, "validation")


def test_cross_probes_separate_a_clean_projector(validation):
    emb = clean_projector(validation.pooled.astype(np.float32))
    out = cross_probes(emb, validation.metas, ProbeConfig(seed=0))
    spk, con = out["speaker_id"], out["content_id"]
    # Right subspace: well above chance; wrong subspace: near chance.
    assert spk["speaker"]["accuracy"] > 3 * spk["speaker"]["chance"]
    assert con["content"]["accuracy"] > 3 * con["content"]["chance"]
    assert spk["content"]["accuracy"] < spk["speaker"]["accuracy"] / 3
    assert con["speaker"]["accuracy"] < con["content"]["accuracy"] / 3


def test_invariance_of_a_clean_projector_on_shards(validation):
    emb = clean_projector(validation.pooled.astype(np.float32))
    pairs = intervention_pairs(validation.keys, validation.metas)
    assert len(pairs) == 2 * 36  # one speaker op and one content op per anchor (see default_splits)
    out = invariance(emb, pairs, validation.metas)["by_target"]
    assert out["speaker"]["speaker"] > 5 * out["speaker"]["content"]
    assert out["content"]["content"] > 5 * out["content"]["speaker"]
    assert len(default_splits()["validation"]) == len(validation)


def test_pca_2d_finds_the_main_axis():
    rng = np.random.default_rng(1)
    x = np.outer(rng.standard_normal(200), [3.0, 0, 0]) + 0.01 * rng.standard_normal((200, 3))
    coords = pca_2d(x)
    assert coords.shape == (200, 2)
    assert abs(np.corrcoef(coords[:, 0], x[:, 0])[0, 1]) > 0.99
    assert pca_2d(np.ones((5, 1))).shape == (5, 2)
