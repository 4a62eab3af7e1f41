"""coqui_vc: local files only (missing ones named), no network, backbone recorded, clear install error."""

from __future__ import annotations

import json
import socket
import sys

import numpy as np
import pytest
import soundfile as sf

from intervox.errors import InterventionError
from intervox.interventions.ops.coqui_vc import CoquiVC


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any socket the op opens fails the test loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("coqui_vc tried to open a network socket")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture()
def files(tmp_path):
    model = tmp_path / "freevc"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model": "freevc", "audio": {"sample_rate": 16000}}))
    (model / "model.pth").write_bytes(b"not a real checkpoint")
    wavlm = tmp_path / "WavLM-Large.pt"
    wavlm.write_bytes(b"weights")
    refs = tmp_path / "refs"
    refs.mkdir()
    sf.write(refs / "target1.wav", 0.1 * np.sin(np.arange(16000) / 7), 16000)
    return model, wavlm, refs


def params(op, utt):
    return op.sample_params(np.random.default_rng([1, 2, 3]), utt)


def test_params_record_the_backbone(files, utt):
    model, wavlm, refs = files
    p = params(CoquiVC(model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(refs)), utt)
    assert p == {"model": "freevc", "backbone": "wavlm-large", "reference": "target1.wav"}
    p = params(CoquiVC(model="openvoice_v2", model_dir=str(model), reference_dir=str(refs)), utt)
    assert p["backbone"] != "wavlm-large"


def test_missing_model_dir_is_named(files, speech, utt):
    _, wavlm, refs = files
    op = CoquiVC(model_dir="/nonexistent/freevc", wavlm_path=str(wavlm), reference_dir=str(refs))
    with pytest.raises(InterventionError, match="coqui_vc.*/nonexistent/freevc"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_missing_wavlm_weights_are_named_not_downloaded(files, speech, utt, tmp_path):
    model, _, refs = files
    op = CoquiVC(model_dir=str(model), wavlm_path=str(tmp_path / "missing" / "WavLM-Large.pt"),
                 reference_dir=str(refs))
    with pytest.raises(InterventionError, match="WavLM-Large.pt"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_config_pointing_at_a_url_is_refused(files, speech, utt):
    model, wavlm, refs = files
    (model / "config.json").write_text(json.dumps(
        {"model_args": {"speaker_encoder_path": "https://example.org/speaker_encoder.pt"}}))
    op = CoquiVC(model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(refs))
    with pytest.raises(InterventionError, match="model_args.speaker_encoder_path"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_coqui_not_importable_says_how_to_install(files, speech, utt, monkeypatch):
    model, wavlm, refs = files
    monkeypatch.setitem(sys.modules, "TTS", None)  # import TTS -> ImportError
    op = CoquiVC(model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(refs))
    with pytest.raises(InterventionError, match=r"coqui_vc: coqui-tts is not importable.*intervox\[coqui\]"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_unknown_model_is_refused():
    with pytest.raises(ValueError, match="coqui_vc.model"):
        CoquiVC(model="rvc")


def test_bad_input_names_the_op(rejects_bad_input):
    rejects_bad_input(CoquiVC(), {"model": "freevc", "backbone": "wavlm-large", "reference": "x.wav"})
