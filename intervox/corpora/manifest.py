"""The one manifest format: JSONL, one `Utterance` a line.

Every corpus adapter and the synthetic grid write this; every later stage reads it.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from intervox.errors import AudioError, ManifestError

REQUIRED = ("id", "audio", "speaker", "text", "language", "corpus")


def path_problem(path: Path, what: str, *, directory: bool = False) -> str | None:
    """Return why `path` is not a usable file (or directory), naming it, or None when it is.

    Tells a symlink loop, a broken symlink and a path of the wrong kind from a plain
    missing path: "does not exist" alone sends a user looking in the wrong place.
    """
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{path}: {what} is a symlink loop"
        if os.path.islink(path):
            return f"{path}: {what} is a broken symlink (to {os.readlink(path)})"
        if exc.errno == errno.EACCES:
            return f"{path}: {what} is not accessible (permission denied)"
        return f"{path}: {what} does not exist"
    if directory and not Path(path).is_dir():
        return f"{path}: {what} is not a directory"
    if not directory and not Path(path).is_file():
        return f"{path}: {what} is not a regular file" + (" (a directory)" if Path(path).is_dir() else "")
    return None


@dataclass(frozen=True)
class AudioHeader:
    """What a file's header says: sample rate, frame count, channels, duration in seconds."""

    sample_rate: int
    frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def audio_header(path: Path) -> AudioHeader:
    """Return the header of an audio file; AudioError names the file when missing, unreadable or empty."""
    problem = path_problem(Path(path), "audio file")
    if problem:
        raise AudioError(problem)
    if Path(path).stat().st_size == 0:
        raise AudioError(f"{path}: audio file is empty (0 bytes)")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        # libsndfile's message can run over several lines (mpg123 notes); keep the first.
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AudioError(f"{path}: not readable as audio ({first})") from exc
    if info.samplerate <= 0 or info.frames <= 0:
        raise AudioError(f"{path}: audio header reports no samples "
                         f"({info.frames} frames at {info.samplerate} Hz)")
    return AudioHeader(sample_rate=int(info.samplerate), frames=int(info.frames), channels=int(info.channels))


@dataclass(frozen=True)
class Utterance:
    """One source utterance: where its audio is and what it says, and who says it."""

    id: str
    audio: str  # path to the audio file, absolute or relative to the manifest's folder
    speaker: str
    text: str
    language: str
    corpus: str
    sample_rate: int | None = None
    offset: float = 0.0
    duration: float | None = None
    gender: str | None = None  # "m", "f" or None when unknown
    content_id: str | None = None  # sentence identity; utterances with equal ids say the same words
    split: str | None = None  # train / validation / test_ood / keywords / ...
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Return the JSON-ready dict of this utterance (None fields dropped)."""
        d = dataclasses.asdict(self)
        return {k: v for k, v in d.items() if v is not None and v != {}}

    @classmethod
    def from_dict(cls, d: dict, where: str = "<dict>") -> Utterance:
        """Return an Utterance from a manifest dict; ManifestError names `where` and the field."""
        missing = [k for k in REQUIRED if k not in d or d[k] in (None, "")]
        if missing:
            raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        data = {k: v for k, v in d.items() if k in known}
        if unknown:
            data["extra"] = {**d.get("extra", {}), **{k: d[k] for k in unknown}}
        try:
            return cls(**data)
        except TypeError as exc:
            raise ManifestError(f"{where}: {exc}") from exc

    def resolve_audio(self, base: Path) -> Path:
        """Return the audio path, resolved against the manifest folder `base` when relative."""
        p = Path(self.audio)
        return p if p.is_absolute() else base / p


def write_manifest(utterances: Iterable[Utterance], path: str | Path) -> int:
    """Write utterances as JSONL (atomically) and return how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    n = 0
    with tmp.open("w", encoding="utf-8") as f:
        for utt in utterances:
            f.write(json.dumps(utt.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    tmp.replace(path)
    return n


def iter_manifest(path: str | Path) -> Iterator[Utterance]:
    """Yield utterances of a JSONL manifest; ManifestError names the file and line on bad input."""
    path = Path(path)
    problem = path_problem(path, "manifest")
    if problem:
        raise ManifestError(problem)
    seen: set[str] = set()
    with path.open(encoding="utf-8-sig") as f:  # -sig: a BOM (Windows editors) is not part of line 1
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from exc
            if not isinstance(d, dict):
                raise ManifestError(f"{where}: line is not a JSON object")
            utt = Utterance.from_dict(d, where)
            if utt.id in seen:
                raise ManifestError(f"{where}: duplicate id '{utt.id}'")
            seen.add(utt.id)
            yield utt


def read_manifest(path: str | Path) -> list[Utterance]:
    """Return all utterances of a JSONL manifest (see iter_manifest for errors)."""
    return list(iter_manifest(path))


def validate_manifest(path: str | Path, *, check_audio: bool = True) -> list[str]:
    """Return a list of problems in a manifest (empty when valid): fields, duplicates, and audio
    files that are missing, empty (0 bytes) or not readable as audio (e.g. text named .wav)."""
    path = Path(path)
    problems: list[str] = []
    try:
        for utt in iter_manifest(path):
            if check_audio:
                try:
                    audio_header(utt.resolve_audio(path.parent))
                except AudioError as exc:
                    problems.append(f"{path}: {utt.id}: {exc}")
    except ManifestError as exc:
        problems.append(str(exc))
    return problems
