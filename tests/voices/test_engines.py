"""Each installed engine renders real speech at its catalog rate; a missing engine is reported, not fatal."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from intervox.dsp import median_f0
from intervox.errors import SynthesisError
from intervox.voices import catalog, engine_status, get_voice, list_voices, synthesize
from intervox.voices.engines import ENGINES

EN = "Please turn the old radio off before dinner tonight."
BN = "আজ সকালে রহিম বাজারে দুটি লাল আম কিনল।"
# Engines the project installs (make setup); mbrola and pico are optional extras.
REQUIRED = ("espeak", "flite", "festival", "piper", "hibari", "kokoro")
CASES = [
    ("espeak:en-us", EN, "en"),
    ("espeak:en-us:m3", EN, "en"),
    ("espeak:en-gb:f2", EN, "en"),
    ("espeak:bn", BN, "bn"),
    ("espeak:bn:f1", BN, "bn"),
    ("flite:awb", EN, "en"),
    ("flite:rms", EN, "en"),
    ("flite:slt", EN, "en"),
    ("flite:kal16", EN, "en"),
    ("festival:kal_diphone", EN, "en"),
    ("festival:ked_diphone", EN, "en"),
    ("festival:cmu_us_slt_arctic_hts", EN, "en"),
    ("piper:joe", EN, "en"),
    ("hibari:heart", EN, "en"),
    ("kokoro:jf_alpha", EN, "en"),
    ("mbrola:us1", EN, "en"),
    ("pico:en-us", EN, "en"),
]


@pytest.fixture
def fresh_catalog():
    catalog.refresh()
    yield
    catalog.refresh()


@pytest.mark.parametrize(("voice_id", "text", "lang"), CASES, ids=[c[0] for c in CASES])
def test_engine_renders_real_speech(voice_id: str, text: str, lang: str) -> None:
    engine = voice_id.split(":")[0]
    status = engine_status()[engine]
    if status != "ok":
        if engine in REQUIRED:
            pytest.fail(f"required engine {engine} unavailable: {status}")
        pytest.skip(f"{engine}: {status}")
    info = get_voice(voice_id)
    audio, sr = synthesize(text, voice_id, lang)
    assert sr == info.sample_rate
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 1.0 < len(audio) / sr < 10.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.005
    f0 = median_f0(audio, sr)
    assert 60 < f0 < 400  # voiced speech, not noise or a beep


def test_piper_is_deterministic() -> None:
    a, _ = synthesize("Stop the car.", "piper:joe")
    b, _ = synthesize("Stop the car.", "piper:joe")
    assert np.array_equal(a, b)


def test_missing_engine_is_reported_not_fatal(monkeypatch: pytest.MonkeyPatch, fresh_catalog: None) -> None:
    import shutil

    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name, *a, **k: None if name == "flite" else real_which(name, *a, **k)
    )
    catalog.refresh()
    status = engine_status()
    assert status["flite"] == "flite not found on PATH"
    assert status["espeak"] == "ok"
    assert not [v for v in list_voices("en") if v.engine == "flite"]
    with pytest.raises(SynthesisError, match=r"flite:slt: engine flite unavailable: flite not found"):
        synthesize(EN, "flite:slt")
    from intervox.cli import cli

    result = CliRunner().invoke(cli, ["voices", "list", "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "engine flite: flite not found on PATH" in result.output
    assert "engine kokoro: ok" in result.output


def test_broken_engine_listing_is_reported(monkeypatch: pytest.MonkeyPatch, fresh_catalog: None) -> None:
    def boom() -> list:
        raise RuntimeError("voice directory corrupt")

    monkeypatch.setattr(ENGINES["festival"], "voices", boom)
    catalog.refresh()
    assert "voice directory corrupt" in engine_status()["festival"]
    assert list_voices("en")  # the other engines still list


def test_errors_name_voice_and_text(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SynthesisError, match="espeak:xx-nope: no such voice"):
        synthesize(EN, "espeak:xx-nope")
    with pytest.raises(SynthesisError, match="unknown engine 'votrax'"):
        synthesize(EN, "votrax:one")
    with pytest.raises(SynthesisError, match="empty text"):
        synthesize("   ", "espeak:en-us")
    with pytest.raises(SynthesisError, match="does not speak 'bn'"):
        synthesize(BN, "flite:slt", "bn")
    monkeypatch.setattr(ENGINES["espeak"], "render", lambda info, text: (np.zeros(22050, np.float32), 22050))
    with pytest.raises(SynthesisError, match=r"espeak:en-us:m3: unusable output: .*silent") as err:
        synthesize(EN, "espeak:en-us:m3")
    assert EN in str(err.value)


@pytest.mark.parametrize("lang_voice", ["en-us", "en-gb", "en-gb-x-rp", "bn"])
def test_espeak_variant_changes_the_voice(lang_voice: str) -> None:
    # espeak-ng 1.51 silently drops the variant of `-v en-gb+f1`: the engine must address the voice file.
    text = BN if lang_voice == "bn" else EN
    plain, sr = synthesize(text, f"espeak:{lang_voice}")
    female, _ = synthesize(text, f"espeak:{lang_voice}:f1")
    assert median_f0(female, sr) > 1.3 * median_f0(plain, sr)
