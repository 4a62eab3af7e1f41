"""Validity table: per-op statistics from QC records, as dict and Markdown."""

from __future__ import annotations

import pytest

from intervox.judges.qc import QCConfig
from intervox.judges.validity import validity_markdown, validity_table


def _rec(op, target, accepted, reason=None, **scores):
    return {"op": op, "target": target, "accepted": accepted, "reason": reason, "scores": scores}


RECORDS = [
    _rec(None, None, True, cer=0.1),
    _rec("praat_gender", "speaker", True, speaker_similarity=0.6, cer=0.2, cer_increase=0.1, pitch_ratio=1.4,
         requested_pitch_ratio=1.4),
    _rec("praat_gender", "speaker", True, speaker_similarity=0.7, cer=0.1, cer_increase=0.0, pitch_ratio=1.5,
         requested_pitch_ratio=1.5),
    _rec("praat_gender", "speaker", False, "speaker_similarity 0.90 >= max 0.85 for a speaker op",
         speaker_similarity=0.9, cer=0.1, cer_increase=-0.1, pitch_ratio=1.1, requested_pitch_ratio=1.1),
    _rec("praat_gender", "speaker", False, "not scorable: source missing"),
    _rec("noise", "channel", False, "cer_increase 0.50 >= max 0.15 for a channel op", speaker_similarity=0.8,
         cer=0.6, cer_increase=0.5),
]


def test_validity_table_numbers():
    t = validity_table([dict(r, scores=r["scores"] or None) for r in RECORDS], QCConfig())
    pg = t["ops"]["praat_gender"]
    assert pg["n_scored"] == 4 and pg["accepted_fraction"] == 0.5 and pg["target"] == "speaker"
    assert pg["changed_speaker_fraction"] == pytest.approx(2 / 3, abs=1e-4)
    assert pg["cer_increase_median"] == 0.0 and pg["cer_increase_mean"] == 0.0
    assert pg["speaker_similarity_median"] == 0.7
    assert pg["speaker_similarity_p10"] == pytest.approx(0.62)
    assert pg["speaker_similarity_p90"] == pytest.approx(0.86)
    assert pg["pitch_ratio_median"] == 1.4 and pg["requested_pitch_ratio_median"] == 1.4
    assert pg["rejections"] == {"not_scorable": 1, "speaker_similarity": 1}
    assert t["ops"]["(anchor)"]["n_scored"] == 1 and t["ops"]["(anchor)"]["speaker_similarity_median"] is None
    assert t["ops"]["noise"]["rejections"] == {"cer_increase": 1}
    assert t["thresholds"]["speaker_max_similarity"] == 0.85


def test_validity_markdown_has_a_row_per_op_and_the_thresholds():
    md = validity_markdown(validity_table(RECORDS, QCConfig()))
    lines = md.splitlines()
    assert lines[0].startswith("| op | target | n |")
    rows = [ln for ln in lines if ln.startswith("| praat_gender")]
    assert len(rows) == 1 and "| 4 | 50% |" in rows[0]
    assert "0.70 [0.62, 0.86]" in rows[0] and "1.40 (1.40)" in rows[0]
    assert any(ln.startswith("| noise | channel | 1 | 0% |") for ln in lines)
    assert "similarity to source < 0.85" in md
