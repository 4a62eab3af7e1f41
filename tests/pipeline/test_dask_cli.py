"""Shard builds into S3 (a real S3-compatible server on the loopback), in-process and on a cluster
of `dask scheduler` + two `dask worker` processes started from the command line, one of which is
killed mid-task at a fault point. Nothing is shared but the store: the source audio is read from
S3 too, and the shards must equal a local build's byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from intervox.pipeline.run import build_shards, load_shards_config
from intervox.shards import storage
from intervox.shards.read import iter_tar_samples
from intervox.shards.write import file_sha256, read_sidecar

ROOT = Path(__file__).resolve().parents[2]
DASK = str(Path(sys.executable).with_name("dask"))
# anchor + a noise copy each, 4 clips a shard: 12 clips in 3 shards (a channel op: no identity judge)
PLAN = {"interventions": [{"op": {"name": "noise"}}], "block": {"speakers": 1, "contents": 2},
        "shard_size": 4}


def upload_source(manifest: Path, url: str) -> str:
    """Copy the manifest's audio folder to `url` and return it (the workers' only copy of the audio)."""
    storage.upload_tree(manifest.parent / "audio", storage.join(url, "audio"))
    return url


def tar_shas(location: str | Path) -> dict[str, str]:
    return {storage.basename(p): file_sha256(p) for p in storage.list_files(location, ".tar")}


@pytest.fixture
def clean(source: Path, write_config, tmp_path: Path) -> tuple[Path, dict[str, str]]:  # noqa: ANN001
    """A local in-process build of the source (3 shards): its config and tar hashes."""
    config = write_config(tmp_path / "local.yaml", source, **PLAN)
    report = build_shards(load_shards_config(config), tmp_path / "clean", scheduler="sync", progress=False)
    assert (report.written, report.shards_total) == (12, 3)
    return config, tar_shas(tmp_path / "clean")


def s3_config(write_config, tmp_path: Path, source: Path, root: str, **extra: object) -> Path:  # noqa: ANN001
    """Write the clean build's config, reading the source audio from `root` (a URL)."""
    return write_config(tmp_path / "s3.yaml", source, **PLAN,
                        source={"kind": "manifest", "path": str(source), "root": root}, **extra)


def test_build_into_s3_equals_the_local_build_and_resumes(
    source: Path, write_config, tmp_path: Path, s3_bucket: str, clean  # noqa: ANN001
) -> None:
    root = upload_source(source, f"{s3_bucket}/corpus")
    cfg = load_shards_config(s3_config(write_config, tmp_path, source, root))
    out = f"{s3_bucket}/en"
    report = build_shards(cfg, out, scheduler="sync", progress=False)
    assert (report.planned, report.written, report.quarantined) == (12, 12, 0)
    assert tar_shas(out) == clean[1]
    for tar in storage.list_files(out, ".tar"):  # the sidecar names the tar's bytes
        assert read_sidecar(tar).sha256 == file_sha256(tar)
    index = json.loads(storage.read_bytes(f"{out}/index.json"))
    assert index["counts"]["written"] == 12 and storage.exists(f"{out}/dataset_card.md")
    assert storage.exists(f"{out}/quarantine.jsonl") and len(storage.list_files(f"{out}/.parts")) == 3
    with storage.local_file(f"{out}/train-000000.tar") as copy:
        keys = [s["__key__"] for s in iter_tar_samples(copy)]
    assert keys[:2] == ["train-000000-000000", "train-000000-000001"]

    again = build_shards(cfg, out, scheduler="sync", progress=False)
    assert (again.shards_skipped, again.shards_built) == (3, 0)
    storage.remove(f"{out}/train-000001.tar")  # a shard lost from the store is rebuilt, the rest kept
    third = build_shards(cfg, out, scheduler="sync", progress=False)
    assert (third.shards_skipped, third.shards_built) == (2, 1) and tar_shas(out) == clean[1]


def test_missing_source_object_is_quarantined_naming_its_url(
    source: Path, write_config, tmp_path: Path, s3_bucket: str  # noqa: ANN001
) -> None:
    root = upload_source(source, f"{s3_bucket}/corpus")
    storage.remove(f"{root}/audio/v0s0.wav")
    cfg = load_shards_config(s3_config(write_config, tmp_path, source, root, max_quarantine_fraction=1.0))
    report = build_shards(cfg, f"{s3_bucket}/en", scheduler="sync", progress=False)
    lines = storage.read_bytes(f"{s3_bucket}/en/quarantine.jsonl").decode().splitlines()
    reasons = {json.loads(x)["reason"] for x in lines}
    assert report.quarantined == len(lines) >= 1
    assert any(f"{root}/audio/v0s0.wav" in r for r in reasons), reasons


def _spawn(args: list[str], cwd: Path, log: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1", **env})


@pytest.fixture
def cli_cluster(tmp_path: Path, s3_endpoint: str) -> Iterator[tuple[str, subprocess.Popen, Path]]:
    """`dask scheduler` + a healthy `dask worker` + one told to SIGKILL itself in its first shard task.

    The doomed worker runs without a nanny, so it stays dead and the healthy one must finish.
    Yields (scheduler address, the doomed worker's process, the folder of the logs).
    """
    from distributed import Client

    logs = tmp_path / "logs"
    logs.mkdir()
    sched_file = tmp_path / "scheduler.json"
    common = ["--nthreads", "1", "--no-dashboard", "--scheduler-file", str(sched_file)]
    procs = [_spawn([DASK, "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                     "--scheduler-file", str(sched_file)], tmp_path, logs / "scheduler.log")]
    try:
        # each worker starts in its own empty folder: nothing local is shared with the driver
        for name, extra, env in (("healthy", ["--nanny"], {}),
                                 ("doomed", ["--no-nanny"], {"INTERVOX_FAULT": "shards.in_task"})):
            (tmp_path / name).mkdir()
            procs.append(_spawn([DASK, "worker", *common, *extra, "--name", name], tmp_path / name,
                                logs / f"{name}.log", **env))
        with Client(scheduler_file=str(sched_file), timeout="60s") as client:  # waits for the file
            client.wait_for_workers(2, timeout=120)
            address = client.scheduler.address
        yield address, procs[2], logs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


@pytest.mark.slow
def test_cli_cluster_with_a_worker_killed_mid_task_builds_into_s3(
    source: Path, write_config, tmp_path: Path, s3_bucket: str, clean, cli_cluster  # noqa: ANN001
) -> None:
    address, doomed, logs = cli_cluster
    root = upload_source(source, f"{s3_bucket}/corpus")
    cfg = load_shards_config(s3_config(write_config, tmp_path, source, root))
    report = build_shards(cfg, f"{s3_bucket}/en", scheduler=address, progress=False)
    # the doomed worker took a shard task and died in it (SIGKILL at the fault point) ...
    assert doomed.wait(timeout=60) == -9, (logs / "doomed.log").read_text()[-2000:]
    # ... and the build still wrote every clip, byte-identical to the local in-process build
    assert (report.planned, report.written, report.quarantined) == (12, 12, 0)
    assert report.shards_built == 3
    assert tar_shas(f"{s3_bucket}/en") == clean[1]
    assert not storage.list_files(f"{s3_bucket}/en", ".tmp")


@pytest.mark.slow
def test_grid_build_into_s3_uploads_its_source_for_the_workers(
    tmp_path: Path, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path / "cache"))
    cfg = load_shards_config(ROOT / "configs/shards/tiny.yaml",
                             ["interventions=[{op: {name: noise}}]", "identities.judge=none"])
    out = f"{s3_bucket}/tiny"
    report = build_shards(cfg, out, scheduler="sync", progress=False)
    assert report.written == report.planned > 0 and report.quarantined == 0
    # the driver rendered the grid in its local folder for this URL, then uploaded it
    local = next((tmp_path / "cache" / "remote").iterdir()) / "source"
    rendered = sorted(p.name for p in (local / "audio").iterdir())
    assert [storage.basename(p) for p in storage.list_files(f"{out}/source/audio")] == rendered
    assert storage.read_bytes(f"{out}/source/manifest.jsonl") == (local / "manifest.jsonl").read_bytes()
    names = [storage.basename(p) for p in storage.list_files(out, ".tar")]
    assert names == [f"{split}-000000.tar" for split in ("keywords", "test_ood", "train", "validation")]
    assert json.loads(storage.read_bytes(f"{out}/index.json"))["counts"]["written"] == report.written
