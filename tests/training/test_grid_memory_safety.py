"""The shard index refuses what the streaming reader refuses: unsafe members, pickles, truncation."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest

from intervox.errors import ShardError
from intervox.shards.random_access import parse_npy_header, scan_shard
from intervox.shards.write import sidecar_path, write_shard
from intervox.training.feature_index import index_feature_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from relhelpers import UNSAFE_KINDS, tamper, truncate  # noqa: E402 - the reliability tests' tamperer

REFUSAL = {"pyd": "never writes", "pth": "never writes", "pickle": "never writes",
           "dotdot": "unsafe member name", "absolute": "unsafe member name", "symlink": "is a link",
           "hardlink": "is a link", "device": "device or special file", "object_npy": "not a plain .npy"}


def npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def feature_shard(path: Path, n: int = 2) -> Path:
    """Write a valid feature shard of `n` clips (json + pooled.npy) with its sidecar."""
    samples = [{"__key__": f"{path.stem}-{i:06d}", "pooled.npy": npy(np.full((3, 4), i, dtype=np.float16)),
                "json": {"speaker": f"s{i}", "content": "c", "upstream": {"name": "x"}}} for i in range(n)]
    write_shard(path, samples, plan_hash="p")
    return path


@pytest.mark.parametrize("kind", UNSAFE_KINDS)
def test_index_refuses_unsafe_members(tmp_path: Path, kind: str) -> None:
    feature_shard(tmp_path / "train-000000.tar")
    bad = feature_shard(tmp_path / "train-000001.tar")
    marker = tmp_path / "unpickled"
    tamper(bad, kind, marker)
    with pytest.raises(ShardError, match=f"train-000001.tar.*{REFUSAL[kind]}"):
        index_feature_table([tmp_path])
    index = index_feature_table([tmp_path], max_bad_fraction=0.5)
    assert len(index.keys) == 2 and [b["shard"] for b in index.bad_shards] == ["train-000001.tar"]
    assert not marker.exists()


@pytest.mark.parametrize("sidecar", [True, False])
def test_index_refuses_truncated_shards(tmp_path: Path, sidecar: bool) -> None:
    bad = feature_shard(tmp_path / "train-000000.tar", n=8)
    truncate(bad, 0.6)
    if not sidecar:  # then only the tar itself can tell
        sidecar_path(bad).unlink()
    with pytest.raises(ShardError, match="train-000000.tar: .*truncated"):
        scan_shard(bad, {"json", "pooled.npy"})


def test_npy_header_must_match_its_member() -> None:
    data = npy(np.zeros((7, 512), np.float16))
    header = parse_npy_header(data[:256], len(data), "k.pooled.npy")
    assert header.shape == (7, 512) and header.dtype == np.float16 and header.nbytes == 7 * 512 * 2
    declared = r"k.pooled.npy: .npy header declares \[7, 512\] float16 \(7296 bytes\) but the member has 7000"
    with pytest.raises(ShardError, match=declared):
        parse_npy_header(data[:256], 7000, "k.pooled.npy")
    with pytest.raises(ShardError, match="k.pooled.npy: not a plain .npy array"):
        parse_npy_header(b"NOTNPY" + data[6:256], len(data), "k.pooled.npy")
