"""Bench inputs made once per run: espeak-ng speech, a source manifest, audio shards, loose files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

from intervox.corpora.manifest import Utterance, write_manifest

# Harvard sentences (public domain): 2-4 s each when spoken by espeak-ng.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
)
# espeak-ng variants (voice-bank ids "espeak:en-us:<variant>"), with their gender
VOICES = (
    ("m1", "m"),
    ("f2", "f"),
    ("m3", "m"),
    ("f4", "f"),
    ("m5", "m"),
    ("f1", "f"),
    ("m7", "m"),
    ("f3", "f"),
)


def espeak(text: str, variant: str, path: Path) -> Path:
    """Render `text` with espeak-ng (en-us + `variant`) into the WAV `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["espeak-ng", "-v", f"en-us+{variant}", "-w", str(path), text], check=True, capture_output=True
    )
    return path


def render_grid(out: Path, speakers: int, sentences: int) -> list[Utterance]:
    """Render a dense `speakers` x `sentences` espeak-ng grid (cached) and return its utterances."""
    if speakers > len(VOICES) or sentences > len(SENTENCES):
        raise ValueError(f"at most {len(VOICES)} voices x {len(SENTENCES)} sentences")
    utts = []
    for variant, gender in VOICES[:speakers]:
        for j, text in enumerate(SENTENCES[:sentences]):
            wav = out / "audio" / f"{variant}-s{j:02d}.wav"
            if not wav.is_file():
                espeak(text, variant, wav)
            utts.append(
                Utterance(
                    id=f"{variant}-s{j:02d}",
                    audio=str(wav.resolve()),
                    speaker=f"espeak:en-us:{variant}",
                    text=text,
                    language="en",
                    corpus="bench-espeak",
                    gender=gender,
                    content_id=f"s{j:02d}",
                    split="train",
                )
            )
    return utts


def replicate(utts: list[Utterance], copies: int) -> list[Utterance]:
    """Return `copies` x the utterances as new speakers (same audio files): a dataset `copies` x larger."""
    out = []
    for k in range(copies):
        for u in utts:
            out.append(
                Utterance(
                    id=f"{u.id}-r{k}",
                    audio=u.audio,
                    speaker=f"{u.speaker}~r{k}",
                    text=u.text,
                    language=u.language,
                    corpus=u.corpus,
                    gender=u.gender,
                    content_id=u.content_id,
                    split=u.split,
                )
            )
    return out


def write_source(out: Path, utts: list[Utterance]) -> Path:
    """Write `utts` as out/manifest.jsonl and return its path."""
    path = out / "manifest.jsonl"
    write_manifest(utts, path)
    return path


def load_clips(utts: list[Utterance], sr: int = 16000) -> list[np.ndarray]:
    """Return every utterance's audio, mono float32 at `sr`."""
    from intervox.audio import load_audio

    return [load_audio(u.audio, sr)[0] for u in utts]


def write_audio_shards(out: Path, clips: list[np.ndarray], sr: int, per_shard: int,
                       labels: list[tuple[str, str]] | None = None) -> list[Path]:
    """Write `clips` as FLAC audio shards `train-NNNNNN.tar` (+ sidecars, minimal clip JSON); return tars.

    `labels` gives each clip's (speaker, content); without them the clips get placeholder labels
    (8 speakers, 16 contents by position), which only a reader benchmark can do with.
    """
    from intervox.audio import encode_flac
    from intervox.shards.write import write_shard

    out.mkdir(parents=True, exist_ok=True)
    tars = []
    for s in range(0, len(clips), per_shard):
        name = f"train-{s // per_shard:06d}"
        samples = []
        for i, audio in enumerate(clips[s : s + per_shard]):
            key = f"{name}-{i:06d}"
            speaker, content = labels[s + i] if labels else (f"spk{(s + i) % 8}", f"c{(s + i) % 16}")
            samples.append(
                {
                    "__key__": key,
                    "flac": encode_flac(audio, sr),
                    "json": {
                        "key": key,
                        "speaker": speaker,
                        "content": content,
                        "channel": "clean",
                        "split": "train",
                        "block": -1,
                        "sr": sr,
                        "duration": round(audio.size / sr, 4),
                    },
                }
            )
        write_shard(out / f"{name}.tar", samples, plan_hash="bench")
        tars.append(out / f"{name}.tar")
    return tars


def write_loose(out: Path, clips: list[np.ndarray], sr: int, fmt: str) -> list[Path]:
    """Write each clip as its own file (16-bit FLAC, same bytes as in the shards, or WAV); return paths."""
    import soundfile as sf

    from intervox.audio import encode_flac

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, audio in enumerate(clips):
        p = out / f"clip-{i:06d}.{fmt}"
        if fmt == "flac":
            p.write_bytes(encode_flac(audio, sr))
        else:
            sf.write(p, np.clip(audio, -1, 1), sr, subtype="PCM_16")
        paths.append(p)
    return paths
