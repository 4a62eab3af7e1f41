"""coqui_clone: XTTS licence opt-in, local files only (each missing file named), no network, install error."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest

from intervox.errors import ConfigError, InterventionError
from intervox.interventions.ops.coqui_clone import CoquiClone
from intervox.interventions.registry import from_dict

TEXTS = ("Seven green apples fell off the wooden table.",)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("coqui_clone tried to open a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


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
    assert p == {"model": "xtts_v2", "text": TEXTS[0], "lang": "en"}


def test_missing_vocab_is_named(xtts_dir, speech):
    (xtts_dir / "vocab.json").unlink()
    op = CoquiClone(model_dir=str(xtts_dir), texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match="coqui_clone.*vocab.json"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en")


def test_missing_model_dir_is_named(speech):
    op = CoquiClone(model_dir="/nonexistent/xtts", texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match="/nonexistent/xtts"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en")


def test_coqui_not_importable_says_how_to_install(xtts_dir, speech, monkeypatch):
    monkeypatch.setitem(sys.modules, "TTS", None)
    op = CoquiClone(model_dir=str(xtts_dir), texts=TEXTS, accept_xtts_license=True)
    with pytest.raises(InterventionError, match=r"install intervox\[coqui\]"):
        op.apply(speech.audio, speech.sr, model="xtts_v2", text=TEXTS[0], lang="en")


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(CoquiClone(model="yourtts", texts=TEXTS),
                      {"model": "yourtts", "text": "Hi.", "lang": "en"})
