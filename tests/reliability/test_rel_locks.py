"""One run per output folder: `shards build`, `features` and `train` refuse a folder another run holds.

The first run is this test process holding the folder's lock (intervox/locking.py); the
second is a real `python -m intervox ...` process. A lock left by a killed run is taken over
(see the kill tests in test_rel_faults_*.py, whose reruns do exactly that).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from intervox.locking import LOCK_FILE, output_lock, read_owner
from intervox.training.synthetic import write_synthetic_features

OWNER = "intervox shards build --config first.yaml seed=1 (the first run)"


def refused(res, folder: Path) -> str:  # noqa: ANN001 - relhelpers.Exited
    """Assert a run was refused with exit code 2 and one error line naming the folder and owner; return it."""
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0] == res.stderr.strip().splitlines()[-1], res.stderr
    line = errors[0]
    assert str(folder) in line and f"pid {os.getpid()}" in line and OWNER in line
    return line


def test_second_shards_build_into_a_locked_folder_is_refused(source, write_config, tmp_path,  # noqa: ANN001
                                                             run_cli) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.yaml", source, seed=2)
    args = ["-m", "intervox", "shards", "build", "--config", str(config), "--out", str(out),
            "--scheduler", "sync", "--no-progress"]
    with output_lock(out, OWNER) as lock:
        assert read_owner(lock) == {"pid": os.getpid(), "host": os.uname().nodename, "command": OWNER}
        refused(run_cli(args), out)
        assert not list(out.glob("*.tar")) and not (out / "index.json").exists()  # it wrote nothing
    assert not (out / LOCK_FILE).exists()  # released and removed
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "index.json").read_text())["plan"]["seed"] == 2
    assert not (out / LOCK_FILE).exists()


@pytest.mark.slow
def test_features_and_train_into_a_locked_folder_are_refused(built_audio, tmp_path, run_cli) -> None:  # noqa: ANN001
    feats = tmp_path / "feats"
    with output_lock(feats, OWNER):
        line = refused(run_cli(["-m", "intervox", "features", str(built_audio), "--out", str(feats),
                                "--upstream", "whisper-tiny.en", "--device", "cpu"]), feats)
        assert "in use by" in line and not list(feats.glob("*.tar"))

    synthetic = tmp_path / "synthetic"
    write_synthetic_features(synthetic, speakers=8, contents=16, layers=3, hidden=16, blocks_per_shard=1)
    run_dir = tmp_path / "run"
    args = ["-m", "intervox", "train", f"data.features=[{synthetic}]", f"run_dir={run_dir}", "optim.steps=2",
            "model.hidden_dims=[32]", "model.speaker_dim=8", "model.content_dim=8",
            "data.speakers_per_batch=4", "data.contents_per_batch=8", "device=cpu"]
    with output_lock(run_dir, OWNER):
        refused(run_cli(args), run_dir)
        assert not (run_dir / "seed-0").exists()
    done = run_cli(args)
    assert done.returncode == 0, done.stderr
    assert (run_dir / "seed-0" / "projector.safetensors").is_file() and not (run_dir / LOCK_FILE).exists()


def test_lock_left_by_a_dead_run_is_taken_over_with_a_warning(tmp_path, caplog) -> None:  # noqa: ANN001
    out = tmp_path / "out"
    out.mkdir()
    dead = {"pid": 2**22 + 7, "host": os.uname().nodename, "command": "intervox train (killed)"}
    (out / LOCK_FILE).write_text(json.dumps(dead))  # what a SIGKILLed run leaves: the file, no flock
    with caplog.at_level("WARNING"), output_lock(out, "intervox train (rerun)") as lock:
        assert read_owner(lock)["pid"] == os.getpid()
    assert f"taking over the lock left by pid {dead['pid']}" in caplog.text and "(killed)" in caplog.text
    assert not (out / LOCK_FILE).exists()
