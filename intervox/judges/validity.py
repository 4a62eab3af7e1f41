"""Per-op validity table for the dataset card: did each op change what it claims, and only that?

Built from QC records (one per scored clip: `{"op", "target", "accepted", "reason", "scores"}`,
the lines of `qc.jsonl`), as a dict and as Markdown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np

from intervox.config import to_plain
from intervox.judges.qc import QCConfig

ANCHOR = "(anchor)"


def _vals(rows: list[dict], name: str) -> np.ndarray:
    v = [r["scores"].get(name) for r in rows if r.get("scores")]
    return np.asarray([x for x in v if x is not None], dtype=np.float64)


def _stat(x: np.ndarray, fn: str, q: float = 50.0) -> float | None:
    if x.size == 0:
        return None
    if fn == "mean":
        return round(float(np.mean(x)), 4)
    return round(float(np.percentile(x, q)), 4)


def _reason_kind(reason: str | None) -> str | None:
    """Return the score a rejection reason names ("speaker_similarity", "cer_increase", ...)."""
    if not reason:
        return None
    return "not_scorable" if reason.startswith("not scorable") else reason.split(" ", 1)[0]


def op_row(rows: list[dict], cfg: QCConfig) -> dict:
    """Return the validity statistics of one op's QC records."""
    sim = _vals(rows, "speaker_similarity")
    dcer = _vals(rows, "cer_increase")
    reasons = Counter(_reason_kind(r.get("reason")) for r in rows if not r.get("accepted"))
    return {
        "target": rows[0].get("target"),
        "n_scored": len(rows),
        "accepted_fraction": round(sum(bool(r.get("accepted")) for r in rows) / len(rows), 4),
        "changed_speaker_fraction": (round(float(np.mean(sim < cfg.speaker_max_similarity)), 4)
                                     if sim.size else None),
        "cer_median": _stat(_vals(rows, "cer"), "median"),
        "cer_increase_median": _stat(dcer, "median"),
        "cer_increase_mean": _stat(dcer, "mean"),
        "speaker_similarity_median": _stat(sim, "q", 50),
        "speaker_similarity_p10": _stat(sim, "q", 10),
        "speaker_similarity_p90": _stat(sim, "q", 90),
        "own_speaker_similarity_median": _stat(_vals(rows, "own_speaker_similarity"), "q", 50),
        "pitch_ratio_median": _stat(_vals(rows, "pitch_ratio"), "q", 50),
        "requested_pitch_ratio_median": _stat(_vals(rows, "requested_pitch_ratio"), "q", 50),
        "rejections": {k: v for k, v in sorted(reasons.items(), key=lambda kv: str(kv[0]))},
    }


def validity_table(records: Iterable[dict], cfg: QCConfig) -> dict:
    """Return `{"thresholds": ..., "ops": {op name: statistics}}` from QC records (anchors as "(anchor)")."""
    groups: dict[str, list[dict]] = {}
    for r in records:
        groups.setdefault(r.get("op") or ANCHOR, []).append(r)
    ops = {name: op_row(rows, cfg) for name, rows in sorted(groups.items())}
    return {"thresholds": to_plain(cfg), "ops": ops}


def _fmt(v: object) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


def validity_markdown(table: dict) -> str:
    """Return the validity table as Markdown: one row per op, then the thresholds used."""
    lines = [
        "| op | target | n | accepted | changed speaker | CER | ΔCER median | ΔCER mean "
        "| spk sim median [p10, p90] | own-spk sim | F0 ratio (asked) | rejections |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---|",
    ]
    for name, r in table["ops"].items():
        sim = (f"{_fmt(r['speaker_similarity_median'])} [{_fmt(r['speaker_similarity_p10'])}, "
               f"{_fmt(r['speaker_similarity_p90'])}]") if r["speaker_similarity_median"] is not None else "–"
        f0 = _fmt(r["pitch_ratio_median"])
        if r["requested_pitch_ratio_median"] is not None:
            f0 += f" ({_fmt(r['requested_pitch_ratio_median'])})"
        rej = ", ".join(f"{k}: {v}" for k, v in r["rejections"].items()) or "–"
        cells = [name, r["target"] or "–", str(r["n_scored"]), f"{r['accepted_fraction']:.0%}",
                 _fmt(r["changed_speaker_fraction"]), _fmt(r["cer_median"]), _fmt(r["cer_increase_median"]),
                 _fmt(r["cer_increase_mean"]), sim, _fmt(r["own_speaker_similarity_median"]), f0, rej]
        lines.append("| " + " | ".join(cells) + " |")
    t = table["thresholds"]
    lines += [
        "",
        f"Thresholds (ASR {t['asr_model']}, Resemblyzer cosine): speaker ops need similarity to "
        f"source < {t['speaker_max_similarity']} and ΔCER < {t['speaker_max_cer_increase']}; content ops "
        f"similarity >= {t['content_min_similarity']} and ΔCER < {t['content_max_cer_increase']}; channel "
        f"ops similarity >= {t['channel_min_similarity']} and ΔCER < {t['channel_max_cer_increase']}; "
        f"requested pitch ratios within {t['pitch_ratio_tolerance']} (relative). \"changed speaker\" = "
        f"fraction with similarity to source < {t['speaker_max_similarity']}; CER is capped at 1 per clip; "
        "ΔCER = clip CER - source CER.",
    ]
    return "\n".join(lines) + "\n"
