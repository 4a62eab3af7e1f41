"""espeak-ng: every installed language voice, alone and with every installed variant.

Ids: `espeak:<lang>` (the language voice's own default timbre) and `espeak:<lang>:<variant>`
(rendered as `espeak-ng -v <lang>+<variant>`). Output is 22.05 kHz.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np

from intervox.voices.engines.base import VoiceInfo, iso_base, missing_tool, run_to_wav

ENGINE = "espeak"
SAMPLE_RATE = 22050


def status() -> str:
    """Return "ok" or why espeak-ng cannot be used."""
    missing = missing_tool("espeak-ng")
    if missing:
        return missing
    try:
        subprocess.run(["espeak-ng", "--version"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"espeak-ng --version failed: {exc}"
    return "ok"


def _listing(arg: str) -> list[list[str]]:
    out = subprocess.run(["espeak-ng", arg], capture_output=True, timeout=30, check=True).stdout
    rows = [line.split() for line in out.decode("utf-8", "replace").splitlines()[1:]]
    return [r for r in rows if len(r) >= 5]


def _gender(col: str) -> str | None:
    g = col.split("/")[-1].strip().lower()
    return g if g in ("m", "f") else None


@functools.lru_cache(maxsize=1)
def languages() -> tuple[tuple[str, str | None, str], ...]:
    """Return (voice name, gender, voice file) of every installed language voice."""
    rows = _listing("--voices")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[1]] = counts.get(r[1], 0) + 1
    out = []
    for r in rows:
        # Two voices may share a language code (yue): the second is named by its voice file.
        name = r[1] if counts[r[1]] == 1 else r[4].split("/")[-1].lower()
        out.append((name, _gender(r[2]), r[4]))
    return tuple(dict.fromkeys(out))


def voice_file(name: str) -> str:
    """Return the voice file (`gmw/en-US`) of language voice `name`, or `name` when not listed."""
    return next((f for n, _, f in languages() if n == name), name)


@functools.lru_cache(maxsize=1)
def variants() -> tuple[tuple[str, str | None], ...]:
    """Return (variant name, gender) of every installed variant (`!v/m3` -> m3)."""
    return tuple((r[4].split("/")[-1], _gender(r[2])) for r in _listing("--voices=variant"))


@functools.lru_cache(maxsize=1)
def klatt_variants() -> frozenset[str]:
    """Return the variants rendered by the Klatt synthesiser (their voice file has a `klatt` line).

    A different synthesis method than espeak's default: a grid in a language no other engine
    speaks holds this family out of training as its out-of-distribution "engine".
    """
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, timeout=10, check=False).stdout
    data = out.decode("utf-8", "replace").partition("Data at:")[2].strip()
    found = set()
    for name, _ in variants():
        path = Path(data) / "voices" / "!v" / name
        try:
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        if any(line.split()[:1] == ["klatt"] for line in lines):
            found.add(name)
    return frozenset(found)


def voices() -> list[VoiceInfo]:
    """Return every language voice, plain and combined with every variant."""
    if status() != "ok":
        return []
    out = []
    for lang, lang_gender, _ in languages():
        langs = (iso_base(lang),)
        out.append(
            VoiceInfo(
                f"{ENGINE}:{lang}", ENGINE, lang, None, langs, lang_gender, SAMPLE_RATE, f"{ENGINE}:{lang}"
            )
        )
        for var, var_gender in variants():
            out.append(
                VoiceInfo(
                    f"{ENGINE}:{lang}:{var}",
                    ENGINE,
                    lang,
                    var,
                    langs,
                    var_gender,
                    SAMPLE_RATE,
                    f"{ENGINE}:{lang}:{var}",
                )
            )
    return out


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return espeak-ng's rendering of `text` with this voice (and variant)."""
    # `-v` takes the voice *file*: by language name, `en-gb+m3` silently drops the variant
    # (espeak-ng 1.51 renders plain en-gb), while `gmw/en+m3` applies it.
    voice = voice_file(info.name) + ("" if info.variant is None else f"+{info.variant}")
    return run_to_wav(["espeak-ng", "-b", "1", "-v", voice, "-w", "{wav}", "-f", "{text}"], text, info.id)
