"""Figure 6: peak RSS of shard building and of training at 1x and 10x the data, one fresh process each."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.common import Bench, Result, log, run_child
from bench.data import render_grid, replicate, write_source
from bench.pipeline import shards_config
from bench.training import write_pooled_features


def _mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def shard_build(bench: Bench) -> None:
    """Peak RSS of `intervox shards build` (in-process scheduler) on N and 10 N anchors."""
    base = render_grid(bench.work / "grid", 2 if bench.quick else 4, 8)
    rss, secs = {}, {}
    for scale in (1, 10):
        root = bench.work / f"mem-build-{scale}x"
        manifest = write_source(root / "src", replicate(base, scale))
        cfg = shards_config(manifest, root / "shards.yaml")
        result, rss[scale] = run_child(
            ["build", json.dumps({"config": str(cfg), "out": str(root / "out"), "scheduler": "sync"})]
        )
        secs[scale] = result["seconds"]
        log(
            bench,
            f"  build {scale}x: {result['written']} clips in {result['seconds']:.1f} s, "
            f"peak RSS {rss[scale]:.0f} MiB",
        )
    bench.add(
        Result(
            "6",
            "memory/shard_build_10x",
            f"`intervox shards build --scheduler sync` (whole build in one "
            f"process: plan, ops, FLAC, tars, index) of {len(base)} vs {10 * len(base)} espeak-ng anchors "
            "x (anchor + praat_gender + noise); ru_maxrss of a fresh process",
            rss[10],
            "MiB",
            baseline=rss[1],
            baseline_label="1x data, MiB",
            ratio=rss[10] / rss[1],
            ratio_label="peak RSS 10x / 1x",
            target="<= 1.2",
            notes=f"build time {secs[1]:.0f} s vs {secs[10]:.0f} s",
        )
    )


TRAIN_CONFIG = "configs/train/default.yaml"


def train_overrides(features: Path, run_dir: Path, steps: int) -> list[str]:
    """Return the overrides of TRAIN_CONFIG for a memory run on synthetic pooled features."""
    from intervox.training.config import COHORT_WEIGHTS

    return [
        f"data.features=[{features}]",
        f"run_dir={run_dir}",
        "device=cpu",
        f"max_steps={steps}",
        # the grid's memory: the 1,636-clip real cohort is a constant (and the synthetic upstream
        # cannot pool real clips), so every loss term that reads it is off
        *(f"loss.{key}=0" for key in COHORT_WEIGHTS),
        "loss.frame_content_weight=0",  # the synthetic features hold no frames
    ]


def training(bench: Bench) -> None:
    """Peak RSS of training (grid and streamed block batching) on N and 10 N pooled-feature clips."""
    speakers, contents = (32, 32) if bench.quick else (128, 64)
    layers, hidden, steps = 6, 512, 10 if bench.quick else 20
    dirs = {}
    for scale in (1, 10):
        t = time.perf_counter()
        dirs[scale] = bench.work / f"mem-feats-{scale}x"
        info = write_pooled_features(dirs[scale], speakers * scale, contents, layers, hidden)
        log(
            bench,
            f"  features {scale}x: {info['clips']} clips [{layers + 1}, {hidden}], "
            f"{_mib(dirs[scale]):.0f} MiB ({time.perf_counter() - t:.1f} s)",
        )
    batching = {"grid": [], "blocks": ["data.batching=blocks", "data.blocks_per_batch=16"]}
    for mode, extra in batching.items():
        rss = {}
        for scale in (1, 10):
            overrides = [*train_overrides(dirs[scale], bench.work / f"mem-run-{mode}-{scale}", steps), *extra]
            result, rss[scale] = run_child(
                [
                    "train",
                    json.dumps(
                        {"config": TRAIN_CONFIG, "overrides": overrides, "threads": 2}
                    ),
                ],
                threads=2,
            )
            log(
                bench,
                f"  train {mode} {scale}x: {result['clips'] or '-'} clips, {result['wall_s']:.1f} s, "
                f"peak RSS {rss[scale]:.0f} MiB",
            )
        what = (
            "the in-memory grid sampler (paper batching: the split is loaded into RAM by design)"
            if mode == "grid"
            else "streamed contrastive blocks (data.batching=blocks, 16 blocks of 4x8 "
            "per batch, shuffle buffer 16 blocks)"
        )
        bench.add(
            Result(
                "6",
                f"memory/training_{mode}_10x",
                f"configs/train/default.yaml, {steps} steps, {what}; {speakers * contents} vs "
                f"{10 * speakers * contents} synthetic clips [{layers + 1}, {hidden}] (whisper-base size, "
                f"{_mib(dirs[1]):.0f} vs {_mib(dirs[10]):.0f} MiB of shards); 2 threads; ru_maxrss of a "
                "fresh process",
                rss[10],
                "MiB",
                baseline=rss[1],
                baseline_label="1x data, MiB",
                ratio=rss[10] / rss[1],
                ratio_label="peak RSS 10x / 1x",
                target="<= 1.2",
            )
        )


def run(bench: Bench) -> None:
    """Add the figure-6 memory results (shard build, then training)."""
    shard_build(bench)
    training(bench)
