"""Random access to shard members: a header-only scan records where each member's bytes lie,
then reads seek straight to them.

The streaming reader (read.py) decodes a shard front to back; a sampler that draws clips
from the whole training split needs a few hundred clips from anywhere per step instead. An
uncompressed tar stores each member's bytes contiguously after its header, so one scan of the
headers (tarfile seeks past the data) gives every member's (offset, size), and a later
`os.pread` reads exactly that member. The same safety rules as read.py apply: names must be
relative and plain, members regular files of the formats intervox writes, `.npy` never holds
objects, and every error is a ShardError naming the shard. A `.npy` member's header is checked
at scan time (dtype, shape, and that its data fill the member exactly), so a corrupt feature
shard is found when training starts, not at the step that first draws from it.
"""

from __future__ import annotations

import functools
import io
import json
import math
import os
import tarfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from intervox.errors import ShardError
from intervox.shards.read import SAFE_EXTS, check_member, decode_npy
from intervox.shards.write import read_sidecar

NPY_PREFIX = 256  # bytes read to parse a .npy header (intervox's headers are 128 bytes)


@dataclass(frozen=True)
class Span:
    """Where a member's bytes lie in its (uncompressed) tar."""

    offset: int
    size: int


@dataclass(frozen=True)
class NpyHeader:
    """What a `.npy` member's header declares."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran_order: bool = False
    nbytes: int = field(init=False, compare=False)  # size of the data that follow the header

    def __post_init__(self) -> None:
        object.__setattr__(self, "nbytes", math.prod(self.shape) * self.dtype.itemsize)


@dataclass
class IndexedSample:
    """One sample of a scanned shard: member spans by extension, its decoded JSON, its npy headers."""

    key: str
    spans: dict[str, Span] = field(default_factory=dict)
    json: dict | None = None
    npy: dict[str, NpyHeader] = field(default_factory=dict)


@dataclass(frozen=True)
class ShardStamp:
    """Size and modification time of a shard when it was scanned: offsets hold only while these do."""

    size: int
    mtime_ns: int


def stamp(path: str | Path) -> ShardStamp:
    """Return the size and mtime of `path`."""
    st = os.stat(path)
    return ShardStamp(st.st_size, st.st_mtime_ns)


def parse_npy_header(head: bytes, size: int, name: str) -> NpyHeader:
    """Return the header of a `.npy` member from its first bytes; `size` is the whole member's.

    Raises ShardError when it is not a plain array (object dtype would need pickle) or when
    its data would not fill the member exactly (truncated or padded).
    """
    try:
        header, header_len = _parse_header(bytes(head[:_header_end(head)]))
    except (ValueError, OSError, EOFError) as exc:
        raise ShardError(f"{name}: not a plain .npy array ({exc})") from exc
    if header.dtype.hasobject:
        raise ShardError(f"{name}: not a plain .npy array (object dtype {header.dtype} would need pickle)")
    if header_len + header.nbytes != size:
        raise ShardError(f"{name}: .npy header declares {list(header.shape)} {header.dtype} "
                         f"({header_len + header.nbytes} bytes) but the member has {size} bytes")
    return header


def _header_end(head: bytes) -> int:
    """Return where the header of .npy bytes ends (magic, version, length field, header text)."""
    if len(head) < 10 or head[:6] != b"\x93NUMPY":
        raise ValueError("no .npy magic string")
    if head[6] == 1:
        return 10 + int.from_bytes(head[8:10], "little")
    return 12 + int.from_bytes(head[8:12], "little")


@functools.lru_cache(maxsize=256)
def _parse_header(header: bytes) -> tuple[NpyHeader, int]:
    """Return (NpyHeader, header length) of a whole .npy header; cached, as a split's clips share a
    few headers and numpy parses each with ast.literal_eval (~100 us)."""
    f = io.BytesIO(header)
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(f)
    if f.tell() != len(header):
        raise ValueError("header length field does not match its text")
    return NpyHeader(tuple(int(x) for x in shape), dtype, bool(fortran_order)), len(header)


def member_key(name: str) -> tuple[str, str]:
    """Return (key, ext) of a member name: the key ends at the first dot after the last slash
    (webdataset's rule, as read.py groups samples)."""
    slash = name.rfind("/") + 1
    stem, _, ext = name[slash:].partition(".")
    return name[:slash] + stem, ext


def _check_complete(path: Path, size: int) -> None:
    """Raise ShardError when the sidecar records another size (a tar cut at a member boundary)."""
    info = read_sidecar(path)
    if info is not None and info.bytes != size:
        raise ShardError(f"{path}: truncated or changed ({size} bytes, its sidecar says {info.bytes})")


def scan_shard(path: str | Path, wanted: set[str]) -> tuple[list[IndexedSample], ShardStamp]:
    """Return the samples of a tar in tar order with the spans of their `wanted` members, and its stamp.

    Reads only headers, plus the bytes of `json` members (decoded) and the header of `.npy`
    members among `wanted`. Consecutive members with one key form a sample, as in read.py.
    Raises ShardError naming the shard on unsafe or unknown members, truncation, bad JSON or npy.
    """
    path = Path(path)
    shard = str(path)
    try:
        st = stamp(path)
    except OSError as exc:
        raise ShardError(f"{shard}: cannot read ({exc})") from exc
    _check_complete(path, st.size)
    samples: list[IndexedSample] = []
    try:
        with open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            for member in tar:
                check_member(member, shard)
                key, ext = member_key(member.name)
                if ext not in SAFE_EXTS and ext.rsplit(".", 1)[-1] not in SAFE_EXTS:
                    raise ShardError(f"{shard}: member {member.name!r} has a format intervox never writes")
                if member.offset_data + member.size > st.size:
                    raise ShardError(f"{shard}: member {member.name!r} is truncated")
                if not samples or samples[-1].key != key:
                    samples.append(IndexedSample(key))
                tar.members = []  # tarfile keeps every TarInfo otherwise; the spans are all we need
                if ext in wanted:
                    span = Span(member.offset_data, member.size)
                    _record(f, samples[-1], ext, span, f"{shard}:{member.name}")
            # tarfile ends quietly at a missing or cut header: only the end-of-archive zero block
            # tells a complete tar from one cut at a member boundary (when no sidecar says its size)
            if os.pread(f.fileno(), tarfile.BLOCKSIZE, tar.offset) != tarfile.NUL * tarfile.BLOCKSIZE:
                raise ShardError(f"{shard}: truncated tar (no end-of-archive block at byte {tar.offset})")
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ShardError(f"{shard}: corrupt or truncated tar ({exc})") from exc
    return samples, st


def _record(f: io.BufferedReader, sample: IndexedSample, ext: str, span: Span, name: str) -> None:
    """Store a wanted member's span; decode its JSON or check its npy header."""
    sample.spans[ext] = span
    if ext == "json":
        try:
            sample.json = json.loads(os.pread(f.fileno(), span.size, span.offset))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ShardError(f"{name}: cannot decode ({exc})") from exc
        if not isinstance(sample.json, dict):
            raise ShardError(f"{name}: expected a JSON object")
    elif ext.endswith("npy"):
        head = os.pread(f.fileno(), min(span.size, NPY_PREFIX), span.offset)
        try:
            end = _header_end(head)
        except ValueError as exc:
            raise ShardError(f"{name}: not a plain .npy array ({exc})") from exc
        if end > len(head):  # a long header (many dimensions or padding)
            head = os.pread(f.fileno(), min(span.size, end), span.offset)
        sample.npy[ext] = parse_npy_header(head, span.size, name)


class MemberReader:
    """Reads member bytes at recorded spans, keeping up to `max_open` shard files open (least
    recently used closed first). Each shard must still have the stamp it was scanned with."""

    def __init__(self, stamps: dict[str, ShardStamp], max_open: int = 64) -> None:
        self.stamps = stamps
        self.max_open = max_open
        self._open: OrderedDict[str, int] = OrderedDict()

    def _fd(self, shard: str) -> int:
        fd = self._open.get(shard)
        if fd is not None:
            self._open.move_to_end(shard)
            return fd
        try:
            fd = os.open(shard, os.O_RDONLY)
        except OSError as exc:
            raise ShardError(f"{shard}: cannot open ({exc})") from exc
        st = os.fstat(fd)
        want = self.stamps.get(shard)
        if want is not None and (st.st_size, st.st_mtime_ns) != (want.size, want.mtime_ns):
            os.close(fd)
            raise ShardError(f"{shard}: changed since it was indexed ({st.st_size} bytes now, "
                             f"{want.size} then); restart the run to index it again")
        self._open[shard] = fd
        if len(self._open) > self.max_open:
            os.close(self._open.popitem(last=False)[1])
        return fd

    def read(self, shard: str, span: Span | tuple[int, int]) -> bytes:
        """Return the bytes of the member at `span` of `shard`."""
        offset, size = span if isinstance(span, tuple) else (span.offset, span.size)
        data = os.pread(self._fd(shard), int(size), int(offset))
        if len(data) != size:
            raise ShardError(f"{shard}: member at byte {offset} is truncated ({len(data)} of {size} bytes)")
        return data

    def read_npy(self, shard: str, span: Span | tuple[int, int], name: str) -> np.ndarray:
        """Return the array of the `.npy` member at `span` (never unpickling)."""
        return decode_npy(self.read(shard, span), f"{shard}:{name}")

    def read_array(self, shard: str, offset: int, size: int, header: NpyHeader) -> np.ndarray:
        """Return the (read-only) array of a `.npy` member whose header scan_shard checked.

        Skips numpy's header parse (most of np.load's time for a 7 KiB array): the scan parsed
        this member's header, found a plain dtype and data that end the member exactly, and the
        shard still has its scan-time stamp, so the data are the member's last `nbytes` bytes.
        """
        data = self.read(shard, (offset, size))
        array = np.frombuffer(data, header.dtype, offset=size - header.nbytes)
        return array.reshape(header.shape, order="F" if header.fortran_order else "C")

    def close(self) -> None:
        """Close every open shard file."""
        while self._open:
            os.close(self._open.popitem()[1])

    def __del__(self) -> None:
        self.close()
