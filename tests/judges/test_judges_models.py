"""Offline judge models: the feature stage's verified Whisper copies and Resemblyzer's packaged weights."""

from __future__ import annotations

import pytest

from intervox import assets
from intervox.errors import ConfigError
from intervox.judges import models


def test_asr_models_are_the_shared_verified_copies(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path))
    d = models.whisper_model_dir("whisper-base")
    assert d == assets.whisper_base_dir() and d.parent == tmp_path
    assert {"model.bin", "config.json", "tokenizer.json"} <= {p.name for p in d.iterdir()}
    assert (models.whisper_model_dir("whisper-tiny.en") / "model.bin").is_file()
    with pytest.raises(ConfigError, match="asr_model 'large'"):
        models.whisper_model_dir("large")


def test_voice_encoder_weights_ship_in_the_package():
    assert models.resemblyzer_weights().stat().st_size > 10_000_000
    assert models.load_voice_encoder() is models.load_voice_encoder()  # cached per process
