"""The one manifest format: JSONL, one `Utterance` a line.

Every corpus adapter and the synthetic grid write this; every later stage reads it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from intervox.errors import ManifestError

REQUIRED = ("id", "audio", "speaker", "text", "language", "corpus")


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
    if not path.is_file():
        raise ManifestError(f"{path}: manifest does not exist")
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
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
    """Return a list of problems in a manifest (empty when valid): fields, duplicates, missing files."""
    path = Path(path)
    problems: list[str] = []
    try:
        for utt in iter_manifest(path):
            if check_audio and not utt.resolve_audio(path.parent).is_file():
                problems.append(f"{path}: {utt.id}: audio file {utt.audio} does not exist")
    except ManifestError as exc:
        problems.append(str(exc))
    return problems
