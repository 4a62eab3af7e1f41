"""Neural voice conversion through coqui-tts (FreeVC, kNN-VC, OpenVoice v2) from local files only.

Extra `coqui`. The converted clip keeps the words and takes the voice of a reference recording.
FreeVC and kNN-VC are built on WavLM-Large features: a WavLM upstream may find that shortcut,
so the backbone is recorded in the params (and so in every clip's JSON).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from intervox.audio import resample
from intervox.corpora.manifest import Utterance
from intervox.errors import InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._coqui import (
    check_config_offline,
    find_checkpoint,
    import_coqui,
    require_dir,
    require_file,
    temp_wav,
    tts_home_with_wavlm,
)
from intervox.interventions.registry import register
from intervox.interventions.signal import list_audio_files

# Model -> the self-supervised features it converts through (a shortcut for a matching upstream).
BACKBONES = {"freevc": "wavlm-large", "knnvc": "wavlm-large", "openvoice_v2": "linear-spectrogram (no SSL)"}


@register
@dataclass(frozen=True)
class CoquiVC(Intervention):
    """Convert the utterance to the voice of a reference file drawn from `reference_dir`."""

    name: ClassVar[str] = "coqui_vc"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = True  # these models convert frame by frame

    model: str = "freevc"  # "freevc" | "knnvc" | "openvoice_v2"
    model_dir: str = ""  # local directory: config.json + checkpoint (.pth)
    wavlm_path: str = ""  # local WavLM-Large.pt (freevc, knnvc)
    reference_dir: str = ""  # target-voice recordings; one is drawn per utterance

    def __post_init__(self) -> None:
        if self.model not in BACKBONES:
            raise ValueError(f"coqui_vc.model must be one of {list(BACKBONES)}, got {self.model!r}")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {model, backbone, reference}: the reference file is relative to reference_dir."""
        refs = list_audio_files(self.reference_dir, "coqui_vc.reference_dir")
        return {"model": self.model, "backbone": BACKBONES[self.model],
                "reference": refs[int(rng.integers(len(refs)))]}

    def model_files(self) -> tuple[Path, Path | None, Path | None]:
        """Return (checkpoint, config or None, WavLM weights or None), each checked to exist locally."""
        model_dir = require_dir(self.name, self.model_dir, "model_dir")
        checkpoint = find_checkpoint(self.name, model_dir)
        config = None
        if self.model != "openvoice_v2":
            config = require_file(self.name, model_dir / "config.json", "model config")
            check_config_offline(self.name, config)
        wavlm = None
        if BACKBONES[self.model] == "wavlm-large":
            wavlm = require_file(self.name, self.wavlm_path, "WavLM-Large weights (config field wavlm_path)")
        return checkpoint, config, wavlm

    def apply(self, audio: np.ndarray, sr: int, *, model: str, backbone: str, reference: str) -> np.ndarray:
        """Return `audio` in the reference voice, at `sr`, same length."""
        audio = self.check_input(audio, sr)
        if model != self.model:
            raise InterventionError(f"{self.name}: params ask for {model!r}, the op loads {self.model!r}")
        ref = require_file(self.name, Path(self.reference_dir) / reference, "reference recording")
        checkpoint, config, wavlm = self.model_files()
        import_coqui(self.name)
        with tts_home_with_wavlm(wavlm), temp_wav(audio, sr) as src:
            try:
                y, out_sr = _convert(model, checkpoint, config, src, str(ref))
            except (RuntimeError, OSError, KeyError, ValueError) as exc:
                raise InterventionError(f"{self.name}: {model} from {checkpoint} failed: {exc}") from exc
        y = resample(np.asarray(y, dtype=np.float32).reshape(-1), out_sr, sr)
        y = y[: audio.size] if y.size >= audio.size else np.pad(y, (0, audio.size - y.size))
        return self.check_output(self.name, y)


def _convert(model: str, checkpoint: Path, config: Path | None, src: str, ref: str) -> tuple[np.ndarray, int]:
    """Return (converted audio, its rate) from coqui's own model classes (no model manager, no hub)."""
    import torch

    with torch.inference_mode():
        if model == "openvoice_v2":
            from TTS.vc.configs.openvoice_config import OpenVoiceConfig
            from TTS.vc.models.openvoice import OpenVoice

            vc = OpenVoice(OpenVoiceConfig())
            vc.load_checkpoint(vc.config, checkpoint, eval=True)
            return np.asarray(vc.voice_conversion(src, ref)), int(vc.config.audio["output_sample_rate"])
        from TTS.config import load_config
        from TTS.vc.models import setup_model

        cfg = load_config(str(config))
        vc = setup_model(cfg)
        vc.load_checkpoint(cfg, str(checkpoint), eval=True)
        out_sr = cfg.audio.get("output_sample_rate", cfg.audio.get("sample_rate"))
        return np.asarray(vc.voice_conversion(src, ref)), int(out_sr)
