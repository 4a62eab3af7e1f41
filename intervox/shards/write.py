"""Atomic, byte-reproducible WebDataset tar shards with a JSON sidecar.

A shard is written to `NAME.tar.tmp`, fsynced and renamed, so a reader never sees a
partial shard; then `NAME.json` (count, bytes, sha256, plan hash) is written the same
way. Tar headers carry fixed mtime/uid/gid/mode so that equal samples give equal bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from intervox.errors import ShardError

FIXED_MTIME = 0  # 1970-01-01: any constant works; zero says "not a real time"


@dataclass(frozen=True)
class ShardInfo:
    """What a sidecar records about one finished shard."""

    shard: str  # file name of the tar
    count: int  # samples (keys) in the tar
    bytes: int
    sha256: str
    plan_hash: str

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar_path(tar_path: str | Path) -> Path:
    """Return the sidecar path `NAME.json` of shard `NAME.tar`."""
    p = Path(tar_path)
    return p.with_name(p.name[: -len(".tar")] + ".json") if p.name.endswith(".tar") else p.with_suffix(".json")


def encode_field(value: object) -> bytes:
    """Return the bytes stored in a tar member: bytes as-is, dicts/lists as canonical JSON."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_key(key: str) -> str:
    """Return `key` if usable as a WebDataset key (no dots, no slashes), else raise ShardError."""
    if not key or "." in key or "/" in key or key.startswith("_"):
        raise ShardError(f"sample key {key!r} is not valid: no dots, slashes or leading underscore")
    return key


def tar_bytes(samples: Iterable[dict]) -> tuple[bytes, int]:
    """Return (tar bytes, sample count) for samples `{"__key__": k, ext: value, ...}`."""
    buf = io.BytesIO()
    count = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for sample in samples:
            key = check_key(sample["__key__"])
            count += 1
            for ext in sorted(k for k in sample if not k.startswith("__")):
                data = encode_field(sample[ext])
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                info.mtime = FIXED_MTIME
                info.mode = 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), count


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` via `path.tmp` + fsync + rename (no reader sees a partial file)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_shard(tar_path: str | Path, samples: Iterable[dict], plan_hash: str) -> ShardInfo:
    """Write samples to `tar_path` atomically, then its sidecar; return the ShardInfo."""
    tar_path = Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    data, count = tar_bytes(samples)
    atomic_write_bytes(tar_path, data)
    info = ShardInfo(tar_path.name, count, len(data), hashlib.sha256(data).hexdigest(), plan_hash)
    atomic_write_bytes(sidecar_path(tar_path), encode_field(info.to_dict()) + b"\n")
    return info


def read_sidecar(tar_path: str | Path) -> ShardInfo | None:
    """Return the sidecar of `tar_path`, or None if it is missing or unreadable."""
    p = sidecar_path(tar_path)
    try:
        return ShardInfo(**json.loads(p.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def file_sha256(path: str | Path) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shard_is_complete(tar_path: str | Path, plan_hash: str) -> bool:
    """True when the tar exists and its sidecar matches both the plan and the tar's bytes."""
    tar_path = Path(tar_path)
    info = read_sidecar(tar_path)
    if info is None or info.plan_hash != plan_hash or not tar_path.is_file():
        return False
    return tar_path.stat().st_size == info.bytes and file_sha256(tar_path) == info.sha256
