"""Seeded sentence generator: a small template grammar over a lexicon written for this project.

The lexicons live in `intervox/voices/lexicon/<lang>.yaml` (English and Bengali ship); each
holds templates, slots, words, and the Speech Commands keyword vocabulary in that language.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from pathlib import Path

import numpy as np
import yaml

from intervox.errors import ConfigError, SynthesisError

LEXICON_DIR = Path(__file__).parent / "lexicon"
MIN_WORDS, MAX_WORDS = 5, 15
_SLOT = re.compile(r"\{(\w+)\}")


@functools.lru_cache(maxsize=8)
def load_lexicon(lang: str) -> dict:
    """Return the parsed lexicon of `lang`; ConfigError names the file when absent or malformed."""
    path = LEXICON_DIR / f"{lang}.yaml"
    if not path.is_file():
        have = ", ".join(sorted(p.stem for p in LEXICON_DIR.glob("*.yaml")))
        raise ConfigError(f"{path}: no sentence lexicon for language {lang!r} (have: {have})")
    lex = yaml.safe_load(path.read_text(encoding="utf-8"))
    for key in ("templates", "slots", "words", "keywords", "end"):
        if key not in lex:
            raise ConfigError(f"{path}: missing section {key!r}")
    for group, values in {**lex["slots"], **lex["words"]}.items():
        # YAML 1.1 reads bare yes/no/on/off as booleans: every entry must stay a string.
        bad = [v for v in values if not isinstance(v, str)]
        if bad:
            raise ConfigError(f"{path}: {group}: non-string entries {bad} (quote yes/no/on/off)")
    return lex


def languages() -> list[str]:
    """Return the languages that have a lexicon."""
    return sorted(p.stem for p in LEXICON_DIR.glob("*.yaml"))


def keywords(lang: str, group: str = "commands") -> dict[str, str]:
    """Return Speech Commands label -> word in `lang` for group commands / auxiliary / digits."""
    return dict(load_lexicon(lang)["keywords"][group])


def _expand(pattern: str, lex: dict, rng: np.random.Generator, depth: int = 0) -> str:
    if depth > 8:
        raise ConfigError(f"lexicon {lex['language']}: slots nest deeper than 8 (a cycle?) at {pattern!r}")

    def pick(m: re.Match) -> str:
        name = m.group(1)
        choices = lex["slots"].get(name) or lex["words"].get(name)
        if not choices:
            raise ConfigError(f"lexicon {lex['language']}: unknown slot {{{name}}}")
        return _expand(choices[int(rng.integers(len(choices)))], lex, rng, depth + 1)

    return _SLOT.sub(pick, pattern)


def _finish(words: str, end: str) -> str:
    words = " ".join(words.split())
    return words[:1].upper() + words[1:] + ("" if words.endswith(("?", end)) else end)


def generate_sentences(lang: str, n: int, seed: int) -> list[str]:
    """Return `n` distinct sentences of 5-15 words in `lang`, the same for the same seed."""
    lex = load_lexicon(lang)
    rng = np.random.default_rng([seed, 7001])
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < n:
        attempts += 1
        if attempts > 200 * n + 1000:
            raise ConfigError(
                f"lexicon {lang}: only {len(out)} distinct sentences after {attempts} draws (asked for {n})"
            )
        templates = lex["templates"]
        sentence = _finish(_expand(templates[int(rng.integers(len(templates)))], lex, rng), lex["end"])
        if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS and sentence not in seen:
            seen.add(sentence)
            out.append(sentence)
    return out


def read_text_file(path: str | Path) -> list[str]:
    """Return the sentences of a UTF-8 text file, one a line (lines starting with # are skipped).

    SynthesisError names the file and line of a line that is empty after stripping, holds
    control characters, or is not valid UTF-8.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SynthesisError(f"{path}: cannot read text file ({exc.strerror})") from exc
    out = []
    for lineno, line in enumerate(raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            raise SynthesisError(f"{path}:{lineno}: not valid UTF-8 ({exc.reason})") from exc
        if text.lstrip().startswith("#") or (not text and lineno == raw.count(b"\n") + 1):
            continue
        if not text.strip():
            raise SynthesisError(f"{path}:{lineno}: empty line (one sentence per line, no blank lines)")
        bad = [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c not in "\u200c\u200d"]
        if bad:
            raise SynthesisError(f"{path}:{lineno}: control character {bad[0]!r} in line")
        out.append(" ".join(text.split()))
    if not out:
        raise SynthesisError(f"{path}: no sentences in file")
    return out
