"""Feature stage execution: the report says what ran where, the in-process DataLoader mode gives
Dask's features, impossible option combinations are errors, failing tasks are retried."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from intervox.errors import ConfigError
from intervox.faults import InjectedFaultError
from intervox.features import extract
from intervox.features.extract import extract_features, plan_execution
from intervox.shards.read import decode_sample, iter_tar_samples, list_shards

UP = "whisper-tiny.en"


def pooled(directory) -> dict[str, np.ndarray]:
    """Return {key: pooled float16 array} of a feature set."""
    return {s["__key__"]: decode_sample(s)["pooled.npy"] for tar in list_shards(directory)
            for s in iter_tar_samples(tar)}


def test_in_process_decode_workers_say_where_and_change_nothing(audio_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="intervox.features.extract")
    serial = extract_features(audio_dir, tmp_path / "serial", UP, device="cpu")
    assert serial["execution"]["where"] == "in-process on cpu with 0 DataLoader decode workers"
    loader = extract_features(audio_dir, tmp_path / "loader", UP, device="cpu", decode_workers=2)
    where = "in-process on cpu with 2 DataLoader decode workers"
    assert loader["execution"]["mode"] == "in-process" and loader["execution"]["where"] == where
    assert loader["execution"]["decode_workers"] == 2 and loader["workers"] == 1
    assert where in caplog.text
    assert loader["written"] == 2 and loader["clips"] == 4 and loader["retries"] == {"limit": 2, "used": 0,
                                                                                     "shards": []}
    a, b = pooled(tmp_path / "serial"), pooled(tmp_path / "loader")
    assert a.keys() == b.keys() and len(a) == 4
    for key in a:  # same length batches, same process: the same numbers
        np.testing.assert_array_equal(a[key], b[key])
    index = json.loads((tmp_path / "loader" / "index.json").read_text())
    assert index["kind"] == "features"
    assert index["counts"] == {"shards": 2, "clips": 4, "bad_source_shards": 0}


@pytest.mark.slow
def test_dask_mode_equals_in_process_and_driver_loads_no_model(audio_dir, tmp_path, monkeypatch):
    extract_features(audio_dir, tmp_path / "loader", UP, device="cpu", decode_workers=2)
    monkeypatch.setattr(extract, "_UPSTREAMS", {})  # the driver's model cache, empty from here on
    report = extract_features(audio_dir, tmp_path / "dask", UP, device="cpu", workers=2)
    assert extract._UPSTREAMS == {}  # the Dask workers loaded the model, the driver did not
    assert report["execution"]["mode"] == "dask-local" and report["workers"] == 2
    assert report["execution"]["where"].startswith("Dask LocalCluster, 2 worker processes x 1 thread")
    assert report["written"] == 2 and report["retries"]["used"] == 0
    a, b = pooled(tmp_path / "loader"), pooled(tmp_path / "dask")
    assert a.keys() == b.keys() and len(a) == 4
    for key in a:  # float16 storage; the workers run 1 torch thread each, so sums round differently
        np.testing.assert_allclose(a[key].astype(np.float32), b[key].astype(np.float32), atol=1e-2, rtol=1e-2)


def test_impossible_combinations_are_errors(audio_dir, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"--decode-workers 2 with --workers 3: .* Drop one of the two"):
        extract_features(audio_dir, tmp_path / "f", UP, device="cpu", workers=3, decode_workers=2)
    assert not (tmp_path / "f").exists()  # refused before anything ran
    with pytest.raises(ConfigError, match=r"--workers 2 with --scheduler tcp://127.0.0.1:1"):
        plan_execution("cpu", workers=2, scheduler="tcp://127.0.0.1:1")
    with pytest.raises(ConfigError, match=r"--decode-workers 1 with --scheduler"):
        plan_execution("cpu", scheduler="tcp://127.0.0.1:1", decode_workers=1)
    monkeypatch.setattr("torch.cuda.is_available", lambda: True)  # a GPU machine, as far as the plan goes
    with pytest.raises(ConfigError, match=r"--workers 4 on cuda: .* Use --decode-workers 4 .* --device cpu"):
        plan_execution("cuda", workers=4)
    assert plan_execution("auto").describe().startswith("in-process on cuda with ")
    assert plan_execution("cuda", decode_workers=3).decode_workers == 3
    remote = plan_execution("cuda", scheduler="tcp://gpu-node:8786")  # its workers may have GPUs
    assert remote.mode == "dask-scheduler" and "tcp://gpu-node:8786" in remote.describe()


def test_cli_refuses_impossible_combination_in_one_line(audio_dir, tmp_path, capsys):
    from intervox.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["features", str(audio_dir), "--out", str(tmp_path / "f"), "--upstream", UP, "--device", "cpu",
              "--workers", "2", "--decode-workers", "2"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --decode-workers 2 with --workers 2")


def test_failing_task_is_retried_and_output_complete(audio_dir, tmp_path, monkeypatch):
    extract_features(audio_dir, tmp_path / "clean", UP, device="cpu")
    clean = pooled(tmp_path / "clean")
    monkeypatch.setenv("INTERVOX_FAULT", "features.in_task:1")  # the second shard's task raises, once
    monkeypatch.setenv("INTERVOX_FAULT_ONCE", str(tmp_path / "fired"))
    report = extract_features(audio_dir, tmp_path / "f", UP, device="cpu", decode_workers=1)
    assert (tmp_path / "fired").exists()
    assert report["retries"] == {"limit": 2, "used": 1, "shards": ["train-000001.tar"]}
    assert report["written"] == 2 and report["clips"] == 4
    got = pooled(tmp_path / "f")
    assert got.keys() == clean.keys()
    for key in got:
        np.testing.assert_array_equal(got[key], clean[key])


def test_failing_decode_in_a_loader_worker_is_retried(audio_dir, tmp_path, monkeypatch):
    once = tmp_path / "decode-failed"
    real = extract.read_audio_shard

    def flaky(src, sample_rate):  # fails once, in the DataLoader worker (a forked copy of this function)
        if str(src).endswith("train-000000.tar") and not once.exists():
            once.write_text("x")
            raise OSError("disk hiccup")
        return real(src, sample_rate)

    monkeypatch.setattr(extract, "read_audio_shard", flaky)
    report = extract_features(audio_dir, tmp_path / "f", UP, device="cpu", decode_workers=2)
    assert once.exists() and report["retries"]["shards"] == ["train-000000.tar"]
    assert report["written"] == 2 and len(pooled(tmp_path / "f")) == 4


def test_task_failing_every_time_raises_after_the_others_finish(audio_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERVOX_FAULT", "features.in_task:0")  # no ONCE: every attempt fails
    with pytest.raises(InjectedFaultError, match="features.in_task"):
        extract_features(audio_dir, tmp_path / "f", UP, device="cpu", retries=1)
    assert [p.name for p in list_shards(tmp_path / "f")] == ["train-000001.tar"]  # kept for a rerun
    assert not (tmp_path / "f" / "index.json").exists()
    monkeypatch.delenv("INTERVOX_FAULT")
    rerun = extract_features(audio_dir, tmp_path / "f", UP, device="cpu")
    assert rerun["written"] == 1 and rerun["skipped_complete"] == 1


@pytest.mark.slow
def test_dask_task_failing_once_is_retried(audio_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INTERVOX_FAULT", "features.in_task:0")  # raised inside a Dask worker, once
    monkeypatch.setenv("INTERVOX_FAULT_ONCE", str(tmp_path / "fired"))
    report = extract_features(audio_dir, tmp_path / "f", UP, device="cpu", workers=2)
    assert (tmp_path / "fired").exists()
    assert report["retries"] == {"limit": 2, "used": 1, "shards": ["train-000000.tar"]}
    assert report["written"] == 2 and len(pooled(tmp_path / "f")) == 4


@pytest.mark.slow
def test_external_scheduler_runs_the_tasks_and_is_named(audio_dir, tmp_path, monkeypatch):
    from intervox.pipeline.cluster import connect

    client, cluster = connect(1)  # stands for a cluster started elsewhere (dask scheduler + dask worker)
    try:
        monkeypatch.setattr(extract, "_UPSTREAMS", {})
        address = cluster.scheduler_address
        report = extract_features(audio_dir, tmp_path / "f", UP, device="cpu", scheduler=address)
    finally:
        client.close()
        cluster.close()
    assert extract._UPSTREAMS == {}  # its worker loaded the model
    assert report["execution"]["mode"] == "dask-scheduler" and report["workers"] is None
    where = f"Dask scheduler {address}: a task per shard on its workers, on cpu"
    assert report["execution"]["where"] == where
    assert report["written"] == 2 and len(pooled(tmp_path / "f")) == 4
