"""The dense synthetic grid: every speaker says every sentence of its split, rendered offline.

Splits (the reference design: speakers and sentences held out together; no speaker_key, nor the
base voice of a pseudo-speaker, is on two sides):
- train:      train speakers x train sentences. Voices of the *train engines* only: espeak-ng and
              flite (plus pseudo-speakers derived from them when a split asks for more speakers
              than the language has base voices).
- validation: held-out base voices of the train engines x held-out sentences, both genders when the
              language has both (at least a third of the held-out voices of each gender).
- test_ood:   voices of engines never seen in training x held-out sentences. English: festival,
              piper, hibari, kokoro (and mbrola, pico when installed); flite kal16 / slt are the same
              people as festival kal / slt, so flite trains on awb and rms only. A language only
              espeak-ng speaks (bn): the Klatt-synthesiser variant family, which never enters train
              or validation.
- keywords:   the 10 Speech Commands words plus 6 auxiliary (`_unknown_`) words, spoken by held-out
              voices; repeat r > 0 uses a further pseudo-speaker of the same base. `keyword_voices:
              all` takes every held-out base voice and every test_ood voice: distinct people of
              both genders, engines training never saw among them, so the probe is not saturated.

`train_speakers: all` and `ood_voices: all` take every distinct voice (one per speaker_key) the
catalog has for the language; a number takes that many base voices, padded with pseudo-speakers
when the pool is smaller.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from intervox.errors import ConfigError, IntervoxError
from intervox.voices.catalog import ESPEAK_SAME_VARIANT, get_voice, list_voices
from intervox.voices.pseudo import derive_pseudo_speakers

CORPUS = "intervox-grid"
TRAIN_ENGINES = ("espeak", "flite")
ALL = "all"
KEYWORD_AUX = ("bed", "bird", "cat", "dog", "house", "tree")
# Variants that do not make a usable base voice: whispered (no F0, so no pitch/formant speaker ops)
# or noise.
ESPEAK_SKIP = frozenset({"whisper", "whisperf", "Demonic", "Storm"})
# Accents used for English espeak voices, alternated by variant (one accent per variant: the
# accents of one variant are one speaker_key).
ESPEAK_ACCENTS = {"en": ("en-us", "en-gb")}


@dataclass(frozen=True)
class GridSpec:
    """Sizes and seed of a synthetic grid; the same spec always plans the same grid."""

    lang: str = "en"
    train_speakers: int | Literal["all"] = 16
    train_sentences: int = 32
    # None: dense, every train voice says every train sentence. A number n: the train sentences
    # split into train_sentences / n groups, voice i says group i mod groups only, so each voice
    # says n sentences and each sentence is said by ~voices / groups voices (dense sub-grids).
    sentences_per_voice: int | None = None
    val_speakers: int = 4
    val_sentences: int = 8
    ood_voices: int | Literal["all"] = 4
    keyword_voices: int | Literal["all"] = 4
    keyword_repeats: int = 1
    sample_rate: int = 16000
    seed: int = 0
    text_file: str | None = None


@dataclass(frozen=True)
class GridItem:
    """One planned utterance of the grid."""

    id: str
    voice: str
    text: str
    content_id: str
    split: str


@dataclass(frozen=True)
class GridPlan:
    """Every item of a grid, with the speaker and sentence lists of each split."""

    spec: GridSpec
    items: tuple[GridItem, ...]
    speakers: dict[str, list[str]]
    sentences: dict[str, dict[str, str]]
    ood_rule: str


def _round_robin(groups: list[list[str]]) -> list[str]:
    """Return the items of `groups` interleaved: first of each group, then second of each, ..."""
    longest = max((len(g) for g in groups), default=0)
    return [g[i] for i in range(longest) for g in groups if i < len(g)]


def _one_per_key(voices: list) -> list[str]:  # noqa: ANN001 - VoiceInfo list
    """Return one voice id per speaker_key (the first by id), in key order."""
    by_key: dict[str, str] = {}
    for v in sorted(voices, key=lambda v: v.id):
        by_key.setdefault(v.speaker_key, v.id)
    return [by_key[k] for k in sorted(by_key)]


def _by_engine(ids: list[str], rng: np.random.Generator, last: str | None = None) -> list[str]:
    """Return `ids` shuffled by `rng`, then engines round robin (`last`, if given, last in each round)."""
    ids = [ids[i] for i in rng.permutation(len(ids))]
    engines = sorted({i.split(":")[0] for i in ids}, key=lambda e: (e == last, e))
    return _round_robin([[i for i in ids if i.split(":")[0] == e] for e in engines])


def _base_pools(lang: str, seed: int) -> tuple[list[str], list[str], str]:
    """Return (in-domain base voices, OOD base voices, rule), one voice per speaker_key, seeded order."""
    import intervox.voices.engines.espeak as espeak

    voices = list_voices(lang)
    rng = np.random.default_rng([seed, 4242])
    klatt = espeak.klatt_variants() if any(v.engine == "espeak" for v in voices) else frozenset()
    accents = (
        ESPEAK_ACCENTS.get(lang) or tuple(dict.fromkeys(v.name for v in voices if v.engine == "espeak"))[:1]
    )
    other_engines = sorted({v.engine for v in voices} - set(TRAIN_ENGINES))
    if other_engines:
        ood = [v for v in voices if v.engine in other_engines]
        rule = f"held-out engines {', '.join(other_engines)}; train engines {', '.join(TRAIN_ENGINES)}"
        held_family = frozenset()  # every espeak-ng variant, Klatt ones included, may train
    else:
        ood = [v for v in voices if v.engine == "espeak" and v.name == accents[0] and v.variant in klatt]
        rule = "held-out espeak-ng Klatt-synthesiser variant family; train on the other espeak-ng variants"
        held_family = klatt
    ood_keys = {v.speaker_key for v in ood}
    candidates = []
    for v in voices:
        if v.engine not in TRAIN_ENGINES or v.speaker_key in ood_keys:
            continue  # a person the OOD engines also voice cannot be in train
        if v.engine == "espeak":
            if v.variant in held_family or v.variant in ESPEAK_SKIP or v.name not in accents:
                continue
            variant = v.variant or "default"
            if ESPEAK_SAME_VARIANT.get(variant, variant) != variant:
                continue  # one representative per measured speaker group
            # Alternate accents across variants so each variant appears in one accent only.
            if v.name != accents[sum(map(ord, variant)) % len(accents)]:
                continue
        candidates.append(v)
    if not candidates:
        raise ConfigError(
            f"grid {lang}: no voices of the train engines ({', '.join(TRAIN_ENGINES)}) speak {lang}"
        )
    # Engines round robin (flite, espeak, flite, ...): a small grid still trains on every train engine,
    # and the held-out bases, taken from the end, come from the engine with the most voices.
    pool = _by_engine(_one_per_key(candidates), rng, last="espeak")
    ood_pool = _by_engine(_one_per_key(ood), np.random.default_rng([seed, 4343]))
    return pool, ood_pool, rule


def _speakers(bases: list[str], n: int | str, seed: int) -> list[str]:
    """Return `n` speakers: base voices first, pseudo-speakers derived from them past the pool's size."""
    if n == ALL:
        return list(bases)
    if n <= 0:
        return []
    plain = bases[:n]
    return plain + derive_pseudo_speakers(plain, n - len(plain), seed)


def _hold_out(pool: list[str], n: int) -> tuple[list[str], list[str]]:
    """Return (held-out, rest): `n` bases from the pool's end, at least a third of each gender present.

    The held-out list interleaves the genders, so its first k voices (the keyword voices) mix them too.
    """
    gender = {p: get_voice(p).gender for p in pool}
    tail = list(reversed(pool))
    by_gender = {g: [p for p in tail if gender[p] == g] for g in ("f", "m")}
    quota = max(1, n // 3) if n >= 2 else 0
    held = [p for g in ("f", "m") for p in by_gender[g][:quota]]
    held += [p for p in tail if p not in held][: max(0, n - len(held))]
    groups = [[p for p in tail if p in held and gender[p] == g] for g in ("f", "m")]
    groups.append([p for p in tail if p in held and gender[p] not in ("f", "m")])
    held = _round_robin(groups)[:n]
    return held, [p for p in pool if p not in held]


def _sentences(spec: GridSpec) -> list[str]:
    from intervox.voices.sentences import generate_sentences, read_text_file

    need = spec.train_sentences + spec.val_sentences
    if spec.text_file:
        texts = read_text_file(spec.text_file)
        if len(texts) < need:
            raise ConfigError(
                f"{spec.text_file}: {len(texts)} sentences, grid needs {need} "
                f"({spec.train_sentences} train + {spec.val_sentences} held-out)"
            )
        return texts[:need]
    return generate_sentences(spec.lang, need, spec.seed)


def _sentence_group(sents: dict[str, str], voice_index: int, per_voice: int | None) -> dict[str, str]:
    """Return the train sentences voice `voice_index` says: all of them, or its group's `per_voice`."""
    if per_voice is None:
        return sents
    groups = len(sents) // per_voice
    start = (voice_index % groups) * per_voice
    return dict(list(sents.items())[start:start + per_voice])


def sentence_groups_problem(train_sentences: int, per_voice: int | None) -> str | None:
    """Return why `per_voice` cannot split `train_sentences` into whole groups, or None if it can."""
    if per_voice is None or (per_voice >= 1 and train_sentences % per_voice == 0):
        return None
    return (f"must divide train_sentences ({train_sentences}); got {per_voice} "
            "(each voice says one whole group)")


def _check_counts(spec: GridSpec) -> None:
    problem = sentence_groups_problem(spec.train_sentences, spec.sentences_per_voice)
    if problem:
        raise ConfigError(f"grid {spec.lang}: sentences_per_voice {problem}")
    for name in ("train_speakers", "ood_voices", "keyword_voices"):
        value = getattr(spec, name)
        if isinstance(value, str) and value != ALL:
            raise ConfigError(f"grid {spec.lang}: {name} must be a number or {ALL!r}, got {value!r}")


def _split_speakers(spec: GridSpec) -> tuple[dict[str, list[str]], list[str], str]:
    """Return ({train, validation, test_ood: speakers}, keyword base voices, OOD rule)."""
    _check_counts(spec)
    pool, ood_pool, rule = _base_pools(spec.lang, spec.seed)
    if len(pool) < 2:
        raise ConfigError(f"grid {spec.lang}: need at least 2 base voices to hold speakers out, have {pool}")
    n_kw = 0 if spec.keyword_voices == ALL else spec.keyword_voices
    n_held = max(1, min(len(pool) // 3, max(spec.val_speakers, n_kw)))
    held_bases, train_bases = _hold_out(pool, n_held)
    if spec.ood_voices != ALL and spec.ood_voices > 0 and not ood_pool:
        raise ConfigError(f"grid {spec.lang}: no out-of-distribution voices ({rule})")
    splits = {
        "train": _speakers(train_bases, spec.train_speakers, spec.seed * 1000 + 1),
        "validation": _speakers(held_bases, spec.val_speakers, spec.seed * 1000 + 2),
        "test_ood": _speakers(ood_pool, spec.ood_voices, spec.seed * 1000 + 4) if ood_pool else [],
    }
    if spec.keyword_voices == ALL:
        return splits, [*held_bases, *ood_pool], rule
    return splits, _speakers(held_bases, spec.keyword_voices, spec.seed * 1000 + 3), rule


def plan_grid(spec: GridSpec) -> GridPlan:
    """Return the deterministic plan of `spec`: voices per split, sentences per split, items."""
    from intervox.voices.sentences import keywords

    speakers, kw_voices, rule = _split_speakers(spec)
    texts = _sentences(spec)
    cids = [f"{spec.lang}-s{i:04d}" for i in range(len(texts))]
    train_s = dict(zip(cids[: spec.train_sentences], texts[: spec.train_sentences], strict=False))
    held_s = dict(zip(cids[spec.train_sentences :], texts[spec.train_sentences :], strict=False))
    words = {
        **keywords(spec.lang, "commands"),
        **{k: keywords(spec.lang, "auxiliary")[k] for k in KEYWORD_AUX},
    }
    kw_s = {f"kw-{k}": w for k, w in words.items()}
    sentences = {"train": train_s, "validation": held_s, "test_ood": held_s}

    items: list[GridItem] = []
    for split, sents in sentences.items():
        for vi, voice in enumerate(speakers[split]):
            said = _sentence_group(sents, vi, spec.sentences_per_voice) if split == "train" else sents
            items += [
                GridItem(f"{split}-v{vi:03d}-{cid}", voice, text, cid, split) for cid, text in said.items()
            ]
    kw_speakers = []
    for vi, voice in enumerate(kw_voices):
        root = voice.split("~")[0]
        for r in range(spec.keyword_repeats):
            v = voice if r == 0 else derive_pseudo_speakers([root], r, spec.seed * 1000 + 100 + vi)[r - 1]
            kw_speakers.append(v)
            items += [
                GridItem(f"keywords-v{vi:03d}-r{r}-{cid}", v, text, cid, "keywords")
                for cid, text in kw_s.items()
            ]
    return GridPlan(
        spec,
        tuple(items),
        {**speakers, "keywords": list(dict.fromkeys(kw_speakers))},
        {**sentences, "keywords": kw_s},
        rule,
    )


def _render_one(item: GridItem, lang: str, sample_rate: int, audio_dir: str) -> tuple[str, float | None, str]:
    """Render one item to `<audio_dir>/<id>.flac`; return (id, duration or None, failure reason)."""
    import soundfile as sf

    from intervox.audio import encode_flac, resample
    from intervox.voices import synthesize

    path = Path(audio_dir) / f"{item.id}.flac"
    if path.is_file():  # resumable: a finished flac is never rendered twice
        try:
            return item.id, sf.info(str(path)).duration, ""
        except (sf.LibsndfileError, RuntimeError):
            path.unlink()
    try:
        audio, sr = synthesize(item.text, item.voice, lang)
        audio = resample(audio, sr, sample_rate)
    except IntervoxError as exc:
        return item.id, None, str(exc)
    except Exception as exc:  # an engine bug must become a quarantine line, not a lost grid
        return item.id, None, f"{item.voice}: unexpected {type(exc).__name__} on {item.text!r}: {exc}"
    tmp = path.with_name(f".{item.id}.{os.getpid()}.tmp")
    tmp.write_bytes(encode_flac(audio, sample_rate))
    tmp.replace(path)
    return item.id, len(audio) / sample_rate, ""


def _worker_init() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def render_plan(plan: GridPlan, out_dir: Path, workers: int = 2) -> Path:
    """Render `plan` into `out_dir` (manifest, quarantine, grid.json, audio/); return the manifest path."""
    from intervox.corpora.manifest import Utterance, write_manifest

    out_dir = Path(out_dir)
    audio_dir = out_dir / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    spec = plan.spec
    # Group items by engine so that each worker loads a model (piper) once.
    order = sorted(plan.items, key=lambda it: (it.voice.split(":")[0], it.voice))
    args = (spec.lang, spec.sample_rate, str(audio_dir))
    if workers <= 1:
        results = [_render_one(it, *args) for it in order]
    else:
        ctx = multiprocessing.get_context("spawn")  # no inherited engine threads or locks
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
            futures = [pool.submit(_render_one, it, *args) for it in order]
            results = [f.result() for f in futures]
    done = {item_id: (dur, reason) for item_id, dur, reason in results}

    genders: dict[str, str | None] = {}
    utts, quarantine = [], []
    for it in plan.items:
        dur, reason = done[it.id]
        if dur is None:
            quarantine.append(
                {"item": it.id, "voice": it.voice, "text": it.text, "reason": reason, "stage": "synth"}
            )
            continue
        if it.voice not in genders:
            genders[it.voice] = get_voice(it.voice).gender
        utts.append(
            Utterance(
                id=it.id,
                audio=f"audio/{it.id}.flac",
                speaker=it.voice,
                text=it.text,
                language=spec.lang,
                corpus=CORPUS,
                sample_rate=spec.sample_rate,
                duration=round(dur, 4),
                gender=genders[it.voice],
                content_id=it.content_id,
                split=it.split,
            )
        )
    manifest = out_dir / "manifest.jsonl"
    write_manifest(utts, manifest)
    with (out_dir / "quarantine.jsonl").open("w", encoding="utf-8") as f:
        for q in quarantine:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    grid = {
        "spec": dataclasses.asdict(spec),
        "ood_rule": plan.ood_rule,
        "speakers": plan.speakers,
        "sentences": plan.sentences,
        "counts": {"planned": len(plan.items), "written": len(utts), "quarantined": len(quarantine)},
    }
    (out_dir / "grid.json").write_text(json.dumps(grid, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest


def synth_grid(spec: GridSpec, out_dir: Path, workers: int = 2) -> Path:
    """Plan and render the grid of `spec` into `out_dir` (resumable); return the manifest path."""
    return render_plan(plan_grid(spec), out_dir, workers)
