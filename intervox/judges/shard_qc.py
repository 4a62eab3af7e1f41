"""After-the-fact QC of an existing audio shard set: qc.jsonl, qc_summary.json, qc_validity.md.

Three passes keep memory small: (1) read every clip's JSON to pick the sample and the clips
it needs (sources, same-speaker references); (2) decode only those clips' audio once each and
keep their measures (transcript, 256-d embedding, F0 summary); (3) compare each scored clip
with its source's measures and decide.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox.config import to_plain
from intervox.errors import IntervoxError, ShardError
from intervox.judges.qc import (
    ClipMeasures,
    QCConfig,
    compare,
    decide,
    is_selected,
    measure_clip,
    speaker_embedding,
)
from intervox.judges.validity import validity_markdown, validity_table
from intervox.shards.read import decode_sample, iter_tar_samples, list_shards
from intervox.shards.write import read_sidecar

log = logging.getLogger(__name__)


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _read_metas(shards: list[Path]) -> dict[str, dict]:
    """Return key -> clip JSON (plus "__shard__") for every clip of the shard set, in shard order."""
    metas: dict[str, dict] = {}
    for shard in shards:
        for sample in iter_tar_samples(shard):
            if "json" not in sample:
                raise ShardError(f"{shard}: sample {sample['__key__']!r} has no .json member")
            try:
                meta = json.loads(sample["json"])
            except ValueError as exc:
                raise ShardError(f"{shard}: {sample['__key__']}.json is not valid JSON ({exc})") from exc
            meta["__shard__"] = shard.name
            metas[sample["__key__"]] = meta
    return metas


def _pick_refs(
    key: str, meta: dict, by_speaker: dict[str, list[str]], metas: dict, cfg: QCConfig
) -> list[str]:
    """Return up to `max_refs` other clips of this clip's speaker label with different content (seeded)."""
    cands = [k for k in by_speaker.get(meta.get("speaker"), []) if k != key
             and metas[k].get("content") != meta.get("content")]
    cands.sort(key=lambda k: hashlib.blake2b(f"{cfg.seed}:{key}:{k}".encode(), digest_size=8).digest())
    return cands[: cfg.max_refs]


def _audio_of(sample: dict) -> tuple[np.ndarray, int]:
    for ext in ("flac", "wav"):
        if ext in sample:
            return sample[ext]
    raise ShardError(f"{sample.get('__shard__')}: sample {sample.get('__key__')!r} has no flac/wav member")


def _plan_hash(shards: list[Path]) -> str | None:
    """Return the plan hash all shards' sidecars agree on, or None (no sidecars, or mixed plans)."""
    hashes = {info.plan_hash if info else None for info in map(read_sidecar, shards)}
    return hashes.pop() if len(hashes) == 1 else None


@dataclass(frozen=True)
class _Picked:
    """The clips pass 1 picked: those to score, their sources and references, and which to decode how."""

    selected: list[str]
    sources: dict[str, str | None]
    refs: dict[str, list[str]]
    full: set[str]
    embed_only: set[str]


@dataclass(frozen=True)
class _Measured:
    """What pass 2 kept: full measures, speaker embeddings, and why a clip could not be measured."""

    measures: dict[str, ClipMeasures]
    embeddings: dict[str, np.ndarray]
    errors: dict[str, str]


def score_shard_dir(shard_dir: Path, cfg: QCConfig, out: Path | None = None) -> dict:
    """Score a shard set's clips against their sources; write qc.jsonl, qc_summary.json, qc_validity.md.

    Returns the summary dict (counts, acceptance, per-op validity table, seconds per judge).
    Clips whose audio or source cannot be scored get a rejected record whose reason says why.
    """
    shard_dir = Path(shard_dir)
    out = Path(out) if out is not None else shard_dir
    shards = list_shards(shard_dir)
    if not shards:
        raise ShardError(f"{shard_dir}: no *.tar shards to score")
    t_start = time.perf_counter()
    metas = _read_metas(shards)
    picked = _pick_clips(metas, cfg)
    got = _measure_clips(shards, picked, cfg)
    records = _score_records(metas, picked, got, shard_dir, cfg)
    summary = _summary(shard_dir, shards, metas, records, got.measures, cfg, t_start)
    _write_reports(out, records, summary)
    return summary


def _pick_clips(metas: dict[str, dict], cfg: QCConfig) -> _Picked:
    """Return the clips to score and those their comparisons need (sources measured, references embedded)."""
    by_speaker: dict[str, list[str]] = {}
    for k, m in metas.items():
        by_speaker.setdefault(m.get("speaker"), []).append(k)
    selected = [k for k in metas if is_selected(k, cfg)]
    sources = {k: metas[k].get("source_key") for k in selected if metas[k].get("op")}
    refs = {k: _pick_refs(k, metas[k], by_speaker, metas, cfg) for k in selected if metas[k].get("op")}
    full = set(selected) | {s for s in sources.values() if s in metas}
    embed_only = {r for rs in refs.values() for r in rs} - full
    log.info("qc: %d clips, %d selected, %d measured, %d reference-only", len(metas), len(selected),
             len(full), len(embed_only))
    return _Picked(selected, sources, refs, full, embed_only)


def _measure_clips(shards: list[Path], picked: _Picked, cfg: QCConfig) -> _Measured:
    """Decode each clip that `picked` needs once, in shard order; keep its measures or its error."""
    got = _Measured({}, {}, {})
    for shard in shards:
        for raw in iter_tar_samples(shard):
            key = raw["__key__"]
            if key not in picked.full and key not in picked.embed_only:
                continue
            try:
                sample = decode_sample({k: v for k, v in raw.items() if k in ("__key__", "__shard__", "json",
                                                                             "flac", "wav")})
                audio, sr = _audio_of(sample)
                if key in picked.full:
                    m = sample["json"]
                    got.measures[key] = measure_clip(audio, sr, m.get("text"), cfg, m.get("language") or "en")
                    got.embeddings[key] = got.measures[key].embedding
                else:
                    got.embeddings[key] = speaker_embedding(audio, sr, cfg)
            except IntervoxError as exc:
                got.errors[key] = str(exc)
    return got


def _score_records(
    metas: dict[str, dict], picked: _Picked, got: _Measured, shard_dir: Path, cfg: QCConfig
) -> list[dict]:
    """Return one record per selected clip: its scores against its source and the decision, or why not."""
    records = []
    for key in picked.selected:
        meta = metas[key]
        op = meta.get("op") or None
        rec = {"key": key, "shard": meta["__shard__"], "op": op.get("name") if op else None,
               "target": op.get("target") if op else None, "speaker": meta.get("speaker"),
               "source_key": meta.get("source_key")}
        src_key = picked.sources.get(key)
        if key in got.errors:
            rec.update(accepted=False, reason=f"not scorable: {got.errors[key]}", scores=None)
        elif op and src_key not in got.measures:
            why = (got.errors.get(src_key) if src_key in got.errors
                   else f"source clip {src_key!r} not in {shard_dir}")
            rec.update(accepted=False, reason=f"not scorable: {why}", scores=None)
        else:
            ref_embs = [got.embeddings[r] for r in picked.refs.get(key, []) if r in got.embeddings]
            scores = compare(got.measures[key], got.measures[src_key] if op else None, ref_embs,
                             op.get("params") if op else None)
            accepted, reason = decide(scores, rec["target"], cfg)
            rec.update(accepted=accepted, reason=reason, scores=scores.to_dict())
        records.append(rec)
    return records


def _summary(
    shard_dir: Path, shards: list[Path], metas: dict[str, dict], records: list[dict],
    measures: dict[str, ClipMeasures], cfg: QCConfig, t_start: float,
) -> dict:
    """Return the QC summary: counts, acceptance, the per-op validity table and the judges' seconds."""
    table = validity_table(records, cfg)
    secs = {j: [m.seconds[j] for m in measures.values() if j in m.seconds]
            for j in ("asr", "speaker", "pitch")}
    return {
        "shard_dir": str(shard_dir),
        "plan_hash": _plan_hash(shards),  # lets the dataset card tell a stale summary from a current one
        "n_clips": len(metas),
        "n_scored": len(records),
        "n_accepted": sum(r["accepted"] for r in records),
        "n_rejected": sum(not r["accepted"] for r in records),
        "n_unscorable": sum(r["scores"] is None for r in records),
        "config": to_plain(cfg),
        "seconds_per_clip": {j: round(float(np.median(v)), 4) for j, v in secs.items() if v},
        "seconds_total": round(time.perf_counter() - t_start, 2),
        "validity": table,
    }


def _write_reports(out: Path, records: list[dict], summary: dict) -> None:
    """Write qc.jsonl, qc_summary.json and qc_validity.md into `out`, each replaced whole."""
    out.mkdir(parents=True, exist_ok=True)
    _write_text(out / "qc.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    _write_text(out / "qc_summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    _write_text(out / "qc_validity.md",
                "# Intervention validity\n\n" + validity_markdown(summary["validity"]))
