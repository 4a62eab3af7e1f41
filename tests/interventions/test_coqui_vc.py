"""coqui_vc: local files only (missing ones named), no network, backbone recorded, clear install error;
and, where coqui-tts imports (`make test-coqui`), each model's data flow with random-weight toy models."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from coqui_models import coqui_test, save_freevc, save_knnvc, save_openvoice, save_wavlm

from intervox.errors import InterventionError
from intervox.interventions.ops.coqui_vc import CoquiVC

pytestmark = pytest.mark.usefixtures("no_network")  # tests/interventions/conftest.py


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
    assert p == {"model": "freevc", "backbone": "wavlm-large", "reference": "target1.wav", "seed": p["seed"]}
    assert isinstance(p["seed"], int)
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


def test_freevc_use_spk_needs_a_local_speaker_encoder(files, speech, utt, tmp_path):
    """use_spk makes coqui download FreeVC's speaker encoder: the op asks for a local copy instead."""
    model, wavlm, refs = files
    (model / "config.json").write_text(json.dumps({"model": "freevc", "model_args": {"use_spk": True}}))
    op = CoquiVC(model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(refs))
    with pytest.raises(InterventionError, match=r"use_spk.*TTS/vc/models/freevc.py.*speaker_encoder_path"):
        op.apply(speech.audio, speech.sr, **params(op, utt))
    op = CoquiVC(model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(refs),
                 speaker_encoder_path=str(tmp_path / "speaker_encoder.pt"))
    with pytest.raises(InterventionError, match="missing FreeVC speaker encoder.*speaker_encoder.pt"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_openvoice_needs_its_original_config(files, speech, utt, tmp_path):
    """OpenVoice.load_checkpoint reads OpenVoice's own config.json beside the checkpoint."""
    _, _, refs = files
    model = tmp_path / "openvoice"
    model.mkdir()
    (model / "checkpoint.pth").write_bytes(b"x")
    op = CoquiVC(model="openvoice_v2", model_dir=str(model), reference_dir=str(refs))
    with pytest.raises(InterventionError, match="missing model config.*openvoice/config.json"):
        op.apply(speech.audio, speech.sr, **params(op, utt))
    (model / "config.json").write_text(json.dumps({"model": "openvoice", "audio": {"fft_size": 1024}}))
    with pytest.raises(InterventionError, match="not OpenVoice's original config.json.*data.sampling_rate"):
        op.apply(speech.audio, speech.sr, **params(op, utt))


def test_knnvc_needs_a_local_vocoder(files, speech, utt, tmp_path):
    """kNN-VC returns WavLM features: without its vocoder there is no audio (coqui would download it)."""
    _, wavlm, refs = files
    op = CoquiVC(model="knnvc", wavlm_path=str(wavlm), reference_dir=str(refs))
    with pytest.raises(InterventionError, match="vocoder_dir"):
        op.apply(speech.audio, speech.sr, **params(op, utt))
    (tmp_path / "vocoder").mkdir()
    op = CoquiVC(model="knnvc", wavlm_path=str(wavlm), reference_dir=str(refs),
                 vocoder_dir=str(tmp_path / "vocoder"))
    with pytest.raises(InterventionError, match="missing vocoder config.*vocoder/config.json"):
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
    rejects_bad_input(CoquiVC(),
                      {"model": "freevc", "backbone": "wavlm-large", "reference": "x.wav", "seed": 0})


# ---- real data flow: random-weight toy models built from coqui's classes, loaded from local files ----

@pytest.fixture(scope="module")
def voices(tmp_path_factory):
    """Two real espeak-ng reference voices (high and low) for the target speaker."""
    refs = tmp_path_factory.mktemp("voices")
    for name, pitch in (("high.wav", "90"), ("low.wav", "10")):
        subprocess.run(["espeak-ng", "-v", "en-us", "-p", pitch, "-w", str(refs / name),
                        "She sells sea shells by the sea shore every summer."], check=True)
    return refs


@pytest.fixture(scope="module")
def wavlm(tmp_path_factory):
    return save_wavlm(tmp_path_factory.mktemp("wavlm") / "WavLM-Large.pt")


def assert_converts(op, speech, utt, replay_twice):
    """Finite non-silent audio, same length at the input rate, replayable, steered by the reference."""
    p, y1, y2 = replay_twice(op, speech.audio, speech.sr, utt)
    assert y1.dtype == np.float32 and y1.shape == speech.audio.shape and np.all(np.isfinite(y1))
    assert np.std(y1) > 1e-4 and not np.allclose(y1, speech.audio, atol=1e-3)
    assert np.array_equal(y1, y2)  # same params (seed included) -> same audio
    other = "low.wav" if p["reference"] == "high.wav" else "high.wav"
    y3 = op.apply(speech.audio, speech.sr, **{**p, "reference": other})
    # The reference reaches the output (same seed, so nothing else differs; untrained weights keep
    # the effect small for OpenVoice, whose only path from the reference is its flow's conditioning).
    assert not np.array_equal(y1, y3)
    return p


@coqui_test
def test_openvoice_v2_converts_real_speech(speech, utt, replay_twice, voices, tmp_path):
    op = CoquiVC(model="openvoice_v2", model_dir=str(save_openvoice(tmp_path / "openvoice")),
                 reference_dir=str(voices))
    assert assert_converts(op, speech, utt, replay_twice)["backbone"] == "linear-spectrogram (no SSL)"


@coqui_test
def test_freevc_converts_real_speech(speech, utt, replay_twice, voices, wavlm, tmp_path):
    op = CoquiVC(model="freevc", model_dir=str(save_freevc(tmp_path / "freevc", wavlm)),
                 wavlm_path=str(wavlm), reference_dir=str(voices))
    assert assert_converts(op, speech, utt, replay_twice)["backbone"] == "wavlm-large"


@coqui_test
def test_freevc_use_spk_takes_the_local_speaker_encoder(speech, utt, replay_twice, voices, wavlm, tmp_path):
    """use_spk: the speaker encoder and WavLM come from their local files, not the URL / the checkpoint."""
    import torch

    model = save_freevc(tmp_path / "freevc", wavlm, use_spk=True)
    state = torch.load(model / "model.pth", weights_only=True)["model"]
    torch.save({"model": {k: v for k, v in state.items() if not k.startswith(("wavlm.", "enc_spk_ex."))}},
               model / "model.pth")
    op = CoquiVC(model="freevc", model_dir=str(model), wavlm_path=str(wavlm), reference_dir=str(voices),
                 speaker_encoder_path=str(tmp_path / "speaker_encoder.pt"))
    assert_converts(op, speech, utt, replay_twice)


@coqui_test
def test_knnvc_converts_real_speech(speech, utt, replay_twice, voices, wavlm, tmp_path):
    model, vocoder = save_knnvc(tmp_path / "knnvc", tmp_path / "vocoder")
    op = CoquiVC(model="knnvc", model_dir=str(model), vocoder_dir=str(vocoder), wavlm_path=str(wavlm),
                 reference_dir=str(voices))
    assert_converts(op, speech, utt, replay_twice)
