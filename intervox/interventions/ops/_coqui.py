"""Offline plumbing for the coqui-tts adapters: lazy import, local files only, never a download.

coqui-tts fetches weights on first use (FreeVC/kNN-VC: WavLM-Large.pt into $TTS_HOME/tts/wavlm;
FreeVC's speaker encoder from a URL in its code; released configs name files on the training
machine). These helpers check every file up front and name the missing one, so a run fails
before any network access.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from intervox.errors import InterventionError

CHECKPOINT_NAMES = ("model.pth", "model_file.pth", "checkpoint.pth", "best_model.pth", "model.pt")
INSTALL_HINT = ("install intervox[coqui] beside torch 2.9.1 + torchaudio 2.9 (scripts/setup_coqui.sh "
                "builds that venv, .venv-coqui) and run from there")

# Side files a coqui TTS config names by path, with the names coqui's model zips use
# (as TTS.utils.manage.ModelManager._update_paths rewrites them after a download).
SIDE_FILES = {
    "d_vector_file": ("speakers.json", "speakers.pth"),
    "speakers_file": ("speaker_ids.json", "speaker_ids.pth"),
    "language_ids_file": ("language_ids.json",),
    "speaker_encoder_model_path": ("model_se.pth", "model_se.pth.tar"),
    "speaker_encoder_config_path": ("config_se.json",),
}

# One model runs at a time per process: seeding torch's global RNG and pointing $TTS_HOME at a
# temp dir are process-wide, so two threads interleaving them would lose determinism.
LOCK = threading.RLock()


def import_coqui(op: str) -> object:
    """Return the imported `TTS` package; InterventionError telling how to install it when absent."""
    try:
        import TTS  # noqa: N811
        from TTS.utils import synthesizer  # noqa: F401  (fails here without torchaudio/torchcodec)
    except (ImportError, OSError) as exc:
        raise InterventionError(
            f"{op}: coqui-tts is not importable ({type(exc).__name__}: {str(exc).strip()[:200]}); "
            f"{INSTALL_HINT}") from exc
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
    pths = [p for p in sorted(model_dir.glob("*.pth")) if p.name not in ("model_se.pth", "speakers.pth")]
    if len(pths) == 1:
        return pths[0]
    raise InterventionError(f"{op}: missing checkpoint in {model_dir} "
                            f"(expected one of {', '.join(CHECKPOINT_NAMES)})")


def read_config(op: str, config_path: Path) -> dict:
    """Return the JSON config at `config_path`; InterventionError naming it when unreadable."""
    try:
        return json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InterventionError(f"{op}: model config {config_path} unreadable ({exc})") from exc


def check_config_offline(op: str, config_path: Path, config: dict | None = None) -> dict:
    """Return the config (read from `config_path` unless given); InterventionError naming a URL field."""
    if config is None:
        config = read_config(op, config_path)

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


def localize_config(op: str, model_dir: Path, config: dict, required: tuple[str, ...] = ()) -> dict:
    """Return `config` with its side-file fields pointing into `model_dir` (the zip's own layout).

    Released configs name these files where the model was trained (/home/...); coqui rewrites them
    after its own download. A field that is set, or listed in `required`, must name a file in
    `model_dir` (same base name, else coqui's usual name); InterventionError names the missing one.
    """
    config = json.loads(json.dumps(config))  # deep copy: the caller's dict stays as read
    args = config.setdefault("model_args", {})
    for field, defaults in SIDE_FILES.items():
        values = [v for v in (config.get(field), args.get(field)) if v]
        if not values and field not in required:
            continue
        names = [Path(v[0] if isinstance(v, list) else v).name for v in values]
        found = next((model_dir / n for n in (*names, *defaults) if (model_dir / n).is_file()), None)
        if found is None:
            raise InterventionError(f"{op}: missing {field} file: {model_dir / (names or defaults)[0]} "
                                    "(models are never downloaded; put the file there)")
        for holder in (config, args):
            if holder is args or field in holder:
                old = holder.get(field)
                holder[field] = [str(found)] if isinstance(old, list) else str(found)
    return config


@contextlib.contextmanager
def tts_home_with_wavlm(wavlm_path: Path | None) -> Iterator[None]:
    """Point coqui's data dir ($TTS_HOME) at a temp dir whose tts/wavlm/WavLM-Large.pt is `wavlm_path`.

    coqui's get_wavlm() (TTS/vc/layers/freevc/wavlm/__init__.py) reads
    trainer.io.get_user_data_dir("tts")/wavlm/WavLM-Large.pt, i.e. $TTS_HOME/tts/wavlm/..., and
    downloads only when that file is absent, so with the link in place it loads the user's weights.
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


def load_weights(op: str, model: object, checkpoint: Path, from_files: tuple[str, ...] = ()) -> None:
    """Load coqui's {"model": state_dict} checkpoint into `model`.

    Keys under the `from_files` prefixes may be absent: those submodules were already loaded
    from their own local files (WavLM, speaker encoder). Any other missing or extra key is an error.
    """
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict(state["model"], strict=False)  # type: ignore[attr-defined]
    missing = [k for k in missing if not k.startswith(from_files)]
    if missing or unexpected:
        raise InterventionError(f"{op}: checkpoint {checkpoint} does not match the config: "
                                f"missing {missing[:5]}, unexpected {unexpected[:5]}")


def file_key(*paths: Path | None) -> tuple:
    """Return a cache key for loaded models: each path with its size and mtime (a replaced file reloads)."""
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) if p is not None else None for p in paths)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run with torch's CPU RNG seeded to `seed` (the models sample noise), restoring it afterwards."""
    import torch

    with LOCK, torch.random.fork_rng(devices=[]), torch.inference_mode():
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def temp_wav(audio: np.ndarray, sr: int) -> Iterator[str]:
    """Yield the path of a temporary 16-bit WAV of `audio` (coqui's YourTTS encoder reads a file)."""
    with tempfile.TemporaryDirectory(prefix="intervox-coqui-") as d:
        path = str(Path(d) / "source.wav")
        sf.write(path, np.clip(audio, -1, 1), sr, subtype="PCM_16")
        yield path
