"""Running a plan: real Dask LocalCluster, resume, byte-reproducibility, quarantine, CLI exit codes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from intervox.audio import encode_flac
from intervox.errors import InterventionError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register
from intervox.pipeline.run import build_shards, load_shards_config
from intervox.shards.write import file_sha256

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ExplodeOnce(Intervention):
    """Test-only channel op that fails on every input: its items must land in quarantine."""

    name: ClassVar[str] = "test_explode"
    target: ClassVar[Factor] = Factor.CHANNEL
    keeps_timing: ClassVar[bool] = True

    def sample_params(self, rng: np.random.Generator, utt: object) -> dict:
        return {"x": float(rng.uniform())}

    def apply(self, audio: np.ndarray, sr: int, **params: object) -> np.ndarray:
        raise InterventionError(f"{self.name}: planted failure")


@pytest.fixture
def explode_op() -> Iterator[None]:
    """Register the test-only op for one test, then remove it (other tests list every registered op)."""
    from intervox.interventions import registry

    register(ExplodeOnce)
    yield
    registry._REGISTRY.pop(ExplodeOnce.name, None)


def shas(directory: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(directory.glob("*.tar"))}


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture):  # noqa: ANN201
    """Return f(*args) running `intervox ARGS` in-process (cli.main, as the console script does)."""
    from intervox.cli import main

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return Result(code, out.out, out.err)

    return run


@pytest.mark.slow
def test_local_cluster_build_rerun_and_worker_count_are_byte_identical(
    source, write_config, tmp_path
) -> None:  # noqa: ANN001
    # praat_gender: Praat's PSOLA draws random numbers; the op must still give the same bytes on any worker
    ops = [{"op": {"name": "praat_gender"}}, {"op": {"name": "noise"}}]
    cfg = load_shards_config(write_config(tmp_path / "c.yaml", source, interventions=ops))
    two = build_shards(cfg, tmp_path / "w2", workers=2, progress=False)
    assert (two.planned, two.written, two.quarantined) == (18, 18, 0)
    assert two.shards_built == two.shards_total == 2
    first = shas(tmp_path / "w2")
    assert len(first) == 2

    again = build_shards(cfg, tmp_path / "w2", workers=2, progress=False)
    assert again.shards_built == 0 and again.shards_skipped == 2
    assert shas(tmp_path / "w2") == first

    # one worker, reached as an existing cluster through its scheduler address (--scheduler tcp://...)
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        one = build_shards(cfg, tmp_path / "w1", scheduler=cluster.scheduler_address, progress=False)
    assert one.shards_built == 2 and shas(tmp_path / "w1") == first
    sync = build_shards(cfg, tmp_path / "sync", scheduler="sync", progress=False)
    assert sync.written == 18 and shas(tmp_path / "sync") == first


def _worker_env() -> dict:
    import os

    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS")}


def test_local_cluster_workers_keep_glibcs_adaptive_malloc_and_one_blas_thread() -> None:
    # Dask's default MALLOC_TRIM_THRESHOLD_ made shard tasks 12-15% slower (intervox/pipeline/cluster.py)
    from intervox.pipeline.cluster import connect

    client, cluster = connect(2)
    try:
        envs = list(client.run(_worker_env).values())
    finally:
        client.close()
        cluster.close()
    assert envs == [{"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1"}] * 2


@pytest.mark.slow
def test_killed_run_then_rerun_equals_clean_run(source, write_config, tmp_path) -> None:  # noqa: ANN001
    config = write_config(tmp_path / "c.yaml", source, shard_size=3, block={"speakers": 1, "contents": 2})
    clean = build_shards(load_shards_config(config), tmp_path / "clean", scheduler="sync", progress=False)
    assert clean.shards_total == 3  # three speaker blocks of 2 anchors x 3 slots, one per shard
    expected = shas(tmp_path / "clean")

    out = tmp_path / "killed"
    # the build SIGKILLs itself right after its first shard (a fault point, not a timer)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "INTERVOX_FAULT": "shards.after_shard:0"}
    args = ["shards", "build", "--config", str(config), "--out", str(out), "--scheduler", "sync",
            "--no-progress"]
    proc = subprocess.run([sys.executable, "-m", "intervox", *args], cwd=ROOT, env=env, capture_output=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert sorted(p.name for p in out.glob("*.tar")) == ["train-000000.tar"]
    (out / "train-000002.tar.tmp").write_bytes(b"half a shard")  # what a kill mid-write leaves
    resumed = build_shards(load_shards_config(config), out, scheduler="sync", progress=False)
    assert not list(out.glob("*.tmp"))
    assert (resumed.shards_built, resumed.shards_skipped) == (2, 1)
    assert shas(out) == expected

    # the deterministic variant: one shard lost, a stale .tmp left: exactly that shard is rebuilt
    (out / "train-000001.tar").unlink()
    (out / "train-000001.tar.tmp").write_bytes(b"junk")
    again = build_shards(load_shards_config(config), out, scheduler="sync", progress=False)
    assert (again.shards_built, again.shards_skipped) == (1, 2)
    assert shas(out) == expected


def test_quarantine_reconciles_with_planted_bad_inputs(bad_source, write_config, tmp_path, cli) -> None:  # noqa: ANN001
    manifest, bad_ids = bad_source
    config = write_config(tmp_path / "c.yaml", manifest, max_quarantine_fraction=0.5)
    out = tmp_path / "out"
    report = build_shards(load_shards_config(config), out, scheduler="sync", progress=False)
    # 4 bad anchors in validation, each planned as source + world_vc + noise
    assert (report.planned, report.written, report.quarantined) == (18 + 12, 18, 12)
    entries = [json.loads(line) for line in (out / "quarantine.jsonl").read_text().splitlines()]
    assert len(entries) == 12 and entries == sorted(entries, key=lambda e: (e["split"], e["item"]))
    reasons = " | ".join(e["reason"] for e in entries)
    for needle in ("does not exist", "is silent", "NaN", "too short"):
        assert reasons.count(needle) == 3, needle
    assert {e["stage"] for e in entries} == {"load", "check"}
    assert {e["split"] for e in entries} == {"validation"}
    index = json.loads((out / "index.json").read_text())
    assert index["counts"] == {"input": 30, "written": 18, "quarantined": 12, "source_quarantined": 0}
    before = (out / "quarantine.jsonl").read_bytes()

    # the CLI: exit 0 with quarantined items, 1 with --strict; a rerun writes the same quarantine
    ok = cli(
        "shards", "build", "--config", str(config), "--out", str(out), "--scheduler", "sync", "--no-progress"
    )
    assert ok.returncode == 0, ok.stderr
    assert "input 30 = written 18 + quarantined 12" in ok.stdout
    strict = cli(
        "shards",
        "build",
        "--config",
        str(config),
        "--out",
        str(out),
        "--scheduler",
        "sync",
        "--no-progress",
        "--strict",
    )
    assert strict.returncode == 1 and "strict" in strict.stderr
    assert (out / "quarantine.jsonl").read_bytes() == before

    # 12 of 30 quarantined is over the default max_quarantine_fraction (0.05): exit 2, one line
    # naming the top reasons with their counts; everything is still written for a look
    default = write_config(tmp_path / "d.yaml", manifest)
    over = cli("shards", "build", "--config", str(default), "--out", str(out), "--scheduler", "sync",
               "--no-progress")
    assert over.returncode == 2, over.stderr
    [line] = over.stderr.strip().splitlines()
    assert "12 of 30 input items quarantined (40.0% > max_quarantine_fraction 0.05)" in line
    assert "3 x load: " in line and "does not exist" in line and "3 x check: too short" in line
    assert (out / "quarantine.jsonl").read_bytes() == before


def test_failed_op_is_quarantined_not_fatal(source, write_config, tmp_path, explode_op) -> None:  # noqa: ANN001
    config = write_config(tmp_path / "c.yaml", source, interventions=[{"op": {"name": "test_explode"}}],
                          max_quarantine_fraction=0.5)
    report = build_shards(load_shards_config(config), tmp_path / "out", scheduler="sync", progress=False)
    assert (report.planned, report.written, report.quarantined) == (12, 6, 6)
    entries = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert {e["stage"] for e in entries} == {"op"} and all("planted failure" in e["reason"] for e in entries)


def test_nothing_written_exits_nonzero(tmp_path, write_config, cli) -> None:  # noqa: ANN001
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps(
            {"id": "a", "audio": "nope.wav", "speaker": "s", "text": "t", "language": "en", "corpus": "c"}
        )
        + "\n"
    )
    res = cli(
        "shards",
        "build",
        "--config",
        str(write_config(tmp_path / "c.yaml", manifest, max_quarantine_fraction=1.0)),
        "--out",
        str(tmp_path / "out"),
        "--scheduler",
        "sync",
        "--no-progress",
    )
    assert res.returncode == 1 and "nothing was written" in res.stderr


def test_config_errors_exit_2_naming_the_key(source, write_config, tmp_path, cli) -> None:  # noqa: ANN001
    config = write_config(tmp_path / "c.yaml", source, shard_sise=4)
    res = cli("shards", "build", "--config", str(config), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "shard_sise" in res.stderr and str(config) in res.stderr
    good = write_config(tmp_path / "ok.yaml", source)
    res = cli(
        "shards",
        "build",
        "--config",
        str(good),
        "shard_size=4",
        "block.spekers=2",
        "--out",
        str(tmp_path / "o"),
    )
    assert res.returncode == 2 and "spekers" in res.stderr
    bad_op = write_config(tmp_path / "op.yaml", source, interventions=[{"op": {"name": "no_such_op"}}])
    res = cli("shards", "build", "--config", str(bad_op), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "no_such_op" in res.stderr
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").glob("*.tar"))


def test_flac_encoding_is_byte_deterministic(speech) -> None:  # noqa: ANN001
    assert encode_flac(speech.audio, speech.sr) == encode_flac(speech.audio.copy(), speech.sr)


def test_copied_shard_dir_is_recognised_as_complete(source, write_config, tmp_path) -> None:  # noqa: ANN001
    cfg = load_shards_config(write_config(tmp_path / "c.yaml", source, interventions=[]))
    build_shards(cfg, tmp_path / "a", scheduler="sync", progress=False)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert build_shards(cfg, tmp_path / "b", scheduler="sync", progress=False).shards_built == 0
    other = load_shards_config(write_config(tmp_path / "c2.yaml", source, interventions=[], seed=7))
    assert (
        build_shards(other, tmp_path / "b", scheduler="sync", progress=False).shards_built == 1
    )  # plan changed


@pytest.mark.slow
def test_grid_source_renders_under_out_and_builds(tmp_path, cli) -> None:  # noqa: ANN001
    out = tmp_path / "grid"
    res = cli(
        "shards",
        "build",
        "--config",
        str(ROOT / "configs/shards/tiny.yaml"),  # the smallest plan with every default op
        "--out",
        str(out),
        "--scheduler",
        "sync",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr
    assert (out / "source" / "manifest.jsonl").is_file()
    index = json.loads((out / "index.json").read_text())
    assert set(index["splits"]) == {"train", "validation", "test_ood", "keywords"}
    default = load_shards_config(ROOT / "configs/shards/default.yaml")
    train_ops = [iv for iv in default.interventions if "train" in iv.splits]
    train = index["splits"]["train"]
    assert train["dense_blocks"] == 1 and train["anchors"] == 4
    assert set(train["by_op"]) == {"source"} | {iv.op["name"] for iv in train_ops}
    assert train["clips"] == 4 * (1 + sum(iv.per_anchor for iv in train_ops))
    assert index["counts"]["input"] == index["counts"]["written"] + index["counts"]["quarantined"]

    from intervox.shards.verify import verify_dir

    assert verify_dir(out).ok


@pytest.fixture
def buggy_op() -> Iterator[None]:
    """Register the bug-carrying test op (tests/pipeline/bugops.py) for one test, then remove it."""
    import bugops

    from intervox.interventions import registry

    registry._REGISTRY[bugops.BuggyOp.name] = bugops.BuggyOp
    yield
    registry._REGISTRY.pop(bugops.BuggyOp.name, None)


def test_bug_in_an_op_fails_the_build_with_its_traceback(source, write_config, tmp_path, buggy_op,  # noqa: ANN001
                                                          caplog) -> None:
    config = write_config(tmp_path / "c.yaml", source, interventions=[{"op": {"name": "test_buggy"}}],
                          max_quarantine_fraction=1.0)
    with pytest.raises(NameError, match="undefined_gain"):
        build_shards(load_shards_config(config), tmp_path / "out", scheduler="sync", progress=False)
    assert "failed (a bug, not bad input" in caplog.text and "Traceback" in caplog.text
    assert not (tmp_path / "out" / "quarantine.jsonl").exists()  # nothing was passed off as bad input
    assert not (tmp_path / "out" / "index.json").exists()


@pytest.mark.slow
def test_bug_in_an_op_fails_a_dask_build_after_its_retries(source, write_config, tmp_path, buggy_op) -> None:  # noqa: ANN001
    config = write_config(tmp_path / "c.yaml", source, interventions=[{"op": {"name": "test_buggy"}}],
                          max_quarantine_fraction=1.0)
    with pytest.raises(NameError, match="undefined_gain"):
        build_shards(load_shards_config(config), tmp_path / "out", workers=2, progress=False)
    assert not (tmp_path / "out" / "quarantine.jsonl").exists()


def test_rebuild_with_another_plan_removes_its_stale_shards(source, write_config, tmp_path, caplog) -> None:  # noqa: ANN001
    from intervox.shards.verify import verify_dir

    out = tmp_path / "out"
    many = write_config(tmp_path / "a.yaml", source, interventions=[], block={"speakers": 1, "contents": 1},
                        shard_size=1)
    first = build_shards(load_shards_config(many), out, scheduler="sync", progress=False)
    assert first.shards_total == 6
    old = shas(out)
    few = write_config(tmp_path / "b.yaml", source, interventions=[], shard_size=4)
    with caplog.at_level("WARNING"):
        second = build_shards(load_shards_config(few), out, scheduler="sync", progress=False)
    kept = sorted(shas(out))
    assert second.shards_total == len(kept) < 6
    stale = sorted(set(old) - set(kept))
    assert second.stale_removed == tuple(n[:-4] for n in stale) and stale
    assert f"removed {len(stale)} shard(s)" in caplog.text and all(n in caplog.text for n in stale)
    for name in stale:  # tar, sidecar and stats are gone
        assert not (out / name).exists() and not (out / name.replace(".tar", ".json")).exists()
        assert not (out / ".parts" / name.replace(".tar", ".json")).exists()
    # the shards both plans name were redone: their sidecars carried the first plan's hash
    assert second.shards_built == second.shards_total and all(shas(out)[n] != old.get(n) for n in kept)
    report = verify_dir(out)
    assert report.ok, report.problems
    assert report.clips == second.written == 6


def test_manifest_source_counts_the_prepare_stage_rejections(tmp_path, write_config, cli) -> None:  # noqa: ANN001
    from intervox.corpora.prepare import prepare_corpus

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    rows = ["path\tspeaker\ttext"]
    for i, (voice, text) in enumerate([("en-us", "Open the door."), ("en-gb", "Close the window."),
                                       ("en-us", "Turn on the light."), ("en-gb", "Sit down.")]):
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(corpus / f"c{i}.wav"), text], check=True)
        rows.append(f"c{i}.wav\tspk{i % 2}\t{text}")
    (corpus / "bad.wav").write_bytes(b"this is text, not audio")
    rows += ["bad.wav\tspk0\tNot audio.", "gone.wav\tspk1\tNo file."]
    (corpus / "table.tsv").write_text("\n".join(rows) + "\n")
    manifest = prepare_corpus("folder", corpus, tmp_path / "prepared")
    assert len((tmp_path / "prepared" / "quarantine.jsonl").read_text().splitlines()) == 2

    config = write_config(tmp_path / "c.yaml", manifest, interventions=[], max_quarantine_fraction=0.5)
    res = cli("shards", "build", "--config", str(config), "--out", str(tmp_path / "out"), "--scheduler",
              "sync", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert "input 6 = written 4 + quarantined 2" in res.stdout  # 6 table rows, not 4
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["counts"] == {"input": 6, "written": 4, "quarantined": 2, "source_quarantined": 2}
    entries = [json.loads(line) for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()]
    assert {e["stage"] for e in entries} == {"prepare:folder"}
    assert [Path(e["item"]).name for e in entries] == ["table.tsv:6", "table.tsv:7"]  # the refused rows
    assert "bad.wav" in entries[0]["reason"] and "gone.wav" in entries[1]["reason"]
