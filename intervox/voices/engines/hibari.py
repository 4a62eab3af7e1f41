"""hibari (pip `hibari-tts`, Apache-2.0): one neural English voice, ONNX, inside the package.

Only the bundled voice `heart` (American English, female, distilled from Kokoro af_heart) is
offered: hibari's other voices download from a hub on first use, so they are never listed here.
The model is opened by its file path, never by voice name, so nothing can trigger a download.
hibari's vocoder draws noise; a fixed seed makes the same text give the same samples.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import numpy as np

from intervox.errors import SynthesisError
from intervox.voices.engines.base import VoiceInfo

ENGINE = "hibari"
VOICE = "heart"
GENDER = "f"
SAMPLE_RATE = 24000
SEED = 0  # the vocoder's noise seed: fixed so that renders replay bit-identically


def assets_dir() -> Path | None:
    """Return hibari's `assets/` folder, or None when hibari-tts is not installed."""
    spec = importlib.util.find_spec("hibari")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "assets"


def model_path() -> Path | None:
    """Return the bundled ONNX file of voice `heart`, or None when it is not in the package."""
    assets = assets_dir()
    if assets is None or not (assets / "voices.json").is_file():
        return None
    entry = json.loads((assets / "voices.json").read_text(encoding="utf-8")).get(VOICE, {})
    if not entry.get("bundled"):
        return None  # a voice that is not bundled would download: never use it
    path = assets / entry["file"]
    return path if path.is_file() else None


def status() -> str:
    """Return "ok" or why hibari cannot be used."""
    if assets_dir() is None:
        return "python package hibari-tts not installed (pip install hibari-tts)"
    if model_path() is None:
        return f"hibari-tts does not bundle voice {VOICE!r} (its other voices download: not used)"
    return "ok"


def voices() -> list[VoiceInfo]:
    """Return the bundled voice when hibari-tts is installed."""
    if status() != "ok":
        return []
    vid = f"{ENGINE}:{VOICE}"
    return [VoiceInfo(vid, ENGINE, VOICE, None, ("en",), GENDER, SAMPLE_RATE, vid)]


@functools.lru_cache(maxsize=1)
def _load():  # noqa: ANN202 - hibari.Hibari, imported lazily
    from hibari import Hibari

    path = model_path()
    if path is None:
        raise SynthesisError(f"{ENGINE}:{VOICE}: {status()}")
    # One onnxruntime thread: the grid renders in several processes on shared cores.
    return Hibari(voice=VOICE, model=str(path), threads=1)


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return hibari's rendering of `text` at 24 kHz (seeded: same text, same samples)."""
    tts = _load()
    try:
        audio = tts(text, seed=SEED)
    except Exception as exc:  # G2P and onnxruntime raise many types; name them all here
        raise SynthesisError(f"{info.id}: hibari failed on {text!r}: {exc}") from exc
    return np.asarray(audio, dtype=np.float32).reshape(-1), int(tts.sample_rate)
