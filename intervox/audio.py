"""Audio I/O: load any file soundfile reads to mono float32 at a target rate, encode FLAC.

Every error names the file (or item) and the problem, so that a quarantine report or a
CLI message tells the user exactly what to fix.
"""

from __future__ import annotations

import io
import os
import threading
import wave
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from intervox.errors import AudioError

# Below this peak level a clip is treated as silent (about -90 dBFS: below 16-bit dither).
SILENCE_PEAK = 3e-5


def check_audio(audio: np.ndarray, sr: int, name: str, *, min_seconds: float = 0.0) -> np.ndarray:
    """Return `audio` as a 1-D float32 array after checking it is usable; raise AudioError naming `name`."""
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise AudioError(f"{name}: expected mono 1-D audio, got shape {audio.shape}")
    if audio.size == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{name}: audio contains NaN or Inf samples")
    if float(np.max(np.abs(audio))) < SILENCE_PEAK:
        raise AudioError(f"{name}: audio is silent (all samples below {SILENCE_PEAK:g})")
    if sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {sr}")
    if audio.size < min_seconds * sr:
        raise AudioError(f"{name}: audio is too short ({audio.size / sr:.3f} s < {min_seconds} s)")
    return audio.astype(np.float32, copy=False)


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Return the channel mean of a [frames, channels] array (1-D input passes through)."""
    if audio.ndim != 2:
        return audio
    return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1)  # one channel: no mean pass


def resample(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    """Return `audio` resampled from `sr` to `target_sr` with soxr (high quality)."""
    if sr == target_sr:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio.astype(np.float32, copy=False), sr, target_sr, quality="HQ").astype(np.float32)


def _wav_truncation(path: Path) -> str | None:
    """Return a message if a RIFF/WAVE file's data chunk promises more bytes than the file has.

    libsndfile quietly clamps a truncated WAV to what is there, so check the header ourselves.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk = f.read(8)
            cid, csize = chunk[:4], int.from_bytes(chunk[4:8], "little")
            if cid == b"data":
                if csize != 0xFFFFFFFF and pos + 8 + csize > size:
                    return f"truncated (data chunk promises {csize} bytes, file has {size - pos - 8})"
                return None
            pos += 8 + csize + (csize & 1)
    return None


# libsndfile's SF_COUNT_MAX: the header does not give the length (a FLAC written to a pipe leaves
# STREAMINFO's total samples at 0); soundfile would then try to allocate that many frames.
UNKNOWN_FRAMES = 2**63 - 1
UNKNOWN_LENGTH = ("the header does not give the length (a FLAC written to a pipe?): re-encode it to a "
                  "file, e.g. `sox in.flac out.flac`")


def _read_all(f: sf.SoundFile) -> np.ndarray:
    """Return every frame of `f` as float32 [n, channels]; ValueError when the header has no length."""
    if f.frames == UNKNOWN_FRAMES:
        raise ValueError(UNKNOWN_LENGTH)
    return f.read(dtype="float32", always_2d=True)


def load_audio(
    path: str | Path,
    target_sr: int | None = None,
    *,
    offset: float = 0.0,
    duration: float | None = None,
    min_seconds: float = 0.0,
) -> tuple[np.ndarray, int]:
    """Load `path` as mono float32, resampled to `target_sr` if given; return (audio, sr).

    Raises AudioError naming the file when it is missing, unreadable, truncated, empty,
    silent or contains non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file does not exist")
    problem = _wav_truncation(path)
    if problem:
        raise AudioError(f"{path}: {problem}")
    try:
        with sf.SoundFile(str(path)) as f:
            sr = f.samplerate
            start = int(round(offset * sr))
            frames = -1 if duration is None else int(round(duration * sr))
            if start:
                f.seek(start)
            audio = _read_all(f) if frames < 0 else f.read(frames=frames, dtype="float32", always_2d=True)
            expected = f.frames - start if duration is None else min(frames, f.frames - start)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{path}: not readable as audio ({exc})") from exc
    if audio.shape[0] < expected:
        raise AudioError(f"{path}: truncated (header says {expected} frames, read {audio.shape[0]})")
    audio = check_audio(to_mono(audio), sr, str(path), min_seconds=min_seconds)
    if target_sr is not None and target_sr != sr:
        audio, sr = resample(audio, sr, target_sr), target_sr
    return audio, sr


def encode_flac(audio: np.ndarray, sr: int) -> bytes:
    """Return 16-bit FLAC bytes of mono `audio`; the same input always gives the same bytes."""
    return encode_audio(audio, sr, "flac")


def encode_audio(audio: np.ndarray, sr: int, audio_format: str = "flac") -> bytes:
    """Return 16-bit `audio_format` ("flac" or "wav": PCM) bytes of mono `audio`, reproducibly."""
    if audio_format not in ("flac", "wav"):
        raise AudioError(f"cannot encode audio as {audio_format!r}: flac or wav")
    buf = io.BytesIO()
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if audio_format == "wav":  # libsndfile's FLAC writer scales by 32768 and its WAV writer by 32767:
        # quantize as FLAC does, so both formats hold the same samples
        clipped = np.clip(np.round(clipped * 32768.0), -32768, 32767).astype(np.int16)
    sf.write(buf, clipped, sr, format=audio_format.upper(), subtype="PCM_16")
    return buf.getvalue()


class _ClipFile:
    """The in-memory file (Linux memfd) one thread of one process decodes clip bytes from."""

    def __init__(self) -> None:
        self.pid, self.fd = os.getpid(), os.memfd_create("intervox-clip", os.MFD_CLOEXEC)

    def __del__(self) -> None:  # the thread ended (or a forked child replaced its inherited copy)
        try:
            os.close(self.fd)
        except OSError:
            pass


_CLIP_FILE = threading.local()


def _read_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """Return (audio [frames, channels] float32, sr) of encoded bytes.

    Through an in-memory file descriptor (Linux memfd) libsndfile reads natively; soundfile's
    virtual I/O on a BytesIO calls back into Python for every block: ~20% slower per short clip.
    The descriptor is per thread and per process (a forked DataLoader worker must not share it).
    """
    if not hasattr(os, "memfd_create"):
        with sf.SoundFile(io.BytesIO(data)) as f:
            return _read_all(f), f.samplerate
    clip = getattr(_CLIP_FILE, "file", None)
    if clip is None or clip.pid != os.getpid():
        clip = _CLIP_FILE.file = _ClipFile()
    fd = clip.fd
    os.pwrite(fd, data, 0)  # over the last clip's pages, then cut to size: freeing and zeroing
    os.ftruncate(fd, len(data))  # them for every clip (truncate to 0 first) cost ~4% of a decode
    os.lseek(fd, 0, os.SEEK_SET)
    with sf.SoundFile(fd, closefd=False) as f:
        return _read_all(f), f.samplerate


def _read_pcm16_wav(data: bytes) -> tuple[np.ndarray, int] | None:
    """Return (audio [frames, channels] float32, sr) of 16-bit PCM WAV bytes, None for anything else.

    16-bit PCM needs no decoder: the samples are the data chunk, scaled by 1/32768 as libsndfile does.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as w:
            if w.getsampwidth() != 2:
                return None
            frames, channels, sr = w.readframes(w.getnframes()), w.getnchannels(), w.getframerate()
    except (wave.Error, EOFError):
        return None  # not plain PCM (or damaged): libsndfile decides
    if len(frames) != 2 * channels * (len(frames) // (2 * channels)) or not frames:
        return None
    pcm = np.frombuffer(frames, dtype="<i2").reshape(-1, channels)
    return pcm.astype(np.float32) * np.float32(1 / 32768), sr


def decode_audio_bytes(data: bytes, name: str) -> tuple[np.ndarray, int]:
    """Decode FLAC/WAV bytes to (mono float32, sr); raise AudioError naming `name` on failure."""
    try:
        audio, sr = _read_pcm16_wav(data) or _read_bytes(data)
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise AudioError(f"{name}: audio bytes not decodable ({exc})") from exc
    return to_mono(audio), sr


def frame_powers(audio: np.ndarray, hop: int) -> np.ndarray:
    """Return the mean power (float64) of each whole `hop`-sample frame of `audio` (the tail dropped)."""
    n = audio.size // hop
    x = np.asarray(audio[: n * hop], dtype=np.float64).reshape(n, hop)
    return np.einsum("ij,ij->i", x, x) / hop  # no x**2 temporary: 3x faster than np.square(x).mean(1)


def trim_silence(audio: np.ndarray, sr: int, *, top_db: float = 40.0, margin_s: float = 0.05) -> np.ndarray:
    """Return `audio` without its leading and trailing silence, `margin_s` of it kept each side.

    Silence is every 10 ms frame whose energy is more than `top_db` below the clip's loudest
    frame (librosa.effects.trim's rule, with plain frames). Pauses inside the clip stay. A clip
    with no frame above the rule (or shorter than a frame) comes back unchanged.
    """
    hop = max(1, sr // 100)
    n = audio.size // hop
    if n == 0:
        return audio
    energy = 10.0 * np.log10(frame_powers(audio, hop) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - top_db)
    margin = int(round(margin_s * sr))
    start = max(0, loud[0] * hop - margin)
    stop = audio.size if loud[-1] == n - 1 else min(audio.size, (loud[-1] + 1) * hop + margin)
    return audio[start:stop]  # a loud last frame keeps the tail shorter than a frame


def peak_normalize(audio: np.ndarray, peak: float = 0.9) -> np.ndarray:
    """Return `audio` scaled so its absolute peak is `peak` (no-op on silence)."""
    m = float(np.max(np.abs(audio))) if audio.size else 0.0
    return audio if m < SILENCE_PEAK else (audio * (peak / m)).astype(np.float32)
