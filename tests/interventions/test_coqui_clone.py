"""coqui_clone: XTTS licence opt-in, local files only (each missing file named), no network, install error;
and, where coqui-tts imports (`make test-coqui`), YourTTS and XTTS data flow with random-weight toy models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from coqui_models import coqui_test, save_xtts, save_yourtts

from intervox.audio import load_audio
from intervox.errors import ConfigError, InterventionError
from intervox.interventions.ops.coqui_clone import CoquiClone
from intervox.interventions.registry import from_dict

TEXTS = ("Seven green apples fell off the wooden table.",)


pytestmark = pytest.mark.usefixtures("no_network")  # tests/interventions/conftest.py


@pytest.fixture()
def xtts_dir(tmp_path):
    d = tmp_path / "xtts_v2"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model": "xtts"}))
    (d / "model.pth").write_bytes(b"x")
    (d / "vocab.json").write_text("{}")
    return d


def test_xtts_needs_the_licence_opt_in():
    with pytest.raises(ConfigError, match="Coqui Public Model License.*accept_xtts_license"):
        CoquiClone(texts=TEXTS)
    with pytest.raises(ConfigError, match="accept_xtts_license"):
        from_dict({"name": "coqui_clone", "texts": list(TEXTS)})
    assert CoquiClone(texts=TEXTS, accept_xtts_license=True).model == "xtts_v2"
    assert CoquiClone(model="yourtts", texts=TEXTS).model == "yourtts"


def test_params_name_the_new_text(utt):
    p = CoquiClone(texts=TEXTS + (utt.text,), accept_xtts_license=True).sample_params(
        np.random.default_rng([1, 2, 3]), utt)
    assert p == {"model": "xtts_v2", "text": TEXTS[0], "lang": "en", "seed": p["seed"]}
    assert isinstance(p["seed"], int)


def test_missing_vocab_is_named(xtts_dir, speech):
    (xtts_dir / "vocab.json").unlink()
    op = CoquiClone(model_dir=str(xtts_dir), texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match="coqui_clone.*vocab.json"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en", seed=0)


def test_missing_model_dir_is_named(speech):
    op = CoquiClone(model_dir="/nonexistent/xtts", texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match="/nonexistent/xtts"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en", seed=0)


def test_yourtts_missing_speaker_encoder_is_named(tmp_path, speech):
    """YourTTS clones through model_se.pth; its config names it on the training machine."""
    d = tmp_path / "yourtts"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model": "vits", "model_args": {
        "speaker_encoder_model_path": "/train/yourtts/model_se.pth",
        "speaker_encoder_config_path": "/train/yourtts/config_se.json"}}))
    (d / "model_file.pth").write_bytes(b"x")
    op = CoquiClone(model="yourtts", model_dir=str(d), texts=TEXTS)
    with pytest.raises(InterventionError, match=r"missing speaker_encoder_model_path file: .*/model_se\.pth"):
        op.apply(speech.audio, speech.sr, model="yourtts", text=TEXTS[0], lang="en", seed=0)
    (d / "model_se.pth").write_bytes(b"x")
    with pytest.raises(InterventionError, match=r"missing speaker_encoder_config_path file: .*/config_se"):
        op.apply(speech.audio, speech.sr, model="yourtts", text=TEXTS[0], lang="en", seed=0)


def test_coqui_not_importable_says_how_to_install(xtts_dir, speech, monkeypatch):
    monkeypatch.setitem(sys.modules, "TTS", None)
    op = CoquiClone(model_dir=str(xtts_dir), texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match=r"install intervox\[coqui\]"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en", seed=0)


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(CoquiClone(model="yourtts", texts=TEXTS),
                      {"model": "yourtts", "text": "Hi.", "lang": "en", "seed": 0})


# ---- real data flow: random-weight toy models built from coqui's classes, loaded from local files ----

@pytest.fixture(scope="module")
def other_voice(tmp_path_factory):
    """A second real speaker (espeak-ng, high pitch) to clone from."""
    path = tmp_path_factory.mktemp("other") / "other.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-p", "90", "-w", str(path),
                    "She sells sea shells by the sea shore every summer."], check=True)
    return load_audio(path, 16000)[0]


def assert_clones(op, speech, utt, replay_twice, other_voice):
    """Finite non-silent speech at the input rate, replayable; the voice comes from the input audio."""
    p, y1, y2 = replay_twice(op, speech.audio, speech.sr, utt)
    assert p["text"] == TEXTS[0] and p["lang"] == "en"
    assert y1.dtype == np.float32 and y1.ndim == 1 and y1.size > speech.sr // 4 and np.all(np.isfinite(y1))
    assert np.std(y1) > 1e-5
    assert np.array_equal(y1, y2)  # same params (seed included) -> same audio
    y3 = op.apply(other_voice, speech.sr, **p)  # same text and seed, another speaker
    assert not np.array_equal(y1[: y3.size], y3[: y1.size])
    return p


@coqui_test
def test_yourtts_clones_real_speech(speech, utt, replay_twice, other_voice, tmp_path):
    model_dir = save_yourtts(tmp_path / "yourtts")
    before = {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()}
    op = CoquiClone(model="yourtts", model_dir=str(model_dir), texts=TEXTS)
    p = assert_clones(op, speech, utt, replay_twice, other_voice)
    # Language codes map onto the model's own ("fr" -> "fr-fr"); an absent one is named.
    assert op.apply(speech.audio, speech.sr, **{**p, "lang": "fr"}).size > 0
    with pytest.raises(InterventionError, match=r"no language 'de' \(it has en, fr-fr, pt-br\)"):
        op.apply(speech.audio, speech.sr, **{**p, "lang": "de"})
    # Nothing was written into the model directory (no cached voices, config untouched).
    assert {p.name: p.stat().st_mtime_ns for p in model_dir.iterdir()} == before


@coqui_test
def test_xtts_clones_real_speech(speech, utt, replay_twice, other_voice, tmp_path):
    model_dir = save_xtts(tmp_path / "xtts_v2")
    op = CoquiClone(model="xtts_v2", model_dir=str(model_dir), texts=TEXTS, accept_xtts_license=True)
    assert_clones(op, speech, utt, replay_twice, other_voice)
