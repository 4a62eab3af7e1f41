"""Content judge: text normaliser, Levenshtein CER/WER against hand-computed cases, offline ASR."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from intervox.errors import AudioError, ConfigError
from intervox.judges import content
from intervox.judges.models import asr_model_for, whisper_model_dir


def test_normalize_text_lowercases_strips_punctuation_and_collapses_spaces():
    assert content.normalize_text("  Hello,   World!  It's 'fine'.") == "hello world it's fine"
    assert content.normalize_text("Well -- maybe;\tnot\n") == "well maybe not"


@pytest.mark.parametrize(("ref", "hyp", "dist"), [
    ("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("flaw", "lawn", 2), ("same", "same", 0),
])
def test_levenshtein_hand_cases(ref, hyp, dist):
    assert content.levenshtein(ref, hyp) == dist
    assert content.levenshtein(ref.split() or [], hyp.split() or []) == content.levenshtein(
        hyp.split() or [], ref.split() or [])


def test_cer_and_wer_hand_cases():
    # "the cat sat" -> "the bat sat": 1 of 11 characters, 1 of 3 words.
    assert content.cer("The cat sat.", "the bat sat") == pytest.approx(1 / 11)
    assert content.wer("The cat sat.", "the bat sat") == pytest.approx(1 / 3)
    # One inserted word over a 3-word reference; insertions can push WER past 1.
    assert content.wer("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert content.wer("a b", "x y z w") == pytest.approx(2.0)
    # Case and punctuation never count as errors.
    assert content.cer("A b, C.", "a B c") == 0.0
    assert content.wer("the cat", "") == 1.0
    assert content.cer("", "") == 0.0 and content.cer("", "uh") == 1.0


def test_tiny_en_transcribes_flite_speech_offline(clips, texts):
    hyp = content.transcribe(clips["flite_fox"], 16000, "whisper-tiny.en")
    assert content.wer(texts["fox"], hyp) <= 0.2, hyp
    n_cached = len(content._TRANSCRIPTS)
    assert content.transcribe(clips["flite_fox"], 16000, "whisper-tiny.en") == hyp
    assert len(content._TRANSCRIPTS) == n_cached  # served from the cache, not re-run


def test_transcribe_rejects_silence():
    with pytest.raises(AudioError, match="silent"):
        content.transcribe(np.zeros(16000, np.float32), 16000)


def test_network_is_really_blocked_in_these_tests():
    with pytest.raises(OSError, match="network access attempted"):
        socket.create_connection(("127.0.0.1", 9))


def test_model_locator_finds_tiny_en_and_routes_languages():
    d = whisper_model_dir("whisper-tiny.en")
    assert (d / "model.bin").is_file() and (d / "tokenizer.json").is_file()
    assert asr_model_for("whisper-tiny.en", "en") == "whisper-tiny.en"
    assert asr_model_for("whisper-tiny.en", "bn") == "whisper-base"
    assert asr_model_for("whisper-base", "en") == "whisper-base"
    with pytest.raises(ConfigError, match="whisper-large"):
        whisper_model_dir("whisper-large")


def test_whisper_base_transcribes_and_serves_other_languages(clips, texts):
    hyp = content.transcribe(clips["flite_canoe"], 16000, "whisper-base")
    assert content.cer(texts["canoe"], hyp) <= 0.1, hyp
    # tiny.en is English-only: a non-English clip is routed to base (same transcript as asking base).
    assert content.transcribe(clips["flite_canoe"], 16000, "whisper-tiny.en", language="de") != ""
    assert ("whisper-base", "de") in {(k[0], k[1]) for k in content._TRANSCRIPTS}
