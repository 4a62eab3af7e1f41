"""Verify a shard folder: every tar against its sidecar, every clip decodable, every JSON complete,
and the folder against its index.json.

Works on audio shards (`KEY.flac` + `KEY.json`) and feature shards (`KEY.json` +
`KEY.pooled.npy`, optionally `KEY.frames.npy`). With an index.json, the folder must hold
exactly the shards it lists (no extra, none missing) with its counts and sha256s, and every
clip must be of the index's kind; a feature clip's arrays must have the shapes of the
index's upstream ([layers + 1, hidden] pooled, [len(frames_layers), frames, hidden] frames).
Each problem names the shard (and key), so `verify` can gate a pipeline.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.errors import ShardError
from intervox.shards import storage
from intervox.shards.read import AUDIO_EXTS, decode_sample, iter_tar_samples, list_shards
from intervox.shards.storage import Location
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


def check_clip(sample: dict, shard: str, expect: dict | None = None) -> tuple[str, list[str]]:
    """Return (kind, problems) of one raw sample: decodes it and checks its JSON fields.

    `expect` (from a feature index.json): {"upstream": identity, "frames_layers": [...]}, the
    identity and array shapes every feature clip must have.
    """
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
        if expect:
            problems += _check_feature_shapes(clip, meta, expect, where)
    return kind, problems


def _check_feature_shapes(clip: dict, meta: dict, expect: dict, where: str) -> list[str]:
    """Return problems where a feature clip disagrees with its index's upstream (identity, shapes)."""
    up = expect["upstream"]
    problems = []
    if meta.get("upstream") != up:
        problems.append(f"{where}: JSON upstream {meta.get('upstream')} differs from index.json's {up}")
    want = (up.get("layers", -2) + 1, up.get("hidden"))
    if tuple(clip["pooled.npy"].shape) != want:
        shape = clip["pooled.npy"].shape
        problems.append(f"{where}: pooled.npy has shape {shape}, the upstream gives {want}")
    frames = clip.get("frames.npy")
    n_frames_layers = len(expect.get("frames_layers") or [])
    if n_frames_layers and frames is None:
        problems.append(f"{where}: frames.npy missing (index.json frames_layers {expect['frames_layers']})")
    elif frames is not None and (
        frames.ndim != 3 or frames.shape[0] != n_frames_layers or frames.shape[2] != up.get("hidden")
    ):
        problems.append(f"{where}: frames.npy has shape {frames.shape}, expected "
                        f"[{n_frames_layers}, frames, {up.get('hidden')}]")
    return problems


def verify_shard(path: Location, report: VerifyReport, expect: dict | None = None) -> None:
    """Check one tar (sidecar, bytes, members, clips) and add what it finds to `report` (a path or URL)."""
    path = storage.as_location(path)
    shard = storage.basename(path)
    report.shards += 1
    info = read_sidecar(path)
    if info is None:
        report.problems.append(f"{shard}: sidecar {shard[:-4]}.json missing or unreadable")
    else:
        size = storage.size(path)
        if size != info.bytes:
            report.problems.append(f"{shard}: size {size} bytes but the sidecar says {info.bytes}")
        elif file_sha256(path) != info.sha256:
            report.problems.append(f"{shard}: sha256 differs from the sidecar (bytes changed)")
    count = 0
    try:
        for sample in iter_tar_samples(path):
            count += 1
            kind, problems = check_clip(sample, shard, expect)
            report.kinds[kind] += 1
            report.problems.extend(problems)
    except ShardError as exc:
        report.problems.append(f"{shard}: {exc}")
        return
    report.clips += count
    if info is not None and info.count != count:
        report.problems.append(f"{shard}: {count} clips but the sidecar says {info.count}")


def verify_dir(directory: Location) -> VerifyReport:
    """Return the VerifyReport of every shard in `directory` (a folder or a URL), checked against
    index.json when present."""
    directory = storage.as_location(directory)
    report = VerifyReport(str(directory))
    if isinstance(directory, Path) and not directory.is_dir():
        report.problems.append(f"{directory}: not a directory")
        return report
    index = _read_index(directory, report)
    expect = None
    if index.get("kind") == "features" and isinstance(index.get("upstream"), dict):
        expect = {"upstream": index["upstream"],
                  "frames_layers": (index.get("features") or {}).get("frames_layers") or []}
    shards = list_shards(directory)
    if not shards:
        report.problems.append(f"{directory}: no *.tar shards")
    for path in shards:
        verify_shard(path, report, expect)
    if index:
        _check_index(directory, index, {storage.basename(p) for p in shards}, report)
    return report


def _read_index(directory: Location, report: VerifyReport) -> dict:
    """Return DIR/index.json ({} when absent); a problem when it is unreadable."""
    path = storage.join(directory, "index.json")
    if not storage.exists(path):
        return {}
    try:
        index = json.loads(storage.read_bytes(path))
    except ValueError as exc:
        report.problems.append(f"index.json: not valid JSON ({exc.args[0]})")
        return {}
    if not isinstance(index, dict):
        report.problems.append("index.json: not a JSON object")
        return {}
    return index


def _check_index(directory: Location, index: dict, present: set[str], report: VerifyReport) -> None:
    """Add problems where the folder and index.json disagree: shards, counts, sha256s, kind, plan."""
    entries = {e["shard"]: e for e in index.get("shards", []) if isinstance(e, dict) and "shard" in e}
    for name in sorted(present - set(entries)):
        report.problems.append(f"{name}: not listed in index.json (a leftover of another build?)")
    for name, entry in sorted(entries.items()):
        if name not in present:
            report.problems.append(f"{name}: listed in index.json but missing")
            continue
        info = read_sidecar(storage.join(directory, name))
        if info is None:
            continue  # verify_shard named it
        if entry.get("sha256") not in (None, info.sha256):
            report.problems.append(f"{name}: index.json sha256 differs from the sidecar")
        if entry.get("count") not in (None, info.count):
            report.problems.append(
                f"{name}: index.json says {entry['count']} clips, the sidecar {info.count}"
            )
        if index.get("kind") == "audio" and index.get("plan_hash") not in (None, info.plan_hash):
            report.problems.append(f"{name}: sidecar plan_hash {info.plan_hash[:12]} is not index.json's "
                                   f"{index['plan_hash'][:12]} (a shard of another plan)")
    listed = sum(e.get("count", 0) for e in entries.values())
    total = (index.get("counts") or {}).get("written" if index.get("kind") == "audio" else "clips")
    if isinstance(total, int) and total != listed:
        report.problems.append(f"index.json: counts say {total} clips but its shards list {listed}")
    want = {"audio": "audio", "features": "feature"}.get(index.get("kind"))
    wrong = {k: n for k, n in report.kinds.items() if want and k != want}
    if wrong:
        report.problems.append(f"index.json: kind {index.get('kind')!r} but the shards hold "
                               + ", ".join(f"{n} {k} clips" for k, n in sorted(wrong.items())))
