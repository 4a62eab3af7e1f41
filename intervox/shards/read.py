"""Safe shard reading: only the member types and formats intervox writes are accepted.

Readers refuse members whose names are absolute or contain `..`, links and device files,
and decode only flac/wav, json, txt and npy (never pickle). These functions are small
composable stages: `iter_tar_samples` groups a tar's members into samples, `decode_sample`
turns bytes into arrays and dicts, and `iter_shards` streams many shards, skipping corrupt
ones with a warning and counting them.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.audio import decode_audio_bytes
from intervox.errors import AudioError, ShardError

log = logging.getLogger(__name__)

AUDIO_EXTS = ("flac", "wav")
SAFE_EXTS = ("flac", "wav", "json", "txt", "npy")


def check_member(member: tarfile.TarInfo, shard: str) -> None:
    """Raise ShardError unless `member` is a plain file with a safe relative name."""
    name = member.name
    if name.startswith("/") or ".." in Path(name).parts or "\\" in name:
        raise ShardError(f"{shard}: unsafe member name {name!r} (absolute or '..')")
    if not member.isreg():
        kind = "link" if (member.issym() or member.islnk()) else "device or special file"
        raise ShardError(f"{shard}: member {name!r} is a {kind}, not a regular file")


def split_member_name(name: str) -> tuple[str, str]:
    """Return (key, ext) of a member name: the key ends at the first dot after the last slash."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot < 0:
        return name, ""
    return name[:dot], name[dot + 1 :]


def iter_tar_samples(path: str | Path, fileobj: io.IOBase | None = None) -> Iterator[dict]:
    """Yield `{"__key__", "__shard__", ext: bytes, ...}` per sample of a tar, in tar order.

    Raises ShardError naming the shard on unsafe members, corrupt or truncated tars.
    """
    shard = str(path)
    current: dict | None = None
    if fileobj is None:
        _check_size(Path(path))
    try:
        with tarfile.open(name=None if fileobj else shard, fileobj=fileobj, mode="r|") as tar:
            for member in tar:
                check_member(member, shard)
                key, ext = split_member_name(member.name)
                if ext not in SAFE_EXTS and ext.rsplit(".", 1)[-1] not in SAFE_EXTS:
                    raise ShardError(f"{shard}: member {member.name!r} has a format intervox never writes")
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                if len(data) != member.size:
                    raise ShardError(f"{shard}: member {member.name!r} is truncated")
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__shard__": shard}
                current[ext] = data
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ShardError(f"{shard}: corrupt or truncated tar ({exc})") from exc
    if current is not None:
        yield current


def _check_size(path: Path) -> None:
    """Raise ShardError when the shard's sidecar records another size than the file has.

    A tar cut at a member boundary still reads as a shorter, valid archive, so the tar
    reader alone cannot see that samples are missing.
    """
    sidecar = path.with_name(path.name[: -len(".tar")] + ".json") if path.name.endswith(".tar") else None
    if sidecar is None or not sidecar.is_file():
        return
    try:
        expected = json.loads(sidecar.read_text()).get("bytes")
        size = path.stat().st_size
    except (OSError, ValueError, AttributeError):
        return  # an unreadable sidecar is verify's business; the tar itself may still be fine
    if isinstance(expected, int) and expected != size:
        raise ShardError(f"{path}: truncated or changed ({size} bytes, its sidecar says {expected})")


def decode_npy(data: bytes, name: str) -> np.ndarray:
    """Return the array of .npy bytes, never unpickling objects."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ShardError(f"{name}: not a plain .npy array ({exc})") from exc


def decode_sample(sample: dict) -> dict:
    """Return a sample with flac/wav -> (audio, sr), json -> dict, npy -> array, txt -> str."""
    out: dict = {}
    name = f"{sample.get('__shard__', '?')}:{sample.get('__key__', '?')}"
    for ext, value in sample.items():
        if ext.startswith("__"):
            out[ext] = value
            continue
        last = ext.rsplit(".", 1)[-1]
        try:
            if last in AUDIO_EXTS:
                out[ext] = decode_audio_bytes(value, f"{name}.{ext}")
            elif last == "json":
                out[ext] = json.loads(value)
            elif last == "npy":
                out[ext] = decode_npy(value, f"{name}.{ext}")
            elif last == "txt":
                out[ext] = value.decode("utf-8")
            else:
                raise ShardError(f"{name}: refusing to decode unknown format .{ext}")
        except (AudioError, ValueError, UnicodeDecodeError) as exc:
            raise ShardError(f"{name}.{ext}: cannot decode ({exc})") from exc
    return out


@dataclass
class StreamStats:
    """Counts of a shard stream: shards read, shards skipped as bad (with reasons), samples."""

    shards_read: int = 0
    samples: int = 0
    bad_shards: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"shards_read": self.shards_read, "samples": self.samples,
                "bad_shards": [{"shard": s, "reason": r} for s, r in self.bad_shards]}


def iter_shards(
    paths: Iterable[str | Path],
    *,
    stats: StreamStats | None = None,
    max_bad_fraction: float = 0.0,
    decode: Callable[[dict], dict] | None = decode_sample,
) -> Iterator[dict]:
    """Yield decoded samples of many shards, skipping corrupt ones with a warning.

    A bad shard is skipped whole (a partly read shard's samples are dropped, so nothing
    half-read reaches a batch); ShardError is raised once the bad fraction exceeds
    `max_bad_fraction`.
    """
    stats = stats if stats is not None else StreamStats()
    paths = list(paths)
    for path in paths:
        try:
            samples = [decode(s) if decode else s for s in iter_tar_samples(path)]
        except ShardError as exc:
            stats.bad_shards.append((str(path), str(exc)))
            log.warning("skipping bad shard %s: %s", path, exc)
            if len(stats.bad_shards) > max_bad_fraction * len(paths):
                raise ShardError(
                    f"{len(stats.bad_shards)} of {len(paths)} shards are bad (allowed fraction "
                    f"{max_bad_fraction}); last: {exc}"
                ) from exc
            continue
        stats.shards_read += 1
        stats.samples += len(samples)
        yield from samples


def list_shards(directory: str | Path) -> list[Path]:
    """Return the finished shards (`*.tar`, never `*.tmp`) of a directory, sorted by name."""
    return sorted(p for p in Path(directory).glob("*.tar") if p.is_file())
