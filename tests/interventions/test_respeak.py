"""respeak: the same voice says a new text (configured or generated); params name text and voice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from intervox.errors import ConfigError
from intervox.interventions.ops.respeak import Respeak

TEXTS = ("Seven green apples fell off the wooden table.", "She sells sea shells by the shore.")


@pytest.fixture()
def voice_utt(utt):
    return dataclasses.replace(utt, speaker="espeak:en-us:m3")


def test_new_text_same_voice_plausible_duration(speech, voice_utt):
    op = Respeak(texts=TEXTS + (voice_utt.text,))
    p = op.sample_params(np.random.default_rng([1, 2, 3]), voice_utt)
    assert p["text"] in TEXTS and p["voice"] == "espeak:en-us:m3" and p["lang"] == "en"
    out = op.apply(speech.audio, speech.sr, **p)
    words = len(p["text"].split())
    assert 0.15 * words <= out.size / speech.sr <= 0.8 * words
    n = min(out.size, speech.audio.size)
    assert out.size != speech.audio.size or not np.allclose(out[:n], speech.audio[:n], atol=1e-3)


def test_generated_text_differs_from_the_source(voice_utt):
    texts = {Respeak().sample_params(np.random.default_rng([s]), voice_utt)["text"] for s in range(5)}
    assert voice_utt.text not in texts and len(texts) >= 3


def test_only_own_text_configured_is_a_config_error(voice_utt):
    with pytest.raises(ConfigError, match="respeak"):
        Respeak(texts=(voice_utt.text,)).sample_params(np.random.default_rng([0]), voice_utt)


def test_same_seed_same_bytes(speech, voice_utt, replay_twice):
    _, a, b = replay_twice(Respeak(texts=TEXTS), speech.audio, speech.sr, voice_utt)
    assert a.tobytes() == b.tobytes()


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(Respeak(texts=TEXTS), {"text": TEXTS[0], "voice": "espeak:en-us:m3", "lang": "en"})
