"""Shard writer and safe reader: reproducible bytes, atomic files, refusal of unsafe members."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from intervox.errors import ShardError
from intervox.shards.read import StreamStats, decode_sample, iter_shards, iter_tar_samples
from intervox.shards.write import read_sidecar, shard_is_complete, write_shard


def samples(n=3):
    for i in range(n):
        buf = io.BytesIO()
        np.save(buf, np.full((2, 3), i, dtype=np.float16))
        yield {"__key__": f"train-000000-{i:06d}", "json": {"speaker": f"s{i}", "i": i},
               "pooled.npy": buf.getvalue()}


def test_same_samples_same_bytes_and_sidecar(tmp_path):
    a = write_shard(tmp_path / "a" / "train-000000.tar", samples(), plan_hash="p1")
    b = write_shard(tmp_path / "b" / "train-000000.tar", samples(), plan_hash="p1")
    assert a.sha256 == b.sha256 and a.count == 3
    assert read_sidecar(tmp_path / "a" / "train-000000.tar") == a
    assert shard_is_complete(tmp_path / "a" / "train-000000.tar", "p1")
    assert not shard_is_complete(tmp_path / "a" / "train-000000.tar", "other-plan")
    assert not list(tmp_path.rglob("*.tmp"))


def test_flipped_byte_is_not_complete(tmp_path):
    p = tmp_path / "train-000000.tar"
    write_shard(p, samples(), plan_hash="p")
    data = bytearray(p.read_bytes())
    data[600] ^= 0xFF
    p.write_bytes(bytes(data))
    assert not shard_is_complete(p, "p")


def test_roundtrip_decodes_without_pickle(tmp_path):
    p = tmp_path / "train-000000.tar"
    write_shard(p, samples(), plan_hash="p")
    out = [decode_sample(s) for s in iter_tar_samples(p)]
    assert [s["json"]["i"] for s in out] == [0, 1, 2]
    assert out[2]["pooled.npy"].dtype == np.float16 and out[2]["pooled.npy"][0, 0] == 2


def _tar_with(tmp_path, add):
    p = tmp_path / "evil.tar"
    with tarfile.open(p, "w") as tar:
        add(tar)
    return p


def _file(tar, name, data=b"{}"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "add, reason",
    [
        (lambda t: _file(t, "../escape.json"), "unsafe member name"),
        (lambda t: _file(t, "/etc/x.json"), "unsafe member name"),
        (lambda t: t.addfile(_link("a.json", tarfile.SYMTYPE)), "link"),
        (lambda t: t.addfile(_link("a.json", tarfile.CHRTYPE)), "device"),
        (lambda t: _file(t, "a.pickle", b"\x80\x04K\x01."), "never writes"),
        (lambda t: _file(t, "a.pth", b"\x80\x04K\x01."), "never writes"),
    ],
)
def test_unsafe_members_refused(tmp_path, add, reason):
    p = _tar_with(tmp_path, add)
    with pytest.raises(ShardError, match=reason):
        list(iter_tar_samples(p))


def _link(name, kind):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd"
    return info


def test_npy_with_objects_refused(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    p = _tar_with(tmp_path, lambda t: _file(t, "k.pooled.npy", buf.getvalue()))
    with pytest.raises(ShardError, match="not a plain .npy"):
        [decode_sample(s) for s in iter_tar_samples(p)]


def test_stream_skips_bad_shard_and_counts_it(tmp_path):
    good = [tmp_path / f"train-00000{i}.tar" for i in range(3)]
    for p in good:
        write_shard(p, samples(), plan_hash="p")
    bad = tmp_path / "train-000009.tar"
    bad.write_bytes(good[0].read_bytes()[:700])  # truncated mid-member
    stats = StreamStats()
    got = list(iter_shards([*good, bad], stats=stats, max_bad_fraction=0.5))
    assert len(got) == 9 and stats.shards_read == 3
    assert [s for s, _ in stats.bad_shards] == [str(bad)]
    with pytest.raises(ShardError, match="1 of 4 shards are bad"):
        list(iter_shards([*good, bad], max_bad_fraction=0.1))
