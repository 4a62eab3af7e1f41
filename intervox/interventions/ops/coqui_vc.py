"""Neural voice conversion through coqui-tts (FreeVC, kNN-VC, OpenVoice v2) from local files only.

Extra `coqui`. The converted clip keeps the words and takes the voice of a reference recording.
FreeVC and kNN-VC are built on WavLM-Large features: a WavLM upstream may find that shortcut,
so the backbone is recorded in the params (and so in every clip's JSON).

Local files per model (nothing is downloaded; a missing one is named):
  openvoice_v2  model_dir: checkpoint.pth + OpenVoice's own config.json (data.sampling_rate, ...)
  freevc        model_dir: coqui config.json + model.pth; wavlm_path; speaker_encoder_path when
                the config sets model_args.use_spk (coqui would fetch that encoder from a URL)
  knnvc         wavlm_path; vocoder_dir: the WavLM HiFi-GAN (coqui's wavlm-hifigan_prematched,
                config.json + model.pth); model_dir optional (coqui's KNNVCConfig when empty)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from intervox.audio import load_audio, resample
from intervox.corpora.manifest import Utterance
from intervox.errors import AudioError, InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._coqui import (
    LOCK,
    check_config_offline,
    file_key,
    find_checkpoint,
    import_coqui,
    load_weights,
    require_dir,
    require_file,
    seeded,
    tts_home_with_wavlm,
)
from intervox.interventions.registry import register
from intervox.interventions.signal import fit_length, list_audio_files

# Model -> the self-supervised features it converts through (a shortcut for a matching upstream).
BACKBONES = {"freevc": "wavlm-large", "knnvc": "wavlm-large", "openvoice_v2": "linear-spectrogram (no SSL)"}
FREEVC_SPK_URL_AT = "TTS/vc/models/freevc.py, FreeVC.load_pretrained_speaker_encoder"


@dataclass(frozen=True)
class VCFiles:
    """The local files one model needs, each checked to exist (None: that model does not use it)."""

    checkpoint: Path | None
    config: Path | None
    wavlm: Path | None = None
    speaker_encoder: Path | None = None
    vocoder_checkpoint: Path | None = None
    vocoder_config: Path | None = None


@register
@dataclass(frozen=True)
class CoquiVC(Intervention):
    """Convert the utterance to the voice of a reference file drawn from `reference_dir`."""

    name: ClassVar[str] = "coqui_vc"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = True  # these models convert frame by frame
    # The reference (and the model) decide the output voice; the flow's noise seed is drawn per clip.
    voice_params: ClassVar[tuple[str, ...]] = ("model", "backbone", "reference")

    model: str = "freevc"  # "freevc" | "knnvc" | "openvoice_v2"
    model_dir: str = ""  # local directory: config.json + checkpoint (.pth); optional for knnvc
    wavlm_path: str = ""  # local WavLM-Large.pt (freevc, knnvc)
    reference_dir: str = ""  # target-voice recordings; one is drawn per utterance
    speaker_encoder_path: str = ""  # freevc with use_spk: local copy of coqui's speaker_encoder.pt
    vocoder_dir: str = ""  # knnvc: local WavLM HiFi-GAN (config.json + checkpoint)

    def __post_init__(self) -> None:
        if self.model not in BACKBONES:
            raise ValueError(f"coqui_vc.model must be one of {list(BACKBONES)}, got {self.model!r}")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {model, backbone, reference, seed}: reference is relative to reference_dir.

        The seed fixes the noise FreeVC and OpenVoice sample inside their flows.
        """
        refs = list_audio_files(self.reference_dir, "coqui_vc.reference_dir")
        return {"model": self.model, "backbone": BACKBONES[self.model],
                "reference": refs[int(rng.integers(len(refs)))], "seed": int(rng.integers(2**31))}

    def output_speaker(self, params: dict) -> str:
        """Return the reference speaker the clip is converted to: `ref:<folder>` for a per-speaker
        folder layout (`spk/x.wav`), else `ref:<file stem>`."""
        ref = Path(params["reference"])
        return f"ref:{ref.parts[0] if len(ref.parts) > 1 else ref.stem}"

    def model_files(self) -> VCFiles:
        """Return the local files `model` needs, each checked to exist and to name no URL."""
        files, cfg = VCFiles(None, None), {}
        if self.model_dir or self.model != "knnvc":
            model_dir = require_dir(self.name, self.model_dir, "model_dir")
            # OpenVoice.load_checkpoint reads its original config.json next to the checkpoint.
            config = require_file(self.name, model_dir / "config.json", "model config")
            cfg = check_config_offline(self.name, config)
            if self.model == "openvoice_v2":
                _openvoice_audio(self.name, config, cfg)
            # kNN-VC has no weights of its own (coqui's KNNVC.load_checkpoint is a no-op).
            checkpoint = None if self.model == "knnvc" else find_checkpoint(self.name, model_dir)
            files = VCFiles(checkpoint, config)
        if BACKBONES[self.model] == "wavlm-large":
            files = replace(files, wavlm=require_file(self.name, self.wavlm_path,
                                                      "WavLM-Large weights (config field wavlm_path)"))
        if self.model == "freevc" and cfg.get("model_args", {}).get("use_spk"):
            if not self.speaker_encoder_path:
                raise InterventionError(
                    f"{self.name}: {files.config} sets model_args.use_spk, so FreeVC needs its pretrained "
                    f"speaker encoder, which coqui downloads ({FREEVC_SPK_URL_AT}); download "
                    "speaker_encoder.pt yourself and set speaker_encoder_path to it")
            spk = require_file(self.name, self.speaker_encoder_path,
                               "FreeVC speaker encoder (config field speaker_encoder_path)")
            files = replace(files, speaker_encoder=spk)
        if self.model == "knnvc":
            vdir = require_dir(self.name, self.vocoder_dir, "vocoder_dir")
            vconfig = require_file(self.name, vdir / "config.json", "vocoder config")
            check_config_offline(self.name, vconfig)
            vcheckpoint = find_checkpoint(self.name, vdir)
            files = replace(files, vocoder_config=vconfig, vocoder_checkpoint=vcheckpoint)
        return files

    def apply(self, audio: np.ndarray, sr: int, *, model: str, backbone: str, reference: str,
              seed: int) -> np.ndarray:
        """Return `audio` in the reference voice, at `sr`, same length."""
        audio = self.check_input(audio, sr)
        if model != self.model:
            raise InterventionError(f"{self.name}: params ask for {model!r}, the op loads {self.model!r}")
        ref_path = require_file(self.name, Path(self.reference_dir) / reference, "reference recording")
        files = self.model_files()
        import_coqui(self.name)
        try:
            with LOCK:
                loaded = _load(model, file_key(*files.__dict__.values()), files)
                ref, _ = load_audio(ref_path, loaded.in_sr)
                with seeded(seed):
                    y = _convert(loaded, resample(audio, sr, loaded.in_sr), ref)
        except AudioError as exc:
            raise InterventionError(f"{self.name}: reference recording unusable: {exc}") from exc
        except (RuntimeError, OSError, KeyError, ValueError) as exc:
            where = self.model_dir or self.vocoder_dir
            raise InterventionError(f"{self.name}: {model} from {where} failed: {exc}") from exc
        return self.check_output(self.name, fit_length(resample(y, loaded.out_sr, sr), audio.size))


class Loaded(NamedTuple):
    """A loaded model with its rates (and kNN-VC's vocoder: coqui pairs them in its Synthesizer)."""

    vc: Any
    in_sr: int
    out_sr: int
    vocoder: Any = None


def _openvoice_audio(op: str, config: Path, cfg: dict) -> dict:
    """Return OpenVoice's data section; InterventionError when `config` is not OpenVoice's own format."""
    data = cfg.get("data", {})
    missing = [k for k in ("sampling_rate", "filter_length", "hop_length", "win_length") if k not in data]
    if missing:
        raise InterventionError(f"{op}: {config} is not OpenVoice's original config.json "
                                f"(no data.{missing[0]}); use the one shipped with the checkpoint")
    return data


@functools.lru_cache(maxsize=1)
def _load(model: str, key: tuple, files: VCFiles) -> Loaded:
    """Return the loaded model (cached: WavLM-Large alone takes seconds to load); `key` has the mtimes."""
    with tts_home_with_wavlm(files.wavlm):  # WavLM is built inside the model constructors
        if model == "openvoice_v2":
            vc = _load_openvoice(files)
            return Loaded(vc, vc.config.audio.input_sample_rate, vc.config.audio.output_sample_rate)
        from TTS.config import load_config

        if model == "freevc":
            cfg = load_config(str(files.config))
            vc = _freevc_class(files.speaker_encoder)(cfg)
            # The checkpoint may or may not carry the WavLM and speaker-encoder weights.
            load_weights(CoquiVC.name, vc, files.checkpoint, from_files=("wavlm.", "enc_spk_ex."))
            return Loaded(vc.eval(), cfg.audio.input_sample_rate, cfg.audio.output_sample_rate)
        from TTS.vc.configs.knnvc_config import KNNVCConfig
        from TTS.vc.models.knnvc import KNNVC
        from TTS.vocoder.models import setup_model as setup_vocoder

        cfg = load_config(str(files.config)) if files.config else KNNVCConfig()
        vcfg = load_config(str(files.vocoder_config))
        vocoder = setup_vocoder(vcfg)
        vocoder.load_checkpoint(vcfg, str(files.vocoder_checkpoint), eval=True)
        return Loaded(KNNVC(cfg).eval(), cfg.audio.sample_rate, vcfg.audio["sample_rate"], vocoder)


def _load_openvoice(files: VCFiles) -> Any:
    """Build OpenVoice with the architecture and audio settings of its original config.json.

    coqui builds OpenVoiceConfig() defaults and only then reads the audio fields, so a config
    whose filter_length or layer sizes differ from the defaults would not load; we map both first.
    """
    from TTS.vc.configs.openvoice_config import OpenVoiceConfig
    from TTS.vc.models.openvoice import OpenVoice

    org = check_config_offline(CoquiVC.name, files.config)
    data = _openvoice_audio(CoquiVC.name, files.config, org)
    cfg = OpenVoiceConfig()
    cfg.audio.input_sample_rate = cfg.audio.output_sample_rate = data["sampling_rate"]
    cfg.audio.fft_size, cfg.audio.hop_length = data["filter_length"], data["hop_length"]
    cfg.audio.win_length = data["win_length"]
    for k, v in org.get("model", {}).items():
        if k in cfg.model_args:
            cfg.model_args[k] = v
    vc = OpenVoice(cfg)
    vc.load_checkpoint(cfg, files.checkpoint, eval=True)  # reads config.json beside it again
    return vc


def _freevc_class(speaker_encoder: Path | None) -> type:
    """Return FreeVC whose pretrained speaker encoder (use_spk) comes from the local file, not the URL."""
    from TTS.vc.layers.freevc.speaker_encoder.speaker_encoder import SpeakerEncoder
    from TTS.vc.models.freevc import FreeVC

    class LocalFreeVC(FreeVC):
        def load_pretrained_speaker_encoder(self) -> None:
            import torch

            # coqui's SpeakerEncoder loads non-strictly: check the file really is that encoder.
            state = torch.load(speaker_encoder, map_location="cpu", weights_only=True)
            if "lstm.weight_ih_l0" not in state.get("model_state", {}):
                raise ValueError(f"{speaker_encoder} is not FreeVC's speaker encoder (no model_state.lstm)")
            self.enc_spk_ex = SpeakerEncoder(str(speaker_encoder))

    return LocalFreeVC


def _convert(loaded: Loaded, src: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Return the converted audio at `loaded.out_sr`; audio goes in as tensors at `loaded.in_sr`.

    Each model's voice_conversion(src, tgt) takes `tgt` as a LIST of references (a bare string
    would be iterated per character); tensors also skip torchaudio.load, which needs FFmpeg.
    """
    import torch

    y = loaded.vc.voice_conversion(torch.from_numpy(src), [torch.from_numpy(ref)])
    if loaded.vocoder is not None:  # kNN-VC returns matched WavLM features (1, frames, dim)
        y = loaded.vocoder.inference(y)  # as coqui's Synthesizer.voice_conversion does
    if isinstance(y, torch.Tensor):
        y = y.cpu().numpy()
    return np.asarray(y, dtype=np.float32).reshape(-1)
