"""Figure 4: the feature stage vs the bare upstream forward on the same clips; Whisper RTF on CPU."""

from __future__ import annotations

import shutil
import time

import torch

from bench.common import Bench, Result, log
from bench.data import load_clips, render_grid, write_audio_shards

BATCH_SECONDS = 60.0  # extract_features' default


def bare_forward(upstream: object, clips: list, batch_seconds: float, per_shard: int | None = None) -> None:
    """Run the upstream over `clips` in the stage's own length batches, keeping nothing.

    The stage batches each shard's clips on their own (a shard is one task), so with `per_shard`
    the clips are batched shard by shard too: batching across shards would pad less and time
    fewer frames than the stage computes.
    """
    from intervox.features.extract import length_batches

    step = per_shard or len(clips)
    for start in range(0, len(clips), step):
        shard = clips[start:start + step]
        for batch in length_batches([c.size / upstream.sample_rate for c in shard], batch_seconds):
            upstream.forward([shard[i] for i in batch])


def run(bench: Bench) -> None:
    """Time extract_features vs upstream.forward (interleaved), then RTF padded/unpadded; add results."""
    from intervox.features.extract import extract_features, load_upstream

    torch.set_num_threads(1)  # one core, as one Dask worker of `intervox features --workers N` gets
    sr = 16000
    speakers, sentences, rounds = (2, 8, 2) if bench.quick else (4, 8, 3)
    clips = load_clips(render_grid(bench.work / "grid", speakers, sentences), sr)
    audio_s = sum(c.size for c in clips) / sr
    src = bench.work / "features" / "audio"
    per_shard = 16
    write_audio_shards(src, clips, sr, per_shard=per_shard)
    t = time.perf_counter()
    upstream = load_upstream("whisper-base", "cpu")
    load_s = time.perf_counter() - t
    bare_forward(upstream, clips[:2], BATCH_SECONDS)  # warm-up
    workload = (
        f"whisper-base (unpadded) on {len(clips)} espeak-ng clips ({audio_s:.0f} s, "
        f"{-(-len(clips) // per_shard)} audio shards of {per_shard}); 1 torch thread; model loaded once "
        "before timing "
        f"({load_s:.1f} s); best of {rounds} interleaved rounds"
    )
    out_root = bench.work / "features" / "out"

    def stage() -> None:
        shutil.rmtree(out_root, ignore_errors=True)  # finished shards would be skipped
        report = extract_features(
            src, out_root, "whisper-base", workers=1, device="cpu", batch_seconds=BATCH_SECONDS
        )
        if report["clips"] != len(clips):
            raise RuntimeError(f"feature stage wrote {report['clips']} of {len(clips)} clips")

    def bare() -> None:
        bare_forward(upstream, clips, BATCH_SECONDS, per_shard)

    best = {"stage": float("inf"), "bare": float("inf")}
    for r in range(rounds):
        for name, fn in (("stage", stage), ("bare", bare)):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            best[name] = min(best[name], dt)
            log(bench, f"  round {r + 1} {name}: {dt:.2f} s")
    bench.add(
        Result(
            "4",
            "features/stage_overhead",
            workload + "; stage = decode shards, resample, forward, pool, npy, atomic tar write, index",
            best["stage"],
            "s",
            baseline=best["bare"],
            baseline_label="bare upstream.forward, the stage's batches (per shard, by length)",
            ratio=best["stage"] / best["bare"],
            ratio_label="stage / bare forward time",
            target="<= 1.10",
        )
    )

    # real-time factor: forward seconds per second of audio (lower is faster)
    for name in ("whisper-base", "whisper-tiny.en"):
        rtf = {}
        for padded in (False, True):
            model = load_upstream(name, "cpu", padded)
            subset = clips[:2] if padded else clips  # padded input is 30 s per clip whatever its length
            seconds = sum(c.size for c in subset) / sr
            bare_forward(model, subset[:1], BATCH_SECONDS)  # warm-up
            times = []
            for _ in range(2):
                t = time.perf_counter()
                for c in subset:  # one clip per forward: the padded path pads each to 30 s anyway
                    model.forward([c])
                times.append(time.perf_counter() - t)
            rtf[padded] = min(times) / seconds
        bench.add(
            Result(
                "4",
                f"features/rtf_{name}",
                f"{name} encoder on CPU, 1 thread, one clip per forward; "
                f"unpadded on {len(clips)} clips, padded (30 s input) on 2 clips of "
                f"{clips[0].size / sr:.1f} and {clips[1].size / sr:.1f} s (the speed-up grows as clips get "
                "shorter); best of 2",
                rtf[False],
                "RTF (s compute / s audio)",
                baseline=rtf[True],
                baseline_label="padded to 30 s, RTF",
                ratio=rtf[True] / rtf[False],
                ratio_label="padded / unpadded RTF (speed-up of unpadded)",
            )
        )
    log(bench, "  no GPU in this run" if not torch.cuda.is_available() else "  GPU present: not measured")
