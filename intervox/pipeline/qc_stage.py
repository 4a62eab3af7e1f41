"""The optional QC stage of a shard task: judge each rendered clip against its anchor, keep or reject.

Runs after every clip of a shard is rendered (a shard holds whole blocks, so each clip's
anchor and its same-speaker references are at hand). A selected clip (`is_selected`) is
scored by `judge_clip` against the unedited anchor audio, with up to `max_refs` clips of
the same speaker label and another content from its block, and accepted or rejected by
`decide`. Scores are rounded to 4 decimals before they reach the clip JSON or the stats:
the judges are deterministic on CPU, and rounding also hides last-bit float differences
between thread counts, so QC keeps shards byte-reproducible.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from intervox.corpora.manifest import Utterance
from intervox.errors import IntervoxError
from intervox.judges.qc import QCConfig, decide, is_selected, judge_clip
from intervox.pipeline.plan import PlanItem

log = logging.getLogger(__name__)

DECIMALS = 4
# Scores that feed the validity table (qc records in the shard stats); the clip JSON keeps all.
_TABLE_SCORES = ("cer", "wer", "source_cer", "cer_increase", "wer_increase", "speaker_similarity",
                 "own_speaker_similarity", "n_refs", "pitch_ratio", "requested_pitch_ratio")


@dataclass(frozen=True)
class Verdict:
    """The QC outcome of one clip: accepted or not, why, its JSON "qc" field and its table record."""

    key: str
    accepted: bool
    reason: str | None  # the `decide` reason (or "not scorable: ...") when rejected
    clip_qc: dict  # goes into the clip JSON as "qc"
    record: dict  # {"key", "op", "target", "accepted", "reason", "scores"} for validity_table


def rounded(obj: object) -> object:
    """Return `obj` with every float rounded to 4 decimals (NaN/inf become None), recursively."""
    if isinstance(obj, float):
        return round(obj, DECIMALS) if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: rounded(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [rounded(v) for v in obj]
    return obj


def _refs(item: PlanItem, peers: Sequence[PlanItem], cfg: QCConfig) -> list[str]:
    """Return up to `max_refs` keys of block peers with this clip's speaker label and another content."""
    cands = [p.key for p in peers if p.key != item.key and p.speaker == item.speaker
             and p.content != item.content]
    # seeded order, the same rule as the after-the-fact scorer (judges/shard_qc.py)
    cands.sort(key=lambda k: hashlib.blake2b(f"{cfg.seed}:{item.key}:{k}".encode(), digest_size=8).digest())
    return cands[: cfg.max_refs]


def judge_rendered(
    clips: Sequence[tuple[PlanItem, np.ndarray, int]],
    anchors: Mapping[str, tuple[np.ndarray, int]],
    utterances: Mapping[str, Utterance],
    cfg: QCConfig,
) -> list[Verdict]:
    """Return the verdicts of the selected clips among `clips` (item, rendered audio, rate), in order.

    `anchors` maps an utterance id to its loaded (unedited) audio: the source of every op copy.
    An op copy the judges cannot score (e.g. no voiced audio left) is rejected as "not scorable";
    an anchor that cannot be scored is kept (QC judges interventions, not the source corpus).
    """
    t0 = time.perf_counter()
    audio_of = {item.key: (audio, sr) for item, audio, sr in clips}
    peers: dict[int, list[PlanItem]] = defaultdict(list)
    for item, _, _ in clips:
        peers[item.block].append(item)
    verdicts = []
    for item, audio, sr in clips:
        if not is_selected(item.key, cfg):
            continue
        utt = utterances[item.anchor]
        op = item.op
        target = op["target"] if op else None
        src = anchors[item.anchor][0] if op else None
        refs = [audio_of[k][0] for k in _refs(item, peers[item.block], cfg)]
        try:
            scores = judge_clip(audio, sr, item.text, src, utt.text, target, cfg, refs,
                                language=utt.language or "en", op_params=op["params"] if op else None)
        except IntervoxError as exc:
            reason = f"not scorable: {exc}"
            accepted = op is None
            verdicts.append(Verdict(item.key, accepted, None if accepted else reason,
                                    {"accepted": accepted, "error": reason, "asr_model": cfg.asr_model},
                                    _record(item, accepted, None if accepted else reason, None)))
            continue
        accepted, reason = decide(scores, target, cfg)
        values = rounded({k: v for k, v in scores.to_dict().items() if k != "seconds"})  # timings vary
        clip_qc = {"accepted": accepted, "reason": reason, "asr_model": cfg.asr_model, **values}
        verdicts.append(Verdict(item.key, accepted, reason, clip_qc,
                                _record(item, accepted, reason, {k: values[k] for k in _TABLE_SCORES})))
    log.debug("qc: %d of %d clips judged in %.1f s", len(verdicts), len(clips), time.perf_counter() - t0)
    return verdicts


def _record(item: PlanItem, accepted: bool, reason: str | None, scores: dict | None) -> dict:
    op = item.op or {}
    return {"key": item.key, "op": op.get("name"), "target": op.get("target"), "accepted": accepted,
            "reason": reason, "scores": scores}
