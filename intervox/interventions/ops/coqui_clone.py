"""Voice-cloned TTS (XTTS v2, YourTTS) of a new text in the source utterance's voice; local files only.

Extra `coqui`. XTTS v2 weights are under the Coqui Public Model License (non-commercial), so the
op refuses to run XTTS unless the config says `accept_xtts_license: true`.

Local files in model_dir (nothing is downloaded; a missing one is named):
  yourtts  config.json, model_file.pth, and the side files its config names: the speaker encoder
           (model_se.pth + config_se.json, needed to clone), speakers.json, language_ids.json.
           Paths in config.json may be the training machine's: they are re-pointed into model_dir.
  xtts_v2  config.json, model.pth, vocab.json (speakers_xtts.pth optional).
"""

from __future__ import annotations

import functools
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from intervox.audio import resample
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._coqui import (
    LOCK,
    check_config_offline,
    file_key,
    find_checkpoint,
    import_coqui,
    localize_config,
    read_config,
    require_dir,
    require_file,
    seeded,
    temp_wav,
    tts_home_with_wavlm,
)
from intervox.interventions.registry import register

MODELS = ("xtts_v2", "yourtts")
XTTS_RATE = 22050  # XTTS reads its references at 22.05 kHz (Xtts.get_conditioning_latents)


@register
@dataclass(frozen=True)
class CoquiClone(Intervention):
    """Speak another text in the utterance's voice, cloned from the utterance itself."""

    name: ClassVar[str] = "coqui_clone"
    target: ClassVar[Factor] = Factor.CONTENT
    keeps_timing: ClassVar[bool] = False

    model: str = "xtts_v2"  # "xtts_v2" | "yourtts"
    model_dir: str = ""  # local directory: config.json + checkpoint (XTTS: model.pth, vocab.json, ...)
    texts: tuple[str, ...] = ()  # new texts; one is drawn per utterance
    accept_xtts_license: bool = False  # XTTS v2 is CPML (non-commercial): opt in explicitly

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"coqui_clone.model must be one of {list(MODELS)}, got {self.model!r}")
        if self.model == "xtts_v2" and not self.accept_xtts_license:
            raise ConfigError(
                "coqui_clone: XTTS v2 weights are licensed under the Coqui Public Model License "
                "(non-commercial use only, https://coqui.ai/cpml). Set accept_xtts_license: true "
                "to confirm your use complies, or use model: yourtts.")

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        """Return {model, text, lang, seed}: a configured text other than the utterance's own.

        The seed fixes what the model samples (VITS noise, XTTS's token sampling).
        """
        pool = [t for t in self.texts if t.strip() != utt.text.strip()]
        if not pool:
            raise ConfigError(f"coqui_clone: no configured text differs from utterance {utt.id}'s "
                              "(set `texts`)")
        return {"model": self.model, "text": pool[int(rng.integers(len(pool)))], "lang": utt.language,
                "seed": int(rng.integers(2**31))}

    def model_files(self) -> tuple[Path, Path, dict]:
        """Return (checkpoint, config.json, config with side files re-pointed into model_dir), all checked."""
        model_dir = require_dir(self.name, self.model_dir, "model_dir")
        config_path = require_file(self.name, model_dir / "config.json", "model config")
        config = read_config(self.name, config_path)
        if self.model == "xtts_v2":
            check_config_offline(self.name, config_path, config)
            checkpoint = require_file(self.name, model_dir / "model.pth", "XTTS checkpoint")
            require_file(self.name, model_dir / "vocab.json", "XTTS tokenizer vocabulary")
            return checkpoint, config_path, config
        # YourTTS clones through its speaker encoder: without it coqui falls back to the stored speakers.
        # Side-file fields are re-pointed first (a released one may even name a URL), then checked.
        config = localize_config(self.name, model_dir, config,
                                 required=("speaker_encoder_model_path", "speaker_encoder_config_path"))
        check_config_offline(self.name, config_path, config)
        check_config_offline(self.name, Path(config["model_args"]["speaker_encoder_config_path"]))
        return find_checkpoint(self.name, model_dir), config_path, config

    def apply(self, audio: np.ndarray, sr: int, *, model: str, text: str, lang: str, seed: int) -> np.ndarray:
        """Return `text` spoken in the voice of `audio` (the speaker reference), at `sr`."""
        audio = self.check_input(audio, sr)
        if model != self.model:
            raise InterventionError(f"{self.name}: params ask for {model!r}, the op loads {self.model!r}")
        checkpoint, config_path, config = self.model_files()
        import_coqui(self.name)
        try:
            with LOCK:
                tts = _load(model, file_key(checkpoint, config_path), checkpoint, json.dumps(config))
                with seeded(seed):
                    if model == "xtts_v2":
                        y, out_sr = _speak_xtts(tts, audio, sr, text, _language(tts.config.languages, lang))
                    else:
                        languages = tts.tts_model.language_manager.language_names
                        # speaker_name=None: a name would make coqui cache the voice in model_dir/voices.
                        with temp_wav(audio, sr) as ref:  # coqui's speaker encoder reads a file
                            y = tts.tts(text=text, speaker_name=None, speaker_wav=ref, split_sentences=False,
                                        language_name=_language(languages, lang))
                        out_sr = tts.output_sample_rate
        except (RuntimeError, OSError, KeyError, ValueError, AssertionError) as exc:
            raise InterventionError(f"{self.name}: {model} from {self.model_dir} failed: {exc}") from exc
        return self.check_output(self.name, resample(np.asarray(y, dtype=np.float32), int(out_sr), sr))


def _language(languages: list[str], lang: str) -> str:
    """Return the model's name for `lang` ("fr" -> "fr-fr" in YourTTS, "zh" -> "zh-cn" in XTTS)."""
    if lang in languages:
        return lang
    for name in languages:
        if name.split("-")[0] == lang.split("-")[0]:
            return name
    raise ValueError(f"the model has no language {lang!r} (it has {', '.join(languages)})")


@functools.lru_cache(maxsize=1)
def _load(model: str, key: tuple, checkpoint: Path, config_json: str) -> Any:
    """Return the loaded model (cached per process); `key` has the files' mtimes."""
    with tts_home_with_wavlm(None), tempfile.TemporaryDirectory(prefix="intervox-coqui-") as d:
        # $TTS_HOME in a temp dir: nothing coqui caches lands in the user's home.
        config = Path(d) / "config.json"
        config.write_text(config_json, encoding="utf-8")
        if model == "xtts_v2":
            from TTS.config import load_config
            from TTS.tts.models.xtts import Xtts

            cfg = load_config(str(config))
            xtts = Xtts(cfg)
            xtts.load_checkpoint(cfg, checkpoint_dir=checkpoint.parent, checkpoint_path=checkpoint, eval=True)
            return xtts
        from TTS.utils.synthesizer import Synthesizer

        return Synthesizer(tts_checkpoint=str(checkpoint), tts_config_path=str(config))


def _speak_xtts(xtts: Any, audio: np.ndarray, sr: int, text: str, lang: str) -> tuple[np.ndarray, int]:
    """Return (speech, rate) from XTTS conditioned on `audio` in memory.

    Xtts.get_conditioning_latents would load the reference with torchaudio.load, which needs
    FFmpeg (torchcodec); the same steps on the array need nothing beyond torch.
    """
    import torch

    cfg = xtts.config
    ref = torch.from_numpy(resample(audio, sr, XTTS_RATE))[None, : XTTS_RATE * cfg.max_ref_len]
    if cfg.sound_norm_refs:
        ref = ref / ref.abs().max() * 0.75
    speaker = xtts.get_speaker_embedding(ref, XTTS_RATE)
    latents = xtts.get_gpt_cond_latents(ref, XTTS_RATE, length=cfg.gpt_cond_len,
                                        chunk_length=cfg.gpt_cond_chunk_len)
    out = xtts.inference(text, lang, latents, speaker, temperature=cfg.temperature,
                         length_penalty=cfg.length_penalty, repetition_penalty=cfg.repetition_penalty,
                         top_k=cfg.top_k, top_p=cfg.top_p)
    return np.asarray(out["wav"]), int(cfg.audio.output_sample_rate)
