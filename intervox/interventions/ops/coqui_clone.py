"""Voice-cloned TTS (XTTS v2, YourTTS) of a new text in the source utterance's voice; local files only.

Extra `coqui`. XTTS v2 weights are under the Coqui Public Model License (non-commercial), so the
op refuses to run XTTS unless the config says `accept_xtts_license: true`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from intervox.audio import resample
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError, InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.ops._coqui import (
    check_config_offline,
    find_checkpoint,
    import_coqui,
    require_dir,
    require_file,
    temp_wav,
)
from intervox.interventions.registry import register

MODELS = ("xtts_v2", "yourtts")


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
        """Return {model, text, lang}: a configured text other than the utterance's own."""
        pool = [t for t in self.texts if t.strip() != utt.text.strip()]
        if not pool:
            raise ConfigError(f"coqui_clone: no configured text differs from utterance {utt.id}'s "
                              "(set `texts`)")
        return {"model": self.model, "text": pool[int(rng.integers(len(pool)))], "lang": utt.language}

    def apply(self, audio: np.ndarray, sr: int, *, model: str, text: str, lang: str) -> np.ndarray:
        """Return `text` spoken in the voice of `audio` (the speaker reference), at `sr`."""
        audio = self.check_input(audio, sr)
        if model != self.model:
            raise InterventionError(f"{self.name}: params ask for {model!r}, the op loads {self.model!r}")
        model_dir = require_dir(self.name, self.model_dir, "model_dir")
        config = require_file(self.name, model_dir / "config.json", "model config")
        check_config_offline(self.name, config)
        checkpoint = find_checkpoint(self.name, model_dir)
        if model == "xtts_v2":
            require_file(self.name, model_dir / "vocab.json", "XTTS tokenizer vocabulary")
        import_coqui(self.name)
        from TTS.api import TTS

        with temp_wav(audio, sr) as ref:
            try:
                if model == "xtts_v2":
                    tts = TTS(model_path=str(model_dir), config_path=str(config), progress_bar=False)
                else:
                    tts = TTS(model_path=str(checkpoint), config_path=str(config), progress_bar=False)
                y = tts.tts(text=text, speaker_wav=ref, language=lang, split_sentences=False)
                out_sr = int(tts.synthesizer.output_sample_rate)
            except (RuntimeError, OSError, KeyError, ValueError) as exc:
                raise InterventionError(f"{self.name}: {model} from {model_dir} failed: {exc}") from exc
        return self.check_output(self.name, resample(np.asarray(y, dtype=np.float32), out_sr, sr))
