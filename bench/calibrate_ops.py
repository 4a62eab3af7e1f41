"""Calibrate the speaker ops' ranges: speaker similarity to the source over a grid of params.

A speaker op only helps training when the judge (Resemblyzer) no longer hears the source
voice in its output, while the words survive. This sweeps world_vc's (f0_ratio, alpha) and
praat_gender's (pitch_ratio, formant_ratio) over fixed grids, applies each point to the same
unedited anchors from a built shard set, and reports per point the median cosine to the
source, beside two references measured on the same anchors: same voice / other sentence
(what "still the same speaker" looks like) and other voice / other sentence. A subset of
points also gets the Whisper CER increase.

    python -m bench.calibrate_ops --shards shards/en --anchors 24 --out bench/CALIBRATION.md
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np

from intervox.interventions.registry import from_dict
from intervox.judges import content, speaker
from intervox.shards.read import iter_shards, list_shards

WORLD_F0 = (0.7, 0.8, 1.0, 1.25, 1.45)
WORLD_ALPHA = (0.82, 0.88, 0.94, 1.0, 1.07, 1.14, 1.22)
PRAAT_PITCH = (0.6, 0.8, 1.0, 1.25, 1.7)
PRAAT_FORMANT = (0.82, 0.88, 0.94, 1.0, 1.07, 1.14, 1.2)


def load_anchors(shard_dir: Path, n: int) -> tuple[list[dict], dict[str, list[dict]]]:
    """Return (`n` unedited training clips spread over speakers, every unedited clip by speaker)."""
    by_speaker: dict[str, list[dict]] = {}
    for s in iter_shards([p for p in list_shards(shard_dir) if p.name.startswith("train-")]):
        meta = s["json"]
        if meta.get("op") is None:
            audio, sr = s["flac"]
            by_speaker.setdefault(meta["speaker"], []).append({"audio": audio, "sr": sr, **meta})
    picked: list[dict] = []
    for rnd in itertools.count():
        row = [clips[rnd] for clips in by_speaker.values() if rnd < len(clips)]
        if not row:
            break
        picked.extend(row)
        if len(picked) >= n:
            break
    return picked[:n], by_speaker


def references(anchors: list[dict], by_speaker: dict[str, list[dict]]) -> dict:
    """Return same-voice/other-sentence and other-voice similarities of the anchors."""
    same, other = [], []
    speakers = sorted(by_speaker)
    for i, a in enumerate(anchors):
        ea = speaker.embed(a["audio"], a["sr"])
        mates = [c for c in by_speaker[a["speaker"]] if c["content"] != a["content"]][:3]
        same += [speaker.cosine(ea, speaker.embed(c["audio"], c["sr"])) for c in mates]
        o = by_speaker[speakers[(speakers.index(a["speaker"]) + 1 + i) % len(speakers)]]
        if o[0]["speaker"] != a["speaker"]:
            other.append(speaker.cosine(ea, speaker.embed(o[0]["audio"], o[0]["sr"])))
    return {"same_voice": _summary(same), "other_voice": _summary(other)}


def _summary(x: list[float]) -> dict:
    a = np.asarray(x, dtype=np.float64)
    return {"n": int(a.size), "p10": round(float(np.percentile(a, 10)), 3),
            "median": round(float(np.median(a)), 3), "p90": round(float(np.percentile(a, 90)), 3)}


def sweep(op_name: str, grid: list[dict], anchors: list[dict], asr_points: set[int],
          asr_model: str) -> list[dict]:
    """Return per grid point the similarity summary (and CER increase on `asr_points`)."""
    op = from_dict({"name": op_name})
    rows = []
    for gi, params in enumerate(grid):
        sims, dcer = [], []
        for a in anchors:
            p = op.sample_params(np.random.default_rng(0), None) | params
            y = op.apply(a["audio"], a["sr"], **p)
            sims.append(speaker.cosine(speaker.embed(a["audio"], a["sr"]), speaker.embed(y, a["sr"])))
            if gi in asr_points:
                ref = content.cer(a["text"], content.transcribe(a["audio"], a["sr"], asr_model))
                dcer.append(content.cer(a["text"], content.transcribe(y, a["sr"], asr_model)) - ref)
        row = {"op": op_name, **params, **_summary(sims)}
        if dcer:
            row["cer_increase_median"] = round(float(np.median(dcer)), 3)
            row["cer_increase_p90"] = round(float(np.percentile(dcer, 90)), 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def corners(grid: list[dict]) -> set[int]:
    """Return the indices of the grid points at the extremes of every axis (they also get ASR)."""
    ends = {k: (min(g[k] for g in grid), max(g[k] for g in grid)) for k in grid[0]}
    return {i for i, g in enumerate(grid) if all(g[k] in ends[k] for k in g)}


def markdown(refs: dict, rows: list[dict], n: int, seconds: float) -> str:
    """Return the calibration tables as Markdown (one table per op: rows x columns of medians)."""
    out = [f"# Speaker-op calibration ({n} anchors, {seconds:.0f} s)", "",
           "Median Resemblyzer cosine of an edited clip to its unedited source (same sentence).",
           f"References on the same anchors: same voice, other sentence median {refs['same_voice']['median']}"
           f" (p10 {refs['same_voice']['p10']}); other voice median {refs['other_voice']['median']}"
           f" (p90 {refs['other_voice']['p90']}).", ""]
    axes = (("world_vc", ("f0_ratio", "alpha")), ("praat_gender", ("pitch_ratio", "formant_ratio")))
    for op, (rk, ck) in axes:
        sub = [r for r in rows if r["op"] == op]
        if not sub:
            continue
        cols = sorted({r[ck] for r in sub})
        out += [f"## {op}: rows {rk}, columns {ck}", "",
                "| " + rk + " | " + " | ".join(f"{c:g}" for c in cols) + " |",
                "|---" * (len(cols) + 1) + "|"]
        for rv in sorted({r[rk] for r in sub}):
            cells = []
            for c in cols:
                r = next((x for x in sub if x[rk] == rv and x[ck] == c), None)
                cell = "" if r is None else f"{r['median']:.2f}"
                if r is not None and "cer_increase_median" in r:
                    cell += f" (ΔCER {r['cer_increase_median']:+.2f})"
                cells.append(cell)
            out.append(f"| {rv:g} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=Path, default=Path("shards/en"))
    ap.add_argument("--anchors", type=int, default=24)
    ap.add_argument("--asr-model", default="whisper-base")
    ap.add_argument("--out", type=Path, default=Path("bench/CALIBRATION.md"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    anchors, by_speaker = load_anchors(args.shards, args.anchors)
    refs = references(anchors, by_speaker)
    print(json.dumps(refs), flush=True)
    world = [{"f0_ratio": f, "alpha": a} for f in WORLD_F0 for a in WORLD_ALPHA]
    praat = [{"pitch_ratio": p, "formant_ratio": f} for p in PRAAT_PITCH for f in PRAAT_FORMANT]
    rows = sweep("world_vc", world, anchors, corners(world), args.asr_model)
    rows += sweep("praat_gender", praat, anchors, corners(praat), args.asr_model)
    md = markdown(refs, rows, len(anchors), time.perf_counter() - t0)
    args.out.write_text(md + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"references": refs, "rows": rows}, indent=1) + "\n")
    print(md)


if __name__ == "__main__":
    main()
