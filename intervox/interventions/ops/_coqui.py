"""Offline plumbing for the coqui-tts adapters: lazy import, local files only, never a download.

coqui-tts fetches weights on first use (FreeVC/kNN-VC: WavLM-Large.pt into $TTS_HOME/wavlm;
FreeVC's speaker encoder and YourTTS's encoder from URLs in their configs). These helpers check
every file up front and name the missing one, so a run fails before any network access.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from intervox.errors import InterventionError

CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "checkpoint.pth", "best_model.pth", "model.pt")


def import_coqui(op: str) -> object:
    """Return the imported `TTS` package; InterventionError telling how to install it when absent."""
    try:
        import TTS  # noqa: N811
        from TTS.utils import synthesizer  # noqa: F401  (fails here without torchaudio/torchcodec)
    except (ImportError, OSError) as exc:
        raise InterventionError(
            f"{op}: coqui-tts is not importable ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            "install intervox[coqui] (coqui-tts 0.28 + six, with torchaudio/torchcodec builds that "
            "match the installed torch)") from exc
    return TTS


def require_dir(op: str, path: str, field: str) -> Path:
    """Return `path` as a Path if it is an existing directory, else InterventionError naming it."""
    if not path:
        raise InterventionError(f"{op}: config field '{field}' is empty (set it to a local model directory)")
    p = Path(path)
    if not p.is_dir():
        raise InterventionError(f"{op}: {field} {p} does not exist (models are never downloaded)")
    return p


def require_file(op: str, path: str | Path, what: str) -> Path:
    """Return `path` if it is an existing file, else InterventionError naming the missing file."""
    p = Path(path)
    if not str(path) or not p.is_file():
        raise InterventionError(f"{op}: missing {what}: {p} "
                                "(models are never downloaded; put the file there)")
    return p


def find_checkpoint(op: str, model_dir: Path) -> Path:
    """Return the model checkpoint inside `model_dir` (first of the usual names, or the only *.pth)."""
    for name in CHECKPOINT_NAMES:
        if (model_dir / name).is_file():
            return model_dir / name
    pths = sorted(model_dir.glob("*.pth"))
    if len(pths) == 1:
        return pths[0]
    raise InterventionError(f"{op}: missing checkpoint in {model_dir} "
                            f"(expected one of {', '.join(CHECKPOINT_NAMES)})")


def check_config_offline(op: str, config_path: Path) -> dict:
    """Return the model config; InterventionError naming any field that points at a URL."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InterventionError(f"{op}: model config {config_path} unreadable ({exc})") from exc

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{where}.{k}" if where else k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")
        elif isinstance(node, str) and node.startswith(("http://", "https://")):
            raise InterventionError(f"{op}: {config_path} field '{where}' points at {node}: "
                                    "download it yourself and set the field to the local file")

    walk(config, "")
    return config


@contextlib.contextmanager
def tts_home_with_wavlm(wavlm_path: Path | None) -> Iterator[None]:
    """Point coqui's data dir ($TTS_HOME) at a temp dir whose wavlm/WavLM-Large.pt is `wavlm_path`.

    coqui's get_wavlm() downloads only when that file is absent, so with the link in place the
    FreeVC/kNN-VC models load the user's local WavLM weights.
    """
    old = os.environ.get("TTS_HOME")
    with tempfile.TemporaryDirectory(prefix="intervox-tts-home-") as home:
        if wavlm_path is not None:
            (Path(home) / "tts" / "wavlm").mkdir(parents=True)
            (Path(home) / "tts" / "wavlm" / "WavLM-Large.pt").symlink_to(wavlm_path.resolve())
        os.environ["TTS_HOME"] = home
        try:
            yield
        finally:
            if old is None:
                os.environ.pop("TTS_HOME", None)
            else:
                os.environ["TTS_HOME"] = old


@contextlib.contextmanager
def temp_wav(audio: np.ndarray, sr: int) -> Iterator[str]:
    """Yield the path of a temporary 16-bit WAV of `audio` (coqui's APIs take file paths)."""
    with tempfile.TemporaryDirectory(prefix="intervox-coqui-") as d:
        path = str(Path(d) / "source.wav")
        sf.write(path, np.clip(audio, -1, 1), sr, subtype="PCM_16")
        yield path
