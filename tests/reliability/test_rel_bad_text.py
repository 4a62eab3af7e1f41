"""Bad text: empty, very long, mixed-script, control characters: accepted right or refused naming the item."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intervox.errors import SynthesisError
from intervox.voices import read_text_file, synthesize

SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
VOICE = "espeak:en-us"
# Latin, Cyrillic, Bengali (with ZWNJ/ZWJ), CJK, digits/punctuation, and control/format characters.
ALPHABET = st.sampled_from(list("abc XYZ.,?!") + list("мир") + list("নমস্কার") + ["\u200c", "\u200d"]
                           + list("世界") + ["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u202e", "\ufeff"])


def is_control(c: str) -> bool:
    return unicodedata.category(c) in ("Cc", "Cf") and c not in "\u200c\u200d"


@SETTINGS
@given(lines=st.lists(st.text(ALPHABET | st.sampled_from(["\t", " ", "\r"]), max_size=40), max_size=6))
def test_read_text_file_returns_clean_sentences_or_names_file_and_line(
    tmp_path: Path, lines: list[str]
) -> None:
    path = tmp_path / "sentences.txt"
    path.write_bytes("\n".join(lines).encode("utf-8"))
    try:
        out = read_text_file(path)
    except SynthesisError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}:")
        if msg.startswith(f"{path}: no sentences"):
            assert all(not line.strip() or line.lstrip().startswith("#") for line in lines)
        else:
            lineno = int(msg[len(str(path)) + 1 :].split(":", 1)[0])
            bad = lines[lineno - 1].rstrip("\r")
            assert not bad.strip() or any(is_control(c) for c in bad), (msg, bad)
        return
    assert out and all(s.strip() == s and s for s in out)
    assert not any(is_control(c) for s in out for c in s)
    assert len(out) == sum(1 for line in lines if line.strip() and not line.lstrip().startswith("#"))


def test_read_text_file_rejects_invalid_utf8_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("good line\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(SynthesisError, match=r"latin1.txt:2: not valid UTF-8"):
        read_text_file(path)


@settings(max_examples=12, deadline=None)
@given(text=st.text(ALPHABET, max_size=30))
def test_synthesize_speaks_clean_text_or_names_voice_and_text(text: str) -> None:
    try:
        audio, sr = synthesize(text, VOICE, "en")
    except SynthesisError as exc:
        msg = str(exc)
        assert msg.startswith(f"{VOICE}: ")
        assert repr(text) in msg or (not text.strip() and "empty text" in msg)
        return
    assert not any(is_control(c) for c in text)  # a NUL or ESC would cut or garble what is said
    assert audio.ndim == 1 and audio.size / sr >= 0.1 and np.all(np.isfinite(audio))


@pytest.mark.parametrize("text, why", [("", "empty text"), ("   ", "empty text"),
                                       ("Hello\x00 world", "control character '\\x00'"),
                                       ("Turn \x1b[31mred", "control character '\\x1b'")])
def test_synthesize_refusals_name_voice_and_text(text: str, why: str) -> None:
    with pytest.raises(SynthesisError, match="^" + re.escape(f"{VOICE}: {why}")) as err:
        synthesize(text, VOICE, "en")
    assert "control" not in why or repr(text) in str(err.value)


def test_very_long_and_mixed_script_text_are_spoken() -> None:
    long_text = " ".join(["seven"] * 150)
    audio, sr = synthesize(long_text, VOICE, "en")
    short, _ = synthesize("seven", VOICE, "en")
    assert audio.size > 50 * short.size  # every word is spoken, nothing is cut at a length limit
    mixed, sr = synthesize("Hello мир world", VOICE, "en")
    assert mixed.size / sr > 0.5 and np.all(np.isfinite(mixed))
    with pytest.raises(SynthesisError, match=r"does not speak 'bn'.*'নমস্কার'"):
        synthesize("নমস্কার", VOICE, "bn")
