"""The local copy of a shard set at a URL (real S3-compatible server on the loopback): same bytes, synced."""

from __future__ import annotations

from pathlib import Path

import pytest

from intervox.errors import ShardError
from intervox.shards import storage
from intervox.shards.mirror import local_shard_dir
from intervox.shards.write import write_shard


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path / "cache"))  # where the copies go
    return tmp_path / "cache"


def samples(n: int, version: int) -> list[dict]:
    return [{"__key__": f"k{i:03d}", "json": {"i": i, "v": version}, "txt": f"clip {i}"} for i in range(n)]


def remote_files(url: str) -> dict[str, bytes]:
    return {storage.basename(f): storage.read_bytes(f) for f in storage.list_files(url)}


def local_files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}


def test_a_local_folder_is_its_own_copy(tmp_path: Path) -> None:
    assert local_shard_dir(str(tmp_path)) == tmp_path and local_shard_dir(tmp_path) == tmp_path


def test_copy_holds_the_sets_bytes_and_follows_rebuilds(s3_bucket: str, cache: Path) -> None:
    url = f"{s3_bucket}/feats"
    for s in range(3):
        write_shard(f"{url}/train-{s:06d}.tar", samples(4, 0), plan_hash="p")
    storage.write_atomic(f"{url}/index.json", b'{"shards": 3}')
    local = local_shard_dir(url)
    assert local.is_relative_to(cache) and local_files(local) == remote_files(url)
    inodes = {p.name: p.stat().st_ino for p in local.iterdir()}
    assert local_shard_dir(url) == local  # nothing changed: no tar fetched again
    assert all(p.stat().st_ino == inodes[p.name] for p in local.glob("*.tar"))
    # a rebuild: shard 1 gets new samples of the same size (only its sidecar's sha256 tells), shard 2 goes
    write_shard(f"{url}/train-000001.tar", samples(4, 1), plan_hash="p")
    assert storage.size(f"{url}/train-000001.tar") == (local / "train-000001.tar").stat().st_size
    storage.remove(f"{url}/train-000002.tar")
    storage.remove(f"{url}/train-000002.json")
    assert local_shard_dir(url) == local
    assert local_files(local) == remote_files(url)
    assert sorted(p.name for p in local.glob("*.tar")) == ["train-000000.tar", "train-000001.tar"]
    assert (local / "train-000000.tar").stat().st_ino == inodes["train-000000.tar"]


def test_a_tar_that_is_not_its_sidecars_is_refused_and_not_kept(s3_bucket: str) -> None:
    url = f"{s3_bucket}/feats"
    write_shard(f"{url}/train-000000.tar", samples(4, 0), plan_hash="p")
    good = storage.read_bytes(f"{url}/train-000000.tar")
    storage.write_atomic(f"{url}/train-000000.tar", good[:-600] + b"\x01" * 600)  # bit rot, same size
    with pytest.raises(ShardError, match=r"train-000000.tar: its sha256 .* is not its sidecar's"):
        local_shard_dir(url)
    local = storage.work_dir(url) / "mirror"
    assert list(local.iterdir()) == []  # no torn tar, no temporary file left behind


def test_a_url_without_shards_is_an_error_naming_it(s3_bucket: str) -> None:
    storage.write_atomic(f"{s3_bucket}/empty/index.json", b"{}")
    with pytest.raises(ShardError, match=r"s3://.*/empty: no \*\.tar shards there to read"):
        local_shard_dir(f"{s3_bucket}/empty")
