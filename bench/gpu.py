"""Figure 7 (only with a GPU): absolute feature-extraction and training throughput on CUDA.

Absolute numbers only: a GPU run has no CPU baseline worth a ratio. Without a GPU the
figure records that there was none.
"""

from __future__ import annotations

import json
import subprocess
import time

from bench.common import Bench, Result, log, run_child
from bench.data import load_clips, render_grid, replicate, write_audio_shards
from bench.training import write_pooled_features


def run(bench: Bench) -> None:
    """Measure whisper-base RTF and paper-config training steps/s on cuda:0, or record 'no GPU'."""
    import torch

    if not torch.cuda.is_available():
        bench.add(Result("7", "gpu/none", "no GPU in this run", None, "", notes="GPU figures skipped"))
        return
    from intervox.features.extract import length_batches, load_upstream

    name = torch.cuda.get_device_name(0)
    clips = load_clips(render_grid(bench.work / "grid", 4, 8), 16000)
    audio_s = sum(c.size for c in clips) / 16000
    upstream = load_upstream("whisper-base", "cuda")
    durations = [c.size / 16000 for c in clips]
    batches = length_batches(durations, 60.0)
    for b in batches[:1]:
        upstream.forward([clips[i] for i in b])  # warm-up: kernels, autotuning
    best = float("inf")
    for _ in range(3):
        torch.cuda.synchronize()
        t = time.perf_counter()
        for b in batches:
            upstream.forward([clips[i] for i in b])
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    bench.add(
        Result(
            "7",
            "gpu/rtf_whisper-base",
            f"whisper-base (unpadded) on {name}, {len(clips)} clips ({audio_s:.0f} s) in 60 s length "
            "batches; best of 3",
            best / audio_s,
            "RTF (s compute / s audio)",
        )
    )
    feature_stage(bench, name)
    feats = bench.work / "gpu-features"
    write_pooled_features(feats, 128, 64, layers=12, hidden=768)
    overrides = [f"data.features=[{feats}]", f"run_dir={bench.work / 'gpu-run'}", "device=cuda"]
    result, _ = run_child(
        ["train", json.dumps({"config": "configs/train/paper.yaml", "overrides": overrides})]
    )
    bench.add(
        Result(
            "7",
            "gpu/training_paper_run",
            f"configs/train/paper.yaml, {result['steps']} steps of batch 512 on 8,192 synthetic [13, 768] "
            f"clips, {name} (bf16 autocast)",
            result["steps"] / result["train_s"],
            "steps/s",
            notes=f"wall {result['wall_s']:.1f} s including loading",
        )
    )
    log(bench, f"  GPU figures on {name} done")


def feature_stage(bench: Bench, name: str) -> None:
    """`intervox features` on cuda over 1,024 clips: x real time, and the GPU's busy share meanwhile.

    Busy is the mean of nvidia-smi's utilization.gpu samples (every 100 ms) while the stage runs:
    the share of time a kernel was running, so a stage starved by decoding shows low.
    """
    from intervox.features.extract import extract_features

    clips = load_clips(replicate(render_grid(bench.work / "grid", 8, 16), 2 if bench.quick else 8), 16000)
    audio_s = sum(c.size for c in clips) / 16000
    src = bench.work / "gpu-audio"
    write_audio_shards(src, clips, 16000, per_shard=128)
    extract_features(src, bench.work / "gpu-feat-warm", "whisper-base", device="cuda")  # model load, kernels
    query = ["nvidia-smi", "-i", "0", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             "-lms", "100"]
    sampler = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
    t = time.perf_counter()
    report = extract_features(src, bench.work / "gpu-feat", "whisper-base", device="cuda")
    wall = time.perf_counter() - t
    sampler.terminate()
    samples = [int(x) for x in sampler.communicate()[0].split() if x.strip().isdigit()]
    workload = (f"intervox features (whisper-base, unpadded) on {name}: {report['clips']} clips "
                f"({audio_s:.0f} s) in {report['shards']} audio shards, model loaded and warmed first")
    bench.add(Result("7", "gpu/feature_stage_x_real_time", workload, audio_s / wall, "x real time",
                     ratio=audio_s / wall, ratio_label="audio seconds / stage wall seconds",
                     target=">= 1000"))
    busy = sum(samples) / len(samples) / 100 if samples else None
    bench.add(Result("7", "gpu/feature_stage_busy", workload, None if busy is None else 100 * busy, "% busy",
                     ratio=busy, ratio_label="mean nvidia-smi utilization.gpu while the stage ran",
                     target=">= 0.7",
                     notes=f"{len(samples)} samples" if samples else "nvidia-smi gave no samples"))
