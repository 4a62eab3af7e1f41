"""A local copy of a shard set kept at a URL, for the stages that read shards by byte offset.

Training draws each grid batch from a header-only index by byte offset, and evaluation loads
whole splits: both want local files. A feature set at `s3://...` (what `intervox features
--out s3://...` writes) is therefore copied once into `$INTERVOX_CACHE/remote/<hash>/mirror`
and read there; the next run fetches only what changed.

A tar is fetched again unless the local copy of its sidecar (count, bytes, sha256, plan hash)
equals the remote one byte for byte and the tar has the sidecar's size: a rebuilt shard of the
same size still has a new sidecar. Every fetched tar is checked against its sidecar's sha256.
Files gone from the URL are removed from the copy, so a rebuilt set with fewer shards is read
as it is now. Files go to a temporary name of this process and are renamed into place, the tar
before its sidecar: a copy killed half-way is resumed, never misread, and two processes of one
node (DDP ranks) may sync the same set at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from intervox.errors import ShardError
from intervox.shards import storage
from intervox.shards.storage import Location

log = logging.getLogger(__name__)


def copy_dir(location: Location) -> Path:
    """Return the local folder of shard set `location`: itself when local, else where its copy goes
    (without syncing it: see `local_shard_dir`)."""
    location = storage.as_location(location)
    return location if isinstance(location, Path) else storage.work_dir(location) / "mirror"


def local_shard_dir(location: Location) -> Path:
    """Return a local folder holding the shard set `location`: itself when local, else its synced copy."""
    location = storage.as_location(location)
    if isinstance(location, Path):
        return location
    local = copy_dir(location)
    local.mkdir(parents=True, exist_ok=True)
    remote = {storage.basename(f): f for f in storage.list_files(location) if not str(f).endswith(".tmp")}
    if not any(name.endswith(".tar") for name in remote):
        raise ShardError(f"{location}: no *.tar shards there to read")
    for old in local.iterdir():  # dot files are other processes' copies in flight
        if old.is_file() and not old.name.startswith(".") and old.name not in remote:
            old.unlink(missing_ok=True)
    fetched = sum(_sync(remote, name, local) for name in sorted(remote) if not _is_sidecar(name, remote))
    log.info("%s: local copy %s (%.1f MiB fetched)", location, local, fetched / 2**20)
    return local


def _is_sidecar(name: str, remote: dict[str, Location]) -> bool:
    return name.endswith(".json") and name[: -len(".json")] + ".tar" in remote


def _sync(remote: dict[str, Location], name: str, local: Path) -> int:
    """Bring `local/name` (and a tar's sidecar, after it) up to date; return the bytes fetched."""
    side = name[: -len(".tar")] + ".json" if name.endswith(".tar") else None
    if side is None or side not in remote:  # index.json and the like (small), or an unfinished tar
        return _fetch(remote[name], local / name, None)
    side_bytes = storage.read_bytes(remote[side])
    try:
        info = json.loads(side_bytes)
        expected, sha256 = int(info["bytes"]), str(info["sha256"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{remote[side]}: unreadable sidecar ({exc}); check the set with "
                         "`intervox shards verify`") from exc
    tar, local_side = local / name, local / side
    if (local_side.is_file() and local_side.read_bytes() == side_bytes and tar.is_file()
            and tar.stat().st_size == expected):
        return 0
    local_side.unlink(missing_ok=True)  # the old sidecar must never describe the new tar
    got = _fetch(remote[name], tar, sha256)
    _write(local_side, side_bytes)
    return got


@contextmanager
def _replacing(dest: Path) -> Iterator[BinaryIO]:
    """Yield a new file beside `dest`, named for this process, that replaces `dest` if the block succeeds.

    Not `storage.write_atomic`: its fixed `NAME.tmp` would be shared by two ranks syncing at once.
    """
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fetch(url: Location, dest: Path, sha256: str | None) -> int:
    """Copy `url` to `dest`, checking `sha256` when given; return its size."""
    digest, size = hashlib.sha256(), 0
    with _replacing(dest) as out, storage.open_read(url) as src:
        while chunk := src.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
            size += len(chunk)
        if sha256 is not None and digest.hexdigest() != sha256:
            raise ShardError(f"{url}: its sha256 {digest.hexdigest()[:12]}... is not its sidecar's "
                             f"{sha256[:12]}... (damaged, or rewritten while it was copied)")
    return size


def _write(dest: Path, data: bytes) -> None:
    with _replacing(dest) as out:
        out.write(data)

