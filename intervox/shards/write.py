"""Atomic, byte-reproducible WebDataset tar shards with a JSON sidecar.

A shard is written atomically (`storage.write_atomic`: `NAME.tar.tmp`, fsync and rename on a
local disk, one committed PUT on an object store), so a reader never sees a partial shard;
then `NAME.json` (count, bytes, sha256, plan hash) is written the same way. Tar headers carry
fixed mtime/uid/gid/mode so that equal samples give equal bytes. Paths may be local or any
fsspec URL (`s3://bucket/set/train-000000.tar`).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from intervox.errors import ShardError
from intervox.shards import storage
from intervox.shards.storage import Location

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


def sidecar_path(tar_path: Location) -> Location:
    """Return the sidecar path `NAME.json` of shard `NAME.tar` (a URL for a URL)."""
    tar_path = storage.as_location(tar_path)
    name = storage.basename(tar_path)
    side = name[: -len(".tar")] + ".json" if name.endswith(".tar") else name.rsplit(".", 1)[0] + ".json"
    return storage.join(storage.parent(tar_path), side)


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


def atomic_write_bytes(path: Location, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` atomically (no reader sees a partial file): see `storage.write_atomic`."""
    storage.write_atomic(path, data, durable=durable)


def write_shard(tar_path: Location, samples: Iterable[dict], plan_hash: str) -> ShardInfo:
    """Write samples to `tar_path` atomically, then its sidecar; return the ShardInfo."""
    tar_path = storage.as_location(tar_path)
    storage.makedirs(storage.parent(tar_path))
    data, count = tar_bytes(samples)
    atomic_write_bytes(tar_path, data)  # durable before a sidecar can claim it
    name = storage.basename(tar_path)
    info = ShardInfo(name, count, len(data), hashlib.sha256(data).hexdigest(), plan_hash)
    # a sidecar lost or torn by a power cut does not parse: the shard is rebuilt, never misread
    atomic_write_bytes(sidecar_path(tar_path), encode_field(info.to_dict()) + b"\n", durable=False)
    return info


def read_sidecar(tar_path: Location) -> ShardInfo | None:
    """Return the sidecar of `tar_path`, or None if it is missing or unreadable."""
    try:
        return ShardInfo(**json.loads(storage.read_bytes(sidecar_path(tar_path))))
    except (OSError, ValueError, TypeError):
        return None


def file_sha256(path: Location) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with storage.open_read(path) as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def shard_is_complete(tar_path: Location, plan_hash: str, *, check_sha256: bool = True) -> bool:
    """True when the tar exists and its sidecar matches the plan and the tar's size (and sha256).

    A sidecar is written only after its tar was committed whole, so sidecar + matching size
    already proves the shard was finished; `check_sha256=False` (a resumed build) trusts the
    sidecar's sha256 instead of reading every finished tar again. Bit rot after the write is
    what `intervox shards verify` (and the default here) checks.
    """
    info = read_sidecar(tar_path)
    if info is None or info.plan_hash != plan_hash or storage.size(tar_path) != info.bytes:
        return False
    return not check_sha256 or file_sha256(tar_path) == info.sha256
