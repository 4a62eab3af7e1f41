"""Figure 8: a fine-tuning step (issue 17) against a bare forward + backward of the same model and batches.

`intervox finetune` (configs/finetune/default.yaml: Whisper tiny.en + the subspace heads) runs on
espeak-ng audio shards in a fresh process; its summary gives the mean wall time of the steps that
train the upstream. In the same process, right after, the same upstream and heads take bare
steps on the same batches (best of 2 passes): log-mel precomputed, encoder + mean pooling +
heads, inline SupCon and cross-covariance terms, backward, AdamW; no data, no clipping, no
logging or checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.common import Bench, Result, log, run_child
from bench.data import load_clips, render_grid, write_audio_shards

SPEAKERS, SENTENCES = 8, 8  # two shards of 4 voices x 8 sentences; batches of 8 voices x 4 sentences


def write_grid_shards(out: Path, speakers: int, sentences: int, work: Path) -> Path:
    """Write an espeak-ng grid as two `train-*.tar` audio shards with its speaker and content labels."""
    utts = render_grid(work, speakers, sentences)
    write_audio_shards(out, load_clips(utts, 16000), 16000, per_shard=len(utts) // 2,
                       labels=[(u.speaker, u.content_id) for u in utts])
    return out


def run(bench: Bench) -> None:
    """Fine-tune tiny.en for a few steps on 2 threads; add its step time against the bare step's."""
    steps, bare_passes, threads = (4, 1, 2) if bench.quick else (10, 2, 2)
    shards = write_grid_shards(bench.work / "finetune-shards", SPEAKERS, SENTENCES, bench.work / "grid")
    overrides = [f"data.shards={shards}", f"run_dir={bench.work / 'finetune-run'}", "device=cpu",
                 f"optim.steps={steps}", "checkpoint_every=1000", "keep_checkpoints=0",
                 "loss.frame_content_weight=0"]  # the bare step has no frame loss, the bench grid no copies
    result, rss = run_child(["finetune", json.dumps({"overrides": overrides, "threads": threads,
                                                     "bare_passes": bare_passes})], threads=threads)
    step, bare = result["step_s"], result["bare_s_per_step"]
    log(bench, f"  finetune step {step:.3f} s, bare step {bare:.3f} s")
    workload = (f"configs/finetune/default.yaml without its frame loss (Whisper tiny.en + MLP heads), "
                f"batches of 8 espeak-ng voices x 4 sentences (32 clips, {result['batch_audio_s']:.0f} s of "
                f"audio a batch); mean of the {result['trained_steps']} steps that train the upstream; "
                f"{threads} torch threads, fresh process; bare baseline: the same upstream, heads and "
                "batches, log-mel precomputed, inline losses, AdamW, no data loading, clipping, logging or "
                "checkpoints")
    bench.add(Result("8", "finetune/step_vs_bare_torch", workload, step, "s/step", baseline=bare,
                     baseline_label="bare PyTorch forward + backward + AdamW, s/step", ratio=step / bare,
                     ratio_label="intervox step / bare step", target="<= 1.3",
                     notes=f"peak RSS {rss:.0f} MiB; a frozen-upstream step (the first 10%) "
                           f"{result['heads_only_s']} s; bare: best of {bare_passes} passes"))
