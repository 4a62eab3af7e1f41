"""The seeded sentence generator and user text files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intervox.errors import ConfigError, SynthesisError
from intervox.voices import generate_sentences, keywords, read_text_file

BENGALI = re.compile(r"[\u0980-\u09FF]")
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_deterministic_distinct_and_sized(lang: str) -> None:
    s = generate_sentences(lang, 300, seed=5)
    assert s == generate_sentences(lang, 300, seed=5)
    assert s != generate_sentences(lang, 300, seed=6)
    assert len(set(s)) == 300
    assert all(5 <= len(x.split()) <= 15 for x in s)
    assert generate_sentences(lang, 20, seed=5) == s[:20]


def test_bengali_is_in_bengali_script() -> None:
    for s in generate_sentences("bn", 50, seed=0):
        words = s.rstrip("।?").split()
        assert all(BENGALI.search(w) for w in words), s
        assert not re.search(r"[A-Za-z]", s) and s.endswith("।")


def test_keyword_vocabulary() -> None:
    assert list(keywords("en")) == COMMANDS and list(keywords("bn")) == COMMANDS
    assert keywords("en")["on"] == "on"  # YAML must not turn on/off/yes/no into booleans
    assert all(BENGALI.search(w) for w in keywords("bn").values())
    aux = keywords("en", "auxiliary")
    assert {"marvin", "sheila", "wow", "bed", "tree"} <= set(aux)
    assert list(keywords("en", "digits")) == [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
    ]
    words = " ".join(generate_sentences("en", 300, seed=0)).lower()
    assert sum(w in words.split() for w in COMMANDS) >= 8  # the command words occur inside sentences


def test_unknown_language() -> None:
    with pytest.raises(ConfigError, match="no sentence lexicon for language 'xx'"):
        generate_sentences("xx", 3, 0)


def test_read_text_file(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# my sentences\nHello there  friend.\nআমি ভাত খাই।\n", encoding="utf-8")
    assert read_text_file(good) == ["Hello there friend.", "আমি ভাত খাই।"]
    empty = tmp_path / "empty.txt"
    empty.write_text("one line\n\nthird\n", encoding="utf-8")
    with pytest.raises(SynthesisError, match=r"empty\.txt:2: empty line"):
        read_text_file(empty)
    ctrl = tmp_path / "ctrl.txt"
    ctrl.write_text("fine\nbad\x07bell\n", encoding="utf-8")
    with pytest.raises(SynthesisError, match=r"ctrl\.txt:2: control character"):
        read_text_file(ctrl)
    with pytest.raises(SynthesisError, match="cannot read"):
        read_text_file(tmp_path / "missing.txt")
