"""voice_swap: another voice says the same text; params name it; never the source's own voice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from intervox.errors import ConfigError, InterventionError
from intervox.interventions.ops.voice_swap import VoiceSwap

VOICES = ("espeak:en-us:m3", "espeak:en-us:f2", "flite:slt")


def test_other_voice_same_text_plausible_duration(speech, utt):
    op = VoiceSwap(voices=VOICES)
    p = op.sample_params(np.random.default_rng([1, 2, 3]), utt)
    assert p["voice"] in VOICES and p["text"] == speech.text and p["lang"] == "en"
    out = op.apply(speech.audio, speech.sr, **p)
    seconds = out.size / speech.sr
    assert 0.15 * 10 <= seconds <= 0.8 * 10  # ten words at 0.15-0.8 s a word
    n = min(out.size, speech.audio.size)
    assert out.size != speech.audio.size or not np.allclose(out[:n], speech.audio[:n], atol=1e-3)


def test_never_picks_the_source_speaker(utt):
    own = dataclasses.replace(utt, speaker="flite:slt")
    op = VoiceSwap(voices=VOICES)
    picked = {op.sample_params(np.random.default_rng([s]), own)["voice"] for s in range(40)}
    assert picked == {"espeak:en-us:m3", "espeak:en-us:f2"}
    with pytest.raises(ConfigError, match="voice_swap"):
        VoiceSwap(voices=("flite:slt", "flite:slt")).sample_params(np.random.default_rng([0]), own)


def test_same_seed_same_bytes(speech, utt, replay_twice):
    p, a, b = replay_twice(VoiceSwap(voices=VOICES), speech.audio, speech.sr, utt)
    assert a.tobytes() == b.tobytes()


def test_unknown_voice_is_an_intervention_error(speech):
    with pytest.raises(InterventionError, match="voice_swap"):
        VoiceSwap(voices=VOICES).apply(speech.audio, speech.sr, voice="nosuch:engine", text="Hello.",
                                       lang="en")


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(VoiceSwap(voices=VOICES), {"voice": "flite:slt", "text": "Hello there.", "lang": "en"})
