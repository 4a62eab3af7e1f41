"""Where shard sets live: a local folder or any fsspec URL (`s3://`, `gs://`, `memory://`, ...).

Every file a stage writes goes through `write_atomic`, so no reader ever sees a partial file:

- on a local disk (and on any fsspec file system with real directories) the bytes go to
  `NAME.tmp`, are fsynced, then renamed over `NAME`;
- on an object store (S3, GCS, Azure) one PUT, or a multipart upload completed at the end,
  is the commit: the object becomes visible whole or not at all, and a "rename" there would
  be a second full copy.

Callers write a shard's tar before its sidecar, so a sidecar always names a finished tar on
any store. Credentials and endpoints come from the environment of each process (for S3:
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_ENDPOINT_URL` or fsspec's
`FSSPEC_S3_ENDPOINT_URL`), so a Dask worker on another node needs its environment, not ours.

Locations are `Path`s for local folders and `str` URLs otherwise: `join` keeps that type,
because `Path("s3://b/x")` would silently collapse the `//`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from intervox.errors import ShardError

Location = str | Path

# protocols whose single PUT / completed multipart upload is atomic (no rename needed, nor cheap)
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "r2"})


def is_url(location: Location) -> bool:
    """True when `location` is a URL of a non-local file system (`file://` counts as local)."""
    return isinstance(location, str) and "://" in location and not location.startswith("file://")


def as_location(location: Location) -> Location:
    """Return `location` normalised: a `Path` for local paths (and `file://` URLs), the URL otherwise."""
    if isinstance(location, Path):
        return location
    if location.startswith("file://"):
        return Path(location[len("file://"):])
    return location.rstrip("/") if is_url(location) else Path(location)


def join(location: Location, *names: str) -> Location:
    """Return `location/name/...`, of the same kind (Path or URL) as `location`."""
    location = as_location(location)
    if isinstance(location, Path):
        return location.joinpath(*names)
    return "/".join([location, *(n.strip("/") for n in names)])


def basename(location: Location) -> str:
    """Return the last part of a path or URL."""
    return str(location).rstrip("/").rsplit("/", 1)[-1]


def parent(location: Location) -> Location:
    """Return the folder that holds `location`."""
    location = as_location(location)
    return location.parent if isinstance(location, Path) else location.rsplit("/", 1)[0]


def filesystem(location: Location) -> tuple[object, str]:
    """Return (fsspec file system, its path) of a URL; ShardError when the protocol is not installed."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(str(location))
    except (ImportError, ValueError) as exc:
        raise ShardError(f"{location}: cannot open this storage URL ({exc}); for s3:// install "
                         "intervox[s3] (s3fs), for gs:// gcsfs") from exc


def _is_object_store(fs: object) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return bool(OBJECT_STORES.intersection(protocols))


def _fsync_dir(directory: Path) -> None:
    try:  # make a rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def write_atomic(location: Location, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `location` so that readers see the old file, or the whole new one, never a part.

    `durable` (local disks): fsync the bytes before the rename and the folder after it, so the
    file survives a power cut. A file that something durable is written after (a shard's tar,
    before its sidecar) needs it; a file whose loss or tearing only means redoing work (a
    sidecar, a shard's stats: a torn one does not parse, and the shard is rebuilt) does not,
    and skips two fsyncs.
    """
    location = as_location(location)
    if isinstance(location, Path):
        tmp = location.with_name(location.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, location)
        if durable:
            _fsync_dir(location.parent)
        return
    fs, path = filesystem(location)
    if _is_object_store(fs):
        fs.pipe_file(path, data)  # the PUT (or completed multipart upload) is the commit
    else:
        fs.pipe_file(path + ".tmp", data)
        fs.mv(path + ".tmp", path)
    fs.invalidate_cache(path)


def makedirs(location: Location) -> None:
    """Create the folder `location` (object stores have no folders: nothing to do there)."""
    location = as_location(location)
    if isinstance(location, Path):
        location.mkdir(parents=True, exist_ok=True)
        return
    fs, path = filesystem(location)
    if not _is_object_store(fs):
        fs.makedirs(path, exist_ok=True)


def read_bytes(location: Location) -> bytes:
    """Return the bytes of a file (OSError / FileNotFoundError when it is missing)."""
    location = as_location(location)
    if isinstance(location, Path):
        return location.read_bytes()
    fs, path = filesystem(location)
    return fs.cat_file(path)


def open_read(location: Location, block_size: int = 1 << 22):  # noqa: ANN201 - a binary file object
    """Return a binary file object of `location`, read ahead `block_size` bytes at a time on a URL."""
    location = as_location(location)
    if isinstance(location, Path):
        return open(location, "rb", buffering=1 << 20)  # noqa: SIM115 - the caller closes it
    fs, path = filesystem(location)
    return fs.open(path, "rb", block_size=block_size, cache_type="readahead")


def size(location: Location) -> int | None:
    """Return the size in bytes of a file, or None when there is no such file."""
    location = as_location(location)
    if isinstance(location, Path):
        try:
            st = location.stat()
        except OSError:
            return None
        return st.st_size if location.is_file() else None
    fs, path = filesystem(location)
    fs.invalidate_cache(path)  # another process (a worker) may have written it since we last looked
    try:
        info = fs.info(path)
    except (FileNotFoundError, OSError):
        return None
    return int(info["size"]) if info.get("type") == "file" else None


def exists(location: Location) -> bool:
    """True when `location` is an existing file."""
    return size(location) is not None


def list_files(directory: Location, suffix: str = "") -> list[Location]:
    """Return the files directly in `directory` whose names end with `suffix`, sorted by name ([] if none)."""
    directory = as_location(directory)
    if isinstance(directory, Path):
        if not directory.is_dir():
            return []
        return sorted(p for p in directory.iterdir() if p.name.endswith(suffix) and p.is_file())
    fs, path = filesystem(directory)
    fs.invalidate_cache(path)
    try:
        entries = fs.ls(path, detail=True)
    except FileNotFoundError:
        return []
    names = sorted(basename(e["name"]) for e in entries if e.get("type") == "file")
    return [join(directory, n) for n in names if n.endswith(suffix)]


def remove(location: Location) -> None:
    """Delete a file; a missing one is fine."""
    location = as_location(location)
    if isinstance(location, Path):
        location.unlink(missing_ok=True)
        return
    fs, path = filesystem(location)
    try:
        fs.rm_file(path)
    except FileNotFoundError:
        pass
    fs.invalidate_cache(path)


def work_dir(location: Location) -> Path:
    """Return the local folder of a run's lock (and other driver-side files) for output `location`.

    A local folder is its own; a URL gets `$INTERVOX_CACHE/remote/<sha256 of the URL>`: a lock
    there keeps two runs on this machine out of one URL (an object store has no lock that
    processes on different machines could share).
    """
    location = as_location(location)
    if isinstance(location, Path):
        return location
    from intervox.assets import cache_dir

    return cache_dir() / "remote" / hashlib.sha256(location.encode()).hexdigest()[:16]


@contextmanager
def local_file(location: Location) -> Iterator[Path]:
    """Yield a local path with the bytes of `location`: itself when local, else a temporary copy."""
    location = as_location(location)
    if isinstance(location, Path):
        yield location
        return
    suffix = "." + basename(location).rsplit(".", 1)[-1] if "." in basename(location) else ""
    fd, tmp = tempfile.mkstemp(prefix="intervox-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f, open_read(location) as src:
            shutil.copyfileobj(src, f, 1 << 20)
        yield Path(tmp)
    finally:
        os.unlink(tmp)


def upload_tree(local_dir: Path, url: str) -> int:
    """Copy every file under `local_dir` to `url` unless a file of the same size is there; return copies."""
    copied = 0
    for p in sorted(local_dir.rglob("*")):
        if not p.is_file() or p.name.endswith(".tmp"):
            continue
        target = join(url, *p.relative_to(local_dir).parts)
        if size(target) != p.stat().st_size:
            write_atomic(target, p.read_bytes())
            copied += 1
    return copied
