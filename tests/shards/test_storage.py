"""Shard storage on a local disk and on a real S3-compatible server (moto, loopback): same bytes, atomic."""

from __future__ import annotations

from pathlib import Path

import pytest

from intervox.errors import ShardError
from intervox.shards import storage
from intervox.shards.read import decode_sample, iter_shards, iter_tar_samples, list_shards
from intervox.shards.write import file_sha256, read_sidecar, shard_is_complete, write_shard


def samples(n: int = 3, version: int = 0) -> list[dict]:
    return [{"__key__": f"train-000000-{i:06d}", "json": {"i": i, "v": version}, "txt": f"clip {i}"}
            for i in range(n)]


def test_join_keeps_urls_and_paths_apart(tmp_path: Path) -> None:
    assert storage.join("s3://b/set/", "train-000000.tar") == "s3://b/set/train-000000.tar"
    assert storage.join("s3://b/set", ".parts", "x.json") == "s3://b/set/.parts/x.json"
    assert storage.join(str(tmp_path), "a.tar") == tmp_path / "a.tar"  # a local str becomes a Path
    assert storage.as_location(f"file://{tmp_path}") == tmp_path
    assert storage.parent("s3://b/set/a.tar") == "s3://b/set"
    assert storage.basename("s3://b/set/a.tar") == "a.tar"


def test_s3_shard_has_the_local_shards_bytes_and_sidecar(tmp_path: Path, s3_bucket: str) -> None:
    local = write_shard(tmp_path / "train-000000.tar", samples(), plan_hash="p")
    url = f"{s3_bucket}/set/train-000000.tar"
    remote = write_shard(url, samples(), plan_hash="p")
    assert remote == local  # same name, count, bytes, sha256, plan hash
    assert storage.list_files(f"{s3_bucket}/set") == [f"{s3_bucket}/set/train-000000.json", url]
    assert storage.list_files(f"{s3_bucket}/set", ".tar") == [url]
    assert read_sidecar(url) == local and file_sha256(url) == local.sha256
    assert storage.size(url) == local.bytes and shard_is_complete(url, "p")
    assert not shard_is_complete(url, "another-plan")
    got = [decode_sample(s) for s in iter_tar_samples(url)]  # the reader opens URLs itself
    assert [s["json"]["i"] for s in got] == [0, 1, 2] and got[2]["txt"] == "clip 2"
    assert list_shards(f"{s3_bucket}/set") == [url]
    assert [s["json"]["i"] for s in iter_shards(list_shards(f"{s3_bucket}/set"))] == [0, 1, 2]


def test_reader_refuses_a_truncated_s3_shard(s3_bucket: str) -> None:
    url = f"{s3_bucket}/set/train-000000.tar"
    write_shard(url, samples(), plan_hash="p")
    storage.write_atomic(url, storage.read_bytes(url)[:-1024])  # cut at a member boundary: still a valid tar
    with pytest.raises(ShardError, match="train-000000.tar: truncated or changed"):
        list(iter_tar_samples(url))


def test_failed_write_leaves_the_old_shard_whole_on_s3(s3_bucket: str) -> None:
    url = f"{s3_bucket}/set/train-000000.tar"
    old = write_shard(url, samples(version=1), plan_hash="p")

    def broken() -> object:  # the task dies half-way through its samples
        yield from samples(2, version=2)
        raise RuntimeError("worker lost mid-shard")

    with pytest.raises(RuntimeError, match="mid-shard"):
        write_shard(url, broken(), plan_hash="p")
    with pytest.raises(RuntimeError, match="mid-shard"):
        write_shard(f"{s3_bucket}/set/train-000001.tar", broken(), plan_hash="p")
    assert storage.list_files(f"{s3_bucket}/set", ".tar") == [url]  # the new shard never appeared
    assert read_sidecar(url) == old and file_sha256(url) == old.sha256
    assert not storage.list_files(f"{s3_bucket}/set", ".tmp")  # an object store commits without a temp name


def test_resume_trusts_the_sidecar_and_verify_rehashes(tmp_path: Path) -> None:
    """A resumed build checks plan + size (cheap); bit rot of the same size is `shards verify`'s job."""
    tar = tmp_path / "train-000000.tar"
    write_shard(tar, samples(), plan_hash="p")
    data = bytearray(tar.read_bytes())
    data[600] ^= 0xFF
    tar.write_bytes(bytes(data))
    assert shard_is_complete(tar, "p", check_sha256=False)
    assert not shard_is_complete(tar, "p")
    tar.write_bytes(bytes(data[:-512]))  # a torn copy changes the size: resume rebuilds it
    assert not shard_is_complete(tar, "p", check_sha256=False)


def test_remove_size_and_local_copy_on_s3(s3_bucket: str) -> None:
    url = f"{s3_bucket}/corpus/a.wav"
    storage.write_atomic(url, b"RIFF0000")
    assert storage.exists(url) and storage.size(url) == 8 and storage.read_bytes(url) == b"RIFF0000"
    with storage.local_file(url) as path:
        assert path.suffix == ".wav" and path.read_bytes() == b"RIFF0000"
    assert not path.exists()  # the temporary copy is gone
    storage.remove(url)
    storage.remove(url)  # removing a missing file is fine
    assert storage.size(url) is None and not storage.exists(url)
    assert storage.list_files(f"{s3_bucket}/nothing-here") == []


def test_upload_tree_copies_only_what_differs(tmp_path: Path, s3_bucket: str) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "audio" / "a.wav").write_bytes(b"aaaa")
    (tmp_path / "manifest.jsonl").write_text("{}\n")
    (tmp_path / "x.tmp").write_text("left by a killed run")
    assert storage.upload_tree(tmp_path, f"{s3_bucket}/src") == 2
    assert storage.read_bytes(f"{s3_bucket}/src/audio/a.wav") == b"aaaa"
    assert not storage.exists(f"{s3_bucket}/src/x.tmp")
    assert storage.upload_tree(tmp_path, f"{s3_bucket}/src") == 0  # a rerun uploads nothing again


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(ShardError, match="nosuchstore://b/set: cannot open this storage URL"):
        storage.list_files("nosuchstore://b/set")


def test_verify_checks_a_shard_set_on_s3(built_shards: Path, s3_bucket: str) -> None:
    from click.testing import CliRunner

    from intervox.shards.commands import verify_cmd
    from intervox.shards.verify import verify_dir

    url = f"{s3_bucket}/set"
    storage.upload_tree(built_shards, url)
    local, remote = verify_dir(built_shards), verify_dir(url)
    assert local.ok and remote.ok, remote.problems
    assert (remote.shards, remote.clips, remote.kinds) == (local.shards, local.clips, local.kinds)
    assert CliRunner().invoke(verify_cmd, [url]).exit_code == 0
    tar = storage.list_files(url, ".tar")[0]
    data = bytearray(storage.read_bytes(tar))
    data[600] ^= 0xFF  # bit rot of the same size: only the sha256 tells
    storage.write_atomic(tar, bytes(data))
    problems = verify_dir(url).problems
    assert f"{storage.basename(tar)}: sha256 differs from the sidecar (bytes changed)" in problems
    assert CliRunner().invoke(verify_cmd, [url]).exit_code == 1
