"""Faults during `intervox shards build`: SIGKILL of the whole run and of one Dask worker, at fault points.

Every kill lands at a named fault point (INTERVOX_FAULT, intervox/faults.py), never on a
timer. After every kill a rerun resumes; the final shards are byte-identical to an
uninterrupted run, readers never see a partial shard, and no `*.tmp` survives.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from relhelpers import shas

from intervox.pipeline.run import build_shards, load_shards_config
from intervox.shards.read import iter_tar_samples, list_shards
from intervox.shards.write import file_sha256

TINY = {"block": {"speakers": 1, "contents": 1}, "shard_size": 2}  # one anchor + its noise copy a shard


def twelve_anchors(source: Path, out: Path) -> Path:
    """Write a 12-utterance manifest: the 6 source clips under two speaker names each (12 shards)."""
    lines = [json.loads(line) for line in source.read_text().splitlines()]
    copies = [{**d, "id": d["id"] + "b", "speaker": d["speaker"] + "b"} for d in lines]
    out.write_text("".join(json.dumps(d, sort_keys=True) + "\n" for d in lines + copies))
    return out


def finished(out: Path) -> int:
    """Return how many shards of `out` have their sidecar (the last file a shard task writes)."""
    return sum(1 for _ in out.glob("train-*.json"))


def check_visible(out: Path, expected: dict[str, str]) -> int:
    """Assert every shard a reader can list is whole and equals the clean run's; return how many."""
    listed = list_shards(out) if out.is_dir() else []
    for tar in listed:
        assert tar.suffix == ".tar"
        assert file_sha256(tar) == expected[tar.name], f"{tar.name} is visible but is not the finished shard"
        assert len(list(iter_tar_samples(tar))) == 2
    return len(listed)


@pytest.mark.slow
def test_sigkill_at_fault_points_then_rerun_is_byte_identical(
    source, write_config, tmp_path, run_cli  # noqa: ANN001
) -> None:
    manifest = twelve_anchors(source, tmp_path / "m12.jsonl")
    config = write_config(tmp_path / "c.yaml", manifest, **TINY)
    clean = build_shards(load_shards_config(config), tmp_path / "clean", scheduler="sync", progress=False)
    assert clean.shards_total == 12 and clean.written == 24
    expected = shas(tmp_path / "clean")

    out = tmp_path / "killed"
    args = ["-m", "intervox", "shards", "build", "--config", str(config), "--out", str(out), "--no-progress"]
    # 1-2. in-process builds die right after their first / second shard: exactly 1, then 3 are finished
    first = run_cli([*args, "--scheduler", "sync"], fault="shards.after_shard:0")
    assert first.killed, first.stderr
    assert finished(out) == 1 and check_visible(out, expected) == 1
    second = run_cli([*args, "--scheduler", "sync"], fault="shards.after_shard:1")
    assert second.killed, second.stderr
    assert "taking over the lock left by pid" in second.stderr  # the killed run could not release it
    assert finished(out) == 3 and check_visible(out, expected) == 3
    # 3. two Dask workers: the build dies once it has recorded one more shard (9 are left, so it
    # always gets there); its workers may have finished any number of others by then, each whole
    third = run_cli([*args, "--workers", "2"], fault="shards.after_shard:0")
    assert third.killed, third.stderr
    done = finished(out)
    assert 4 <= done <= 12 and check_visible(out, expected) >= 4

    rerun = build_shards(load_shards_config(config), out, scheduler="sync", progress=False)
    assert (rerun.planned, rerun.written, rerun.quarantined) == (24, 24, 0)
    assert (rerun.shards_skipped, rerun.shards_built) == (done, 12 - done)
    assert shas(out) == expected
    assert not list(out.rglob("*.tmp"))
    index = json.loads((out / "index.json").read_text())
    assert index["counts"]["input"] == index["counts"]["written"] == 24


@pytest.mark.slow
def test_worker_killed_mid_task_is_retried_and_byte_identical(
    source, write_config, tmp_path, monkeypatch  # noqa: ANN001
) -> None:
    cfg = load_shards_config(write_config(tmp_path / "c.yaml", source, block={"speakers": 1, "contents": 2},
                                          shard_size=4))
    clean = build_shards(cfg, tmp_path / "clean", scheduler="sync", progress=False)
    assert (clean.written, clean.shards_total) == (12, 3)
    expected = shas(tmp_path / "clean")

    # the worker that builds the plan's second shard SIGKILLs itself before writing the tar;
    # the marker lets exactly one process die, so Dask's retry on a live worker runs through
    marker = tmp_path / "worker-died"
    monkeypatch.setenv("INTERVOX_FAULT", "shards.in_task:1")
    monkeypatch.setenv("INTERVOX_FAULT_ONCE", str(marker))
    report = build_shards(cfg, tmp_path / "out", workers=2, progress=False)
    died = int(marker.read_text())
    assert died > 0 and died != os.getpid()
    assert (report.planned, report.written, report.quarantined) == (12, 12, 0)
    assert shas(tmp_path / "out") == expected
    assert not list((tmp_path / "out").rglob("*.tmp"))


def test_crash_between_write_and_rename_never_exposes_a_partial_shard(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    """The deterministic twin of the SIGKILL test: die after the bytes are written, before the rename."""
    from intervox.shards import storage, write

    tar = tmp_path / "train-000000.tar"
    old = write.write_shard(tar, [{"__key__": "a", "json": {"v": 1}}], plan_hash="p")

    def power_cut(fd: int) -> None:
        raise OSError("power cut during fsync")

    monkeypatch.setattr(storage.os, "fsync", power_cut)  # the atomic write lives in storage.py
    with pytest.raises(OSError, match="power cut"):
        write.write_shard(tar, [{"__key__": "a", "json": {"v": 2}}, {"__key__": "b", "json": {}}], "p")
    with pytest.raises(OSError, match="power cut"):
        write.write_shard(tmp_path / "train-000001.tar", [{"__key__": "c", "json": {}}], "p")
    monkeypatch.undo()
    assert list_shards(tmp_path) == [tar]  # the new shard never became visible, the .tmp files are not listed
    assert file_sha256(tar) == old.sha256 and write.shard_is_complete(tar, "p")
    assert [s["__key__"] for s in iter_tar_samples(tar)] == ["a"]
    assert sorted(p.name for p in tmp_path.glob("*.tmp")) == ["train-000000.tar.tmp", "train-000001.tar.tmp"]
