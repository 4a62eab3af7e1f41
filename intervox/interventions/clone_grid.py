"""The cloned-voice grid: real reference speakers each say every sentence, through a cloning op.

The reference experiment (recipes/paper/) trains on a dense grid of 32 real people's voices x 256
sentences made by a voice-cloning model from LibriTTS test-clean references. `intervox corpus clone`
renders such a grid from any prepared manifest (the references) and any registered op:

- a content op with a `texts` field (coqui_clone: TTS cloned from the input clip) is applied to
  the speaker's reference clip with `texts` set to the cell's sentence;
- a speaker op (coqui_vc: conversion to a reference voice) is applied to the sentence rendered by
  the voice-bank `source_voice`; an op with a `reference_dir` field gets a folder holding only the
  speaker's reference clip, and its params are drawn once per speaker (`[seed, speaker index]`),
  so every sentence of a speaker has the same voice (for an op without a reference, e.g. world_vc,
  that draw *is* the voice: a cheap stand-in for a cloning model, not a clone).
Channel ops change neither factor and are refused.

Per speaker the reference is its longest clip within [min_ref_seconds, max_ref_seconds]. Sentences
come from `text_file`, else from the references' corpus itself (transcripts of min_words..max_words
words that no reference clip says), deduplicated, in seeded order. Speakers and sentences are
disjoint across splits: `speakers` x `sentences` (train), `val_speakers` x `val_sentences`
(validation). Rendering is resumable: a finished clip is never rendered twice; a clip the op fails
on goes to quarantine.jsonl; a grid whose first clips all fail (missing model files) stops.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intervox.audio import encode_flac, load_audio, resample
from intervox.config import check_range, to_plain
from intervox.corpora.manifest import Utterance, read_manifest, write_manifest
from intervox.errors import ConfigError, IntervoxError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import from_dict

CORPUS = "intervox-clone"
FAIL_FAST = 8  # this many failures before any success is a systematic problem, not bad clips


@dataclass(frozen=True)
class CloneSpec:
    """What `intervox corpus clone` renders: the op, the grid's sizes, how references and texts are chosen."""

    op: dict[str, Any] = field(default_factory=lambda: {"name": "coqui_clone"})
    speakers: int = 32
    sentences: int = 256
    val_speakers: int = 4
    val_sentences: int = 16
    source_voice: str = "espeak:en-us:m3"  # renders each sentence for a speaker op to convert
    text_file: str | None = None  # one sentence a line; default: the reference corpus's transcripts
    min_words: int = 5
    max_words: int = 20
    min_ref_seconds: float = 3.0
    max_ref_seconds: float = 15.0
    language: str | None = None  # default: the references' language
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self, "speakers", "sentences", "min_words", ge=1)
        check_range(self, "val_speakers", "val_sentences", "seed", "min_ref_seconds", ge=0)
        check_range(self, "max_words", ge=self.min_words)
        check_range(self, "max_ref_seconds", gt=self.min_ref_seconds)
        check_range(self, "sample_rate", ge=8000)
        if not isinstance(self.op, dict) or not self.op.get("name"):
            raise ConfigError(f"op: expected an op spec {{name: ..., ...}}, got {self.op!r}")


@dataclass(frozen=True)
class CloneItem:
    """One cell of the grid: who says what, from which reference clip."""

    id: str
    speaker: str
    speaker_index: int
    reference: Utterance
    sentence_index: int
    text: str
    split: str

    @property
    def content_id(self) -> str:
        return f"clone-s{self.sentence_index:04d}"


def choose_references(utts: list[Utterance], spec: CloneSpec) -> list[Utterance]:
    """Return one reference clip per speaker (its longest in the duration range), speakers in seeded order."""
    best: dict[str, Utterance] = {}
    for u in sorted(utts, key=lambda u: u.id):
        d = u.duration or 0.0
        if spec.min_ref_seconds <= d <= spec.max_ref_seconds and (u.speaker not in best
                                                                  or d > (best[u.speaker].duration or 0.0)):
            best[u.speaker] = u
    need = spec.speakers + spec.val_speakers
    if len(best) < need:
        raise ConfigError(f"clone grid: {need} speakers asked ({spec.speakers} + {spec.val_speakers} "
                          f"validation), only {len(best)} have a reference clip of {spec.min_ref_seconds}-"
                          f"{spec.max_ref_seconds} s")
    speakers = sorted(best)
    order = np.random.default_rng([spec.seed, 1]).permutation(len(speakers))
    return [best[speakers[i]] for i in order[:need]]


def choose_sentences(utts: list[Utterance], refs: list[Utterance], spec: CloneSpec) -> list[str]:
    """Return train + validation sentences: the text file's lines, else the corpus's own transcripts."""
    if spec.text_file:
        from intervox.voices import read_text_file

        pool = list(read_text_file(spec.text_file))
    else:
        said = {" ".join(r.text.lower().split()) for r in refs}
        pool = sorted({u.text.strip() for u in utts
                       if spec.min_words <= len(u.text.split()) <= spec.max_words
                       and " ".join(u.text.lower().split()) not in said})
        pool = [pool[i] for i in np.random.default_rng([spec.seed, 2]).permutation(len(pool))]
    need = spec.sentences + spec.val_sentences
    if len(pool) < need:
        where = spec.text_file or f"the reference corpus ({spec.min_words}-{spec.max_words} words)"
        raise ConfigError(f"clone grid: {need} sentences asked, {where} has {len(pool)}")
    return pool[:need]


def plan_clone(utts: list[Utterance], spec: CloneSpec) -> list[CloneItem]:
    """Return every cell of the grid: train speakers x train sentences, then validation."""
    refs = choose_references(utts, spec)
    texts = choose_sentences(utts, refs, spec)
    splits = {"train": (refs[: spec.speakers], range(spec.sentences)),
              "validation": (refs[spec.speakers:], range(spec.sentences, len(texts)))}
    items = []
    for split, (speakers, sentence_ids) in splits.items():
        for ref in speakers:
            k = refs.index(ref)
            items += [CloneItem(f"{split}-{ref.speaker}-s{j:04d}", ref.speaker, k, ref, j, texts[j], split)
                      for j in sentence_ids]
    return items


class _Renderer:
    """Applies the op to each cell; keeps reference and source audio loaded once."""

    def __init__(self, spec: CloneSpec, refs_base: Path, out_dir: Path, language: str) -> None:
        self.spec, self.refs_base, self.out_dir, self.language = spec, refs_base, out_dir, language
        self.op = from_dict(spec.op)
        if self.op.target == Factor.CHANNEL:
            raise ConfigError(f"clone grid: op {self.op.name} is a channel op; a cloning op changes the "
                              "speaker (voice conversion) or says a new text in the reference voice")
        if self.op.target == Factor.CONTENT and not hasattr(self.op, "texts"):
            raise ConfigError(f"clone grid: content op {self.op.name} has no `texts` field to say the "
                              "grid's sentences with")
        self._audio: dict[str, np.ndarray] = {}

    def _reference(self, ref: Utterance) -> np.ndarray:
        if ref.id not in self._audio:
            self._audio[ref.id] = load_audio(ref.resolve_audio(self.refs_base), self.spec.sample_rate,
                                             offset=ref.offset, duration=ref.duration)[0]
        return self._audio[ref.id]

    def _source(self, text: str) -> np.ndarray:
        if text not in self._audio:
            from intervox.voices import synthesize

            audio, sr = synthesize(text, self.spec.source_voice, self.language)
            self._audio[text] = resample(np.asarray(audio, np.float32), sr, self.spec.sample_rate)
        return self._audio[text]

    def _op_for(self, item: CloneItem) -> Intervention:
        """Return the op instance of this cell: its sentence (content op) or its reference folder."""
        if self.op.target == Factor.CONTENT:
            return from_dict({**self.spec.op, "texts": [item.text]})
        if hasattr(self.op, "reference_dir"):  # a folder per reference clip, holding only that clip
            folder = self.out_dir / "references" / item.reference.id.replace("/", "_")
            if not (folder / "reference.flac").is_file():
                folder.mkdir(parents=True, exist_ok=True)
                tmp = folder / f".reference.{os.getpid()}.tmp"
                tmp.write_bytes(encode_flac(self._reference(item.reference), self.spec.sample_rate))
                tmp.replace(folder / "reference.flac")
            return from_dict({**self.spec.op, "reference_dir": str(folder)})
        return self.op

    def render(self, item: CloneItem) -> tuple[np.ndarray, dict]:
        """Return (audio, params) of one cell; IntervoxError when the op fails on it."""
        op = self._op_for(item)
        if op.target == Factor.CONTENT:
            audio = self._reference(item.reference)
            seed = [self.spec.seed, item.speaker_index, item.sentence_index]
        else:  # the voice is drawn once per speaker: the same params for every sentence
            audio, seed = self._source(item.text), [self.spec.seed, item.speaker_index]
        probe = Utterance(id=item.reference.id, audio=item.reference.audio, speaker=item.reference.speaker,
                          text=item.reference.text if op.target == Factor.CONTENT else item.text,
                          language=self.language, corpus=item.reference.corpus)
        params = op.sample_params(np.random.default_rng(seed), probe)
        out = op.apply(audio, self.spec.sample_rate, **params)
        return Intervention.check_output(op.name, out), params


def clone_grid(references: str | Path, spec: CloneSpec, out_dir: str | Path) -> Path:
    """Render `spec`'s grid from the reference manifest into `out_dir` (resumable); return its manifest."""
    references, out_dir = Path(references), Path(out_dir)
    utts = read_manifest(references)
    items = plan_clone(utts, spec)
    language = spec.language or items[0].reference.language
    renderer = _Renderer(spec, references.parent, out_dir, language)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    written, quarantine = [], []
    for item in items:
        result = _render_cell(renderer, item, out_dir)
        if isinstance(result, str):
            quarantine.append({"item": item.id, "speaker": item.speaker, "text": item.text, "reason": result,
                               "stage": "clone"})
            if not written and len(quarantine) >= min(FAIL_FAST, len(items)):
                raise IntervoxError(f"clone grid: the first {len(quarantine)} clips all failed; "
                                    f"the first: {quarantine[0]['reason']}")
            continue
        dur, params = result
        ref = item.reference
        written.append(Utterance(
            id=item.id, audio=f"audio/{item.id}.flac", speaker=item.speaker, text=item.text,
            language=language, corpus=CORPUS, sample_rate=spec.sample_rate, duration=round(dur, 4),
            gender=ref.gender, content_id=item.content_id, split=item.split,
            extra={"reference": ref.id, "op": {"name": spec.op["name"], "params": to_plain(params)}}))
    return _finish(out_dir, spec, items, written, quarantine)


def cell_recipe(spec: CloneSpec, item: CloneItem) -> dict:
    """Return everything a cell's audio depends on: a finished clip is reused only for the same recipe."""
    return {"op": spec.op, "source_voice": spec.source_voice, "reference": item.reference.id,
            "text": item.text, "sample_rate": spec.sample_rate, "seed": spec.seed}


def _render_cell(renderer: _Renderer, item: CloneItem, out_dir: Path) -> tuple[float, dict] | str:
    """Return (duration, params) of the cell's clip (rendered unless already finished), or why it failed."""
    path = out_dir / "audio" / f"{item.id}.flac"
    meta = path.with_suffix(".json")
    recipe = to_plain(cell_recipe(renderer.spec, item))
    if path.is_file() and meta.is_file():  # resumable: written last, so a finished clip has both
        done = json.loads(meta.read_text(encoding="utf-8"))
        if done.get("recipe") == recipe:  # another op, voice or text: render it again
            return done["duration"], done["params"]
    try:
        audio, params = renderer.render(item)
    except IntervoxError as exc:
        return f"{item.id}: {type(exc).__name__}: {exc}"
    tmp = path.with_name(f".{item.id}.{os.getpid()}.tmp")
    tmp.write_bytes(encode_flac(audio, renderer.spec.sample_rate))
    tmp.replace(path)
    seconds = len(audio) / renderer.spec.sample_rate
    meta.write_text(json.dumps({"duration": seconds, "params": to_plain(params), "recipe": recipe}),
                    encoding="utf-8")
    return seconds, params


def _finish(out_dir: Path, spec: CloneSpec, items: list[CloneItem], written: list[Utterance],
            quarantine: list[dict]) -> Path:
    """Write manifest.jsonl, quarantine.jsonl and clone.json (spec, speakers, sentences, counts).

    Clips of an earlier, other grid in the folder are removed: the folder holds one grid."""
    planned = {it.id for it in items}
    for stale in (out_dir / "audio").glob("*"):
        if stale.is_file() and stale.stem not in planned:
            stale.unlink()
    manifest = out_dir / "manifest.jsonl"
    write_manifest(written, manifest)
    with (out_dir / "quarantine.jsonl").open("w", encoding="utf-8") as f:
        for q in quarantine:
            f.write(json.dumps(q, ensure_ascii=False) + "\n")
    splits: dict[str, dict] = {}
    for it in items:
        s = splits.setdefault(it.split, {"speakers": {}, "sentences": {}})
        s["speakers"][it.speaker] = it.reference.id
        s["sentences"][it.content_id] = it.text
    summary = {"spec": to_plain(spec), "splits": splits,
               "counts": {"planned": len(items), "written": len(written), "quarantined": len(quarantine)}}
    (out_dir / "clone.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
    return manifest
