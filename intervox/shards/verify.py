"""Verify a shard folder: every tar against its sidecar, every clip decodable, every JSON complete.

Works on audio shards (`KEY.flac` + `KEY.json`) and feature shards (`KEY.json` +
`KEY.pooled.npy`, optionally `KEY.frames.npy`). Each problem names the shard (and key).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.errors import ShardError
from intervox.shards.read import AUDIO_EXTS, decode_sample, iter_tar_samples, list_shards
from intervox.shards.write import file_sha256, read_sidecar

REQUIRED_FIELDS = ("key", "speaker", "content", "channel", "split")
AUDIO_FIELDS = ("sr", "duration")
FEATURE_FIELDS = ("upstream",)


@dataclass
class VerifyReport:
    """Result of verifying a folder: shards and clips checked, and every problem found."""

    directory: str
    shards: int = 0
    clips: int = 0
    kinds: Counter = field(default_factory=Counter)  # "audio" / "feature" clips
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.shards > 0

    def summary(self) -> str:
        """Return a one-line summary."""
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items())) or "no clips"
        state = "OK" if self.ok else f"{len(self.problems)} problem(s)"
        return f"{self.directory}: {self.shards} shards, {self.clips} clips ({kinds}): {state}"


def check_clip(sample: dict, shard: str) -> tuple[str, list[str]]:
    """Return (kind, problems) of one raw sample: decodes it and checks its JSON fields."""
    key = sample.get("__key__", "?")
    where = f"{shard}: {key}"
    try:
        clip = decode_sample(sample)
    except ShardError as exc:
        return "?", [str(exc)]
    meta = clip.get("json")
    if not isinstance(meta, dict):
        return "?", [f"{where}: no JSON member (or it is not an object)"]
    audio_ext = next((e for e in clip if e in AUDIO_EXTS), None)
    kind = "audio" if audio_ext else ("feature" if "pooled.npy" in clip else "?")
    problems = []
    if kind == "?":
        problems.append(f"{where}: neither audio (.flac/.wav) nor features (.pooled.npy)")
    required = REQUIRED_FIELDS + (
        AUDIO_FIELDS if kind == "audio" else FEATURE_FIELDS if kind == "feature" else ()
    )
    missing = [f for f in required if f not in meta]
    if missing:
        problems.append(f"{where}: JSON lacks required field(s) {', '.join(missing)}")
    if meta.get("key") not in (None, key):
        problems.append(f"{where}: JSON key {meta.get('key')!r} differs from the member key")
    if kind == "audio":
        audio, sr = clip[audio_ext]
        if audio.size == 0 or not np.all(np.isfinite(audio)):
            problems.append(f"{where}: audio is empty or non-finite")
        if "sr" in meta and meta["sr"] != sr:
            problems.append(f"{where}: JSON sr {meta['sr']} but audio is {sr} Hz")
        if isinstance(meta.get("duration"), (int, float)) and abs(audio.size / sr - meta["duration"]) > 1e-3:
            problems.append(
                f"{where}: JSON duration {meta['duration']} but audio lasts {audio.size / sr:.4f} s"
            )
    elif kind == "feature":
        pooled = clip["pooled.npy"]
        if pooled.ndim != 2 or not np.all(np.isfinite(pooled.astype(np.float32))):
            problems.append(
                f"{where}: pooled.npy must be a finite [layers + 1, hidden] array, got shape {pooled.shape}"
            )
    return kind, problems


def verify_shard(path: str | Path, report: VerifyReport) -> None:
    """Check one tar (sidecar, bytes, members, clips) and add what it finds to `report`."""
    path = Path(path)
    shard = path.name
    report.shards += 1
    info = read_sidecar(path)
    if info is None:
        report.problems.append(f"{shard}: sidecar {path.name[:-4]}.json missing or unreadable")
    else:
        size = path.stat().st_size
        if size != info.bytes:
            report.problems.append(f"{shard}: size {size} bytes but the sidecar says {info.bytes}")
        elif file_sha256(path) != info.sha256:
            report.problems.append(f"{shard}: sha256 differs from the sidecar (bytes changed)")
    count = 0
    try:
        for sample in iter_tar_samples(path):
            count += 1
            kind, problems = check_clip(sample, shard)
            report.kinds[kind] += 1
            report.problems.extend(problems)
    except ShardError as exc:
        report.problems.append(f"{shard}: {exc}")
        return
    report.clips += count
    if info is not None and info.count != count:
        report.problems.append(f"{shard}: {count} clips but the sidecar says {info.count}")


def verify_dir(directory: str | Path) -> VerifyReport:
    """Return the VerifyReport of every shard in `directory` (and of index.json when present)."""
    directory = Path(directory)
    report = VerifyReport(str(directory))
    if not directory.is_dir():
        report.problems.append(f"{directory}: not a directory")
        return report
    shards = list_shards(directory)
    if not shards:
        report.problems.append(f"{directory}: no *.tar shards")
    for path in shards:
        verify_shard(path, report)
    _check_index(directory, {p.name for p in shards}, report)
    return report


def _check_index(directory: Path, present: set[str], report: VerifyReport) -> None:
    """Add problems where index.json lists shards that are missing or whose sha256 disagrees."""
    path = directory / "index.json"
    if not path.is_file():
        return
    try:
        index = json.loads(path.read_text())
    except ValueError as exc:
        report.problems.append(f"index.json: not valid JSON ({exc.args[0]})")
        return
    for entry in index.get("shards", []):
        if not isinstance(entry, dict) or "shard" not in entry:
            continue
        name = entry["shard"]
        if name not in present:
            report.problems.append(f"{name}: listed in index.json but missing")
            continue
        info = read_sidecar(directory / name)
        if info is not None and entry.get("sha256") not in (None, info.sha256):
            report.problems.append(f"{name}: index.json sha256 differs from the sidecar")
