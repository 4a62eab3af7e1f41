"""The one reader: webdataset stages, streaming, damaged headers, node/worker splits, DataLoader workers."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest

from intervox.audio import encode_flac
from intervox.errors import ShardError
from intervox.shards.read import StreamStats, iter_shards, iter_tar_samples, shard_loader, shard_pipeline
from intervox.shards.write import write_shard


def clip_shard(path: Path, n: int = 3) -> Path:
    """Write a shard of `n` one-tone clips (KEY.flac + KEY.json) with its sidecar."""
    t = np.arange(1600) / 16000
    samples = [{"__key__": f"{path.stem}-{i:06d}", "json": {"i": i, "shard": path.stem},
                "flac": encode_flac(0.1 * np.sin(2 * np.pi * (200 + 50 * i) * t), 16000)} for i in range(n)]
    write_shard(path, samples, plan_hash="p")
    return path


def test_a_damaged_header_mid_shard_is_an_error_not_a_shorter_shard(tmp_path: Path) -> None:
    tar = clip_shard(tmp_path / "train-000000.tar")
    with tarfile.open(tar) as t:
        third = t.getmembers()[2].offset  # sample 1's first header
    data = bytearray(tar.read_bytes())
    data[third + 100:third + 108] = b"garbage!"  # its mode field: the header checksum fails
    tar.write_bytes(bytes(data))  # same size: the sidecar's byte count cannot see it
    with tarfile.open(tar, "r|") as t:  # what tarfile alone makes of it: a valid 1-sample archive
        assert len(list(t)) == 2
    with pytest.raises(ShardError, match=f"{tar}: damaged tar header at byte {third}"):
        list(iter_tar_samples(tar))


def test_samples_stream_before_a_later_bad_member_is_reached(tmp_path: Path) -> None:
    tar = clip_shard(tmp_path / "train-000000.tar")
    with tarfile.open(tar, "a") as t:  # a pickle after three good samples
        info = tarfile.TarInfo("zz.pyd")
        info.size = 4
        t.addfile(info, io.BytesIO(b"\x80\x04K\x01"))
    (tmp_path / "train-000000.json").unlink()
    stream = iter_shards([tar])
    first = next(stream)  # decoded and yielded before the rest of the shard is read
    assert first["json"]["i"] == 0 and first["flac"][1] == 16000
    with pytest.raises(ShardError, match="'zz.pyd' has a format intervox never writes"):
        list(stream)


def test_ranks_and_workers_read_disjoint_shards_that_cover_the_set(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    shards = [clip_shard(tmp_path / f"train-{i:06d}.tar", n=2) for i in range(5)]
    seen = []
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        for worker in (0, 1):
            monkeypatch.setenv("WORKER", str(worker))
            monkeypatch.setenv("NUM_WORKERS", "2")
            seen.append({s["json"]["shard"] for s in shard_pipeline(shards, seed=7)})
    assert [len(s) for s in seen] in ([2, 1, 1, 1], [1, 1, 2, 1], [1, 2, 1, 1], [1, 1, 1, 2])
    assert set().union(*seen) == {p.stem for p in shards} and sum(len(s) for s in seen) == 5


def test_resampled_rank_draws_only_its_own_shards_deterministically(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    shards = [clip_shard(tmp_path / f"train-{i:06d}.tar", n=1) for i in range(4)]
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    draws = [[s["json"]["shard"] for s in shard_pipeline(shards, seed=3, resampled=True).with_epoch(12)]
             for _ in range(2)]
    assert set(draws[0]) == {"train-000001", "train-000003"} and draws[0] == draws[1]


def test_two_decode_workers_give_every_sample_once_and_count_bad_shards(tmp_path: Path) -> None:
    shards = [clip_shard(tmp_path / f"train-{i:06d}.tar", n=3) for i in range(4)]
    keys = sorted(s["__key__"] for s in shard_loader(shards, workers=2))
    assert keys == sorted(s["__key__"] for p in shards for s in iter_tar_samples(p)) and len(keys) == 12
    batches = list(shard_loader(shards, workers=2, batch_size=2))
    assert sorted(len(b) for b in batches) == [2] * 6 and isinstance(batches[0][0]["flac"][0], np.ndarray)
    shards[2].write_bytes(shards[2].read_bytes()[:1500])
    stats = StreamStats()
    got = list(iter_shards(shards, stats=stats, max_bad_fraction=0.25))
    assert len(got) == 9 and [s for s, _ in stats.bad_shards] == [str(shards[2])]
    with pytest.raises(ShardError, match="1 of 2 shards are bad"):  # a worker's share: 2 of the 4
        list(shard_loader(shards, workers=2))


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_members_tarfile_reads_with_extended_headers_come_back_whole_and_in_order(tmp_path: Path,
                                                                                 fmt: int) -> None:
    # plain headers are parsed by the reader itself; a long or non-ASCII name needs an extended
    # header (GNU 'L' or pax), which tarfile reads from that point on: both must give tarfile's view
    keys = ["a-000000", "b-" + "x" * 120, "c-sprecher-ä", "d-000003"]
    tar = tmp_path / "mixed.tar"
    with tarfile.open(tar, "w", format=fmt) as t:
        for i, key in enumerate(keys):
            for ext, data in (("json", b'{"i": %d}' % i), ("txt", b"t" * (i * 300))):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    got = list(iter_tar_samples(tar))
    assert [s["__key__"] for s in got] == keys
    assert [s["txt"] for s in got] == [b"t" * (i * 300) for i in range(4)]
    with tarfile.open(tar, "a", format=fmt) as t:  # a link after them: the shard is refused, not cut short
        link = tarfile.TarInfo("e-000004.json")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        t.addfile(link)
    with pytest.raises(ShardError, match="'e-000004.json' is a link"):
        list(iter_tar_samples(tar))
