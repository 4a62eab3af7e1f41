"""The one shard reader: webdataset pipelines with intervox's safe member check and decoders.

Stages, all plain webdataset ones except the two that guard what a tar may hold:

  shard list (`wds.SimpleShardList`, seeded order; or `wds.ResampledShards` over this rank's
  shards) -> `wds.split_by_node` -> `wds.split_by_worker` -> `read_shards` (open each shard,
  `tar_members`: refuse absolute or `..` names, links, device files and formats intervox
  never writes; `wds.tariterators.group_by_keys` into samples; decode; skip a bad shard and
  count it) -> the caller's stages (shuffle, batching, `with_epoch`) -> `shard_loader`, a
  `torch.utils.data.DataLoader` whose workers decode in parallel and prefetch.

Decoding is webdataset's `Decoder` with only intervox's handlers (flac/wav, json, txt, npy
without pickle); no default handler is installed, so nothing is ever unpickled or torch.load-ed,
and an extension no handler takes is an error, not raw bytes.

Streaming and bad shards: samples are yielded as they are read, each one whole (every member
read and decoded). A shard that turns out bad half-way is skipped from that point on and counted
in StreamStats; the samples it gave before stay, as they were complete. Readers for which a
group of samples must be whole (the contrastive blocks of training) group inside the per-shard
`read` function, so a block a bad shard cuts short is never yielded (see training/stream.py).
"""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import webdataset as wds
from webdataset.autodecode import Decoder, DecodingError
from webdataset.tariterators import group_by_keys

from intervox.audio import decode_audio_bytes
from intervox.errors import AudioError, ShardError
from intervox.shards import storage
from intervox.shards.storage import Location
from intervox.shards.write import sidecar_path

log = logging.getLogger(__name__)

AUDIO_EXTS = ("flac", "wav")
SAFE_EXTS = ("flac", "wav", "json", "txt", "npy")


def check_member(member: tarfile.TarInfo, shard: str) -> None:
    """Raise ShardError unless `member` is a plain file with a safe relative name."""
    _check_name(member.name, shard)
    if not member.isreg() or member.issparse():
        kind = "link" if (member.issym() or member.islnk()) else "device or special file"
        raise ShardError(f"{shard}: member {member.name!r} is a {kind}, not a regular file")
    _check_format(member.name, shard)


def _check_name(name: str, shard: str) -> None:
    if name.startswith("/") or ".." in name.split("/") or "\\" in name:
        raise ShardError(f"{shard}: unsafe member name {name!r} (absolute or '..')")


def _check_format(name: str, shard: str) -> None:
    ext = name[name.rfind("/") + 1:].partition(".")[2]
    if ext.rsplit(".", 1)[-1] not in SAFE_EXTS:
        raise ShardError(f"{shard}: member {name!r} has a format intervox never writes")


def open_shard(url: str) -> BinaryIO:
    """Return a binary stream of shard `url`: the one place a shard is opened (a path or an fsspec URL).

    A tar cut at a member boundary still reads as a shorter, valid archive, so a shard whose
    sidecar (`NAME.json`) records another size than the file has is refused here.
    """
    location = storage.as_location(url)
    _check_size(location)
    try:
        return storage.open_read(location)
    except OSError as exc:
        raise ShardError(f"{url}: cannot open shard ({exc})") from exc


def _check_size(location: Location) -> None:
    """Raise ShardError when the shard's sidecar records another size than the file has."""
    if not storage.basename(location).endswith(".tar"):
        return
    try:
        expected = json.loads(storage.read_bytes(sidecar_path(location))).get("bytes")
    except (OSError, ValueError, AttributeError):
        return  # no sidecar, or an unreadable one (verify's business): the tar itself may still be fine
    size = storage.size(location)
    if isinstance(expected, int) and size is not None and expected != size:
        raise ShardError(f"{location}: truncated or changed ({size} bytes, its sidecar says {expected})")


def tar_members(stream: BinaryIO, shard: str) -> Iterator[dict]:
    """Yield `{"fname", "data", "__url__"}` per member of a tar stream, refusing unsafe members.

    webdataset's own `tar_file_iterator` silently skips links and device files; intervox refuses
    the whole shard instead. A seekable stream (a local file, an fsspec file) is read member by
    member at the offsets the headers give, and must end in tar's zero padding: tarfile takes a
    damaged header after the first for the end of the archive, which would silently drop the rest
    of the shard. Raises ShardError naming the shard and the member.
    """
    seekable = _seekable(stream)
    try:
        if seekable:
            rest = yield from _plain_members(stream, shard)
            if rest is None:
                return
            stream.seek(rest)
        yield from _tarfile_members(stream, shard, seekable)
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise ShardError(f"{shard}: corrupt or truncated tar ({exc})") from exc


_PLAIN_FILE_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)


def _plain_members(stream: BinaryIO, shard: str) -> Generator[dict, None, int | None]:
    """Yield members while their headers are plain: a regular file, a short name, an octal size.

    What intervox's writer makes is read here from the header's own fields (tarfile parses every
    field of every header: about 2/3 of the reader's cost outside decoding). At the first header
    that is anything else (a long name, pax, a link, a bad checksum) this returns its offset, and
    tarfile reads on from there; at the end of the archive, None.
    """
    while True:
        offset = stream.tell()
        header = stream.read(tarfile.BLOCKSIZE)
        if not header.strip(b"\0") and (header or offset):  # end of archive, or of file at a member's end
            _check_end(stream, shard, offset)
            return None
        if (len(header) < tarfile.BLOCKSIZE or header[156:157] not in _PLAIN_FILE_TYPES or header[124] & 0x80
                or (header[257:263] == b"ustar\0" and header[345]) or not _checksum_ok(header)):
            return offset
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        size = int(header[124:136].split(b"\0", 1)[0].strip() or b"0", 8)
        _check_name(name, shard)
        _check_format(name, shard)
        data = stream.read(size)
        padding = -size % tarfile.BLOCKSIZE
        if len(data) != size or len(stream.read(padding)) != padding:
            raise ShardError(f"{shard}: member {name!r} is truncated")
        yield {"fname": name, "data": data, "__url__": shard}


def _checksum_ok(header: bytes) -> bool:
    """Return whether the header's checksum field holds the unsigned sum of its bytes (field as spaces)."""
    try:
        stored = int(header[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(header) - sum(header[148:156]) + 8 * 0x20


def _check_end(stream: BinaryIO, shard: str, offset: int) -> None:
    """Raise ShardError unless only zero padding follows the end of archive at `offset`."""
    stream.seek(offset)
    if stream.read(1 << 20).strip(b"\0"):
        raise ShardError(f"{shard}: damaged tar header at byte {offset} (the rest of the shard is "
                         "unreadable)")


def _tarfile_members(stream: BinaryIO, shard: str, seekable: bool) -> Iterator[dict]:
    """Yield the members of a tar stream from its current position, through tarfile."""
    with tarfile.open(fileobj=stream, mode="r:" if seekable else "r|") as tar:
        for member in tar:
            check_member(member, shard)
            if seekable:
                stream.seek(member.offset_data)
                data = stream.read(member.size)
            else:
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
            if len(data) != member.size:
                raise ShardError(f"{shard}: member {member.name!r} is truncated")
            yield {"fname": member.name, "data": data, "__url__": shard}
            tar.members = []  # streaming: do not keep every TarInfo of a large shard
        if seekable:
            _check_end(stream, shard, tar.offset)


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def iter_tar_samples(path: str | Path) -> Iterator[dict]:
    """Yield `{"__key__", "__shard__", ext: bytes, ...}` per sample of one shard, in tar order.

    Raises ShardError naming the shard on unsafe members, corrupt or truncated tars; a sample is
    yielded only once its last member was read.
    """
    shard = str(path)
    with open_shard(shard) as stream:
        try:
            for sample in group_by_keys(tar_members(stream, shard), lcase=False):
                sample["__shard__"] = sample.pop("__url__")  # intervox's name for it, as before
                yield sample
        except ValueError as exc:  # group_by_keys: a member name repeated within one sample
            raise ShardError(f"{shard}: {exc.args[0]}") from exc


def decode_npy(data: bytes, name: str) -> np.ndarray:
    """Return the array of .npy bytes, never unpickling objects."""
    try:
        return np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ShardError(f"{name}: not a plain .npy array ({exc})") from exc


def _safe_handler(key: str, data: bytes) -> object:
    """Decode one member for webdataset's Decoder (`key` is `.EXT`, e.g. `.pooled.npy`)."""
    last = key.rsplit(".", 1)[-1]
    if last in AUDIO_EXTS:
        return decode_audio_bytes(data, key)
    if last == "json":
        return json.loads(data)
    if last == "npy":
        return decode_npy(data, key)
    if last == "txt":
        return data.decode("utf-8")
    raise ShardError(f"{key}: refusing to decode a format intervox never writes")


# pre=[] and post=[]: webdataset's default handlers unpickle (.pyd/.pickle) and torch.load (.pth)
SAFE_DECODER = Decoder([_safe_handler], pre=[], post=[])


def decode_sample(sample: dict) -> dict:
    """Return a sample with flac/wav -> (audio, sr), json -> dict, npy -> array, txt -> str.

    Raises ShardError naming the shard, the sample and the member that cannot be decoded.
    """
    try:
        return SAFE_DECODER.decode(sample)
    except DecodingError as exc:
        cause = exc.__cause__
        where = f"{sample.get('__shard__', exc.url or '?')}:{exc.key}"
        if isinstance(cause, (ShardError, AudioError)):  # their message starts with `.EXT: `
            raise ShardError(f"{where}{cause}") from cause
        raise ShardError(f"{where}.{exc.k}: cannot decode ({cause!r})") from cause


@dataclass
class StreamStats:
    """Counts of a shard stream: shards read, shards skipped as bad (with reasons), items yielded."""

    shards_read: int = 0
    samples: int = 0
    bad_shards: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"shards_read": self.shards_read, "samples": self.samples,
                "bad_shards": [{"shard": s, "reason": r} for s, r in self.bad_shards]}


def read_decoded(url: str, decode: Callable[[dict], dict] | None = decode_sample) -> Iterator[dict]:
    """Yield the (decoded) samples of one shard: the default per-shard `read` of `read_shards`."""
    for sample in iter_tar_samples(url):
        yield decode(sample) if decode is not None else sample


def _read_shards(sources: Iterable[dict], read: Callable[[str], Iterable] = read_decoded,
                 stats: StreamStats | None = None, max_bad_fraction: float = 0.0,
                 total: int | None = None) -> Iterator:
    """Yield what `read(url)` yields for each `{"url"}` source, skipping bad shards with a warning.

    A shard is counted bad once (a resampled stream does not read it again); ShardError is raised
    once the bad shards exceed `max_bad_fraction` of `total` (None: the sources, a finite list).
    """
    stats = stats if stats is not None else StreamStats()
    if total is None:
        sources = list(sources)
        total = len(sources)
    bad: set[str] = set()
    for source in sources:
        url = source["url"]
        if url in bad:
            continue
        try:
            for item in read(url):
                stats.samples += 1
                yield item
        except ShardError as exc:
            bad.add(url)
            stats.bad_shards.append((url, str(exc)))
            log.warning("skipping bad shard %s: %s", url, exc)
            if len(bad) > max_bad_fraction * total:
                raise ShardError(f"{len(bad)} of {total} shards are bad (allowed fraction "
                                 f"{max_bad_fraction}); last: {exc}") from exc
            continue
        stats.shards_read += 1


read_shards = wds.pipelinefilter(_read_shards)


def shard_source(urls: Iterable[str | Path], *, seed: int | None = None, resampled: bool = False,
                 split: bool = True) -> list:
    """Return the first stages of a pipeline: which shards this rank and worker read, in what order.

    `split=False`: every shard, in this process (evaluation, QC, export).
    `seed` set: a seeded order shared by every rank (so `split_by_node` gives disjoint shards);
    `resampled`: this rank's shards (split by node first, so ranks stay disjoint) drawn with
    replacement forever, seeded per rank and worker (`wds.ResampledShards`, deterministic).
    """
    urls = [str(u) for u in urls]
    if not urls:
        raise ShardError("no shards to read")
    if resampled:
        mine = list(wds.split_by_node(urls))
        if not mine:
            raise ShardError(f"{len(urls)} shards leave this rank none to read")
        return [wds.ResampledShards(mine, seed=seed or 0, deterministic=True)]
    splitters = [wds.split_by_node, wds.split_by_worker] if split else []
    return [wds.SimpleShardList(urls, seed=seed), *splitters]


def shard_pipeline(urls: Iterable[str | Path], *, read: Callable[[str], Iterable] = read_decoded,
                   stats: StreamStats | None = None, max_bad_fraction: float = 0.0, seed: int | None = None,
                   resampled: bool = False, split: bool = True, stages: Iterable = (),
                   epoch_length: int | None = None) -> wds.DataPipeline:
    """Return a webdataset pipeline over shards: source, split, safe read + decode, then `stages`.

    The bad fraction counts against the shards this rank and worker read; under resampling,
    against the rank's shards. `epoch_length`: `with_epoch`, that many items per iteration
    (per DataLoader worker), for resampled (endless) sources.
    """
    source = shard_source(urls, seed=seed, resampled=resampled, split=split)
    total = None if not resampled else len(source[0].urls)
    reader = read_shards(read=read, stats=stats, max_bad_fraction=max_bad_fraction, total=total)
    pipeline = wds.DataPipeline(*source, reader, *stages)
    return pipeline.with_epoch(nbatches=epoch_length) if epoch_length else pipeline


def worker_info() -> tuple[int, int, int, int]:
    """Return (rank, world, worker, workers) as `split_by_node` and `split_by_worker` see them.

    Ranks come from torchrun's RANK/WORLD_SIZE (else torch.distributed), workers from the
    DataLoader worker this runs in.
    """
    return wds.utils.pytorch_worker_info()


def shuffled(items: Iterable, size: int, seed: Sequence[int]) -> Iterator:
    """Yield `items` through webdataset's shuffle buffer of `size` items (an item moves whole), seeded."""
    rng = random.Random(int(np.random.SeedSequence(list(seed)).generate_state(1)[0]))
    yield from wds.shuffle(size, initial=size, rng=rng)(iter(items))


def iter_shards(
    paths: Iterable[str | Path],
    *,
    stats: StreamStats | None = None,
    max_bad_fraction: float = 0.0,
    decode: Callable[[dict], dict] | None = decode_sample,
) -> Iterator[dict]:
    """Yield decoded samples of many shards in this process, in order, skipping corrupt ones.

    Streams: a shard's samples are yielded as they are read (see the module docstring for what a
    shard that turns bad half-way gives); ShardError is raised once the bad fraction exceeds
    `max_bad_fraction`.
    """
    paths = [str(p) for p in paths]
    if not paths:
        return iter(())
    return iter(shard_pipeline(paths, read=partial(read_decoded, decode=decode), stats=stats,
                               max_bad_fraction=max_bad_fraction, split=False))


def shard_loader(urls: Iterable[str | Path], *, workers: int = 0, batch_size: int | None = None,
                 decode: Callable[[dict], dict] | None = decode_sample, max_bad_fraction: float = 0.0,
                 seed: int | None = None, prefetch: int = 4, transfer: int = 16) -> Iterable:
    """Return an iterable of samples that reads, checks and decodes shards in `workers` processes.

    A `torch.utils.data.DataLoader` (webdataset's WebLoader) with `prefetch` transfers queued per
    worker; shards are split between workers (`split_by_worker`) and ranks (`split_by_node`).
    Samples come one by one, or in lists of `batch_size`. From workers they travel in lists of
    `transfer` (or of `batch_size`): one pickled sample per queue item costs the main process
    ~0.5 ms of CPU per clip, more than a third of its decode. Samples of different workers
    interleave, so the order is not the shards' order.
    """
    per_item = batch_size or (transfer if workers else None)
    stages = [wds.batched(per_item, collation_fn=list, partial=True)] if per_item else []
    pipeline = shard_pipeline(urls, read=partial(read_decoded, decode=decode),
                              max_bad_fraction=max_bad_fraction, seed=seed, stages=stages)
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=workers, collate_fn=_identity,
                           prefetch_factor=prefetch if workers else None)
    return loader if batch_size or not per_item else loader.compose(_unlist)


def _unlist(lists: Iterable[list]) -> Iterator:
    for items in lists:
        yield from items


def _identity(x: object) -> object:
    return x


def list_shards(directory: str | Path) -> list[Location]:
    """Return the finished shards (`*.tar`, never `*.tmp`) of a folder or a URL, sorted by name."""
    return storage.list_files(directory, ".tar")
