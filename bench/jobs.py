"""Work the bench runs in a fresh child process (`python -m bench.jobs JOB JSON`): prints one JSON line.

A fresh process gives a cold-ish start (no imported modules, no warmed allocator) and its
own peak RSS: every result carries `peak_rss_mib`, the process's VmHWM as it ends.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np


def _pad_batch(audios: list[np.ndarray]) -> np.ndarray:
    """Return a zero-padded [B, T] batch."""
    out = np.zeros((len(audios), max(a.size for a in audios)), dtype=audios[0].dtype)
    for i, a in enumerate(audios):
        out[i, : a.size] = a
    return out


def _iter_audio(kind: str, paths: list[str], blobs: list[bytes]):  # noqa: ANN202 - an iterator of arrays
    """Yield each clip's float32 audio the way `kind` reads it (see bench/streaming.py)."""
    import soundfile as sf

    if kind == "shards":  # intervox's reader in this process: one decode worker
        from intervox.shards.read import iter_shards

        for sample in iter_shards(paths):
            yield sample["flac"][0]
    elif kind.startswith("loader-"):  # intervox's DataLoader with N decode worker processes
        from intervox.shards.read import shard_loader

        for sample in shard_loader(paths, workers=int(kind.split("-")[1])):
            yield sample["flac"][0]
    elif kind == "flac-decode":  # the decode limit: the same FLAC bytes, already in memory, through
        # the reader's own decoder (soundfile on a BytesIO is ~20% slower and flattered the ratio)
        from intervox.audio import decode_audio_bytes

        for path, blob in zip(paths, blobs, strict=True):  # blobs are the files' bytes, in order
            yield decode_audio_bytes(blob, path)[0]
    else:  # loose files, one soundfile.read each
        for p in paths:
            yield sf.read(p, dtype="float32")[0]


def _cpu_seconds() -> float:
    """Return the CPU seconds of this process and of its reaped children (DataLoader workers)."""
    import resource

    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                   resource.getrusage(resource.RUSAGE_CHILDREN)))


def stream(args: dict) -> dict:
    """Decode + batch every clip: `passes` cold passes (files evicted from the page cache before
    each) then `passes` warm ones; return the best clips/s of each, and the fewest CPU seconds a
    clip took (this process and its decode workers) in each."""
    import soundfile  # noqa: F401 - imports (torch and webdataset for the reader) are not a pass's work

    import intervox.shards.read  # noqa: F401
    from bench.common import drop_page_cache

    paths = Path(args["list"]).read_text().split("\n")
    blobs = [Path(p).read_bytes() for p in paths] if args["kind"] == "flac-decode" else []
    out = {"cold": 0.0, "warm": 0.0, "evicted": 0, "cold_cpu": float("inf"), "warm_cpu": float("inf")}
    for name in ("cold",) * args.get("passes", 1) + ("warm",) * args.get("passes", 1):
        if name == "cold":
            out["evicted"] = drop_page_cache([Path(p) for p in paths])
        cpu = _cpu_seconds()
        t = time.perf_counter()
        n, batch = 0, []
        for audio in _iter_audio(args["kind"], paths, blobs):
            batch.append(audio)
            if len(batch) == args["batch"]:
                n += len(_pad_batch(batch))
                batch = []
        if batch:
            n += len(_pad_batch(batch))
        out[name] = max(out[name], n / (time.perf_counter() - t))
        out[f"{name}_cpu"] = min(out[f"{name}_cpu"], (_cpu_seconds() - cpu) / n)  # workers are reaped by now
        out["clips"] = n
    return out


def build(args: dict) -> dict:
    """Build a shard set (`intervox shards build` in-process, scheduler as given); return its report."""
    from intervox.pipeline.run import build_shards, load_shards_config

    cfg = load_shards_config(args["config"])
    t = time.perf_counter()
    report = build_shards(
        cfg,
        args["out"],
        workers=args.get("workers", 1),
        scheduler=args.get("scheduler"),
        progress=False,
        command="bench",
        config_where=args["config"],
    )
    return {"written": report.written, "quarantined": report.quarantined, "seconds": time.perf_counter() - t}


def train(args: dict) -> dict:
    """Train with configs/train/CONFIG + overrides on `threads` torch threads; return timings."""
    import torch

    from intervox.config import load_config
    from intervox.training.config import TrainConfig
    from intervox.training.loop import train as run_training

    threads = int(args.get("threads", 1))
    torch.set_num_threads(threads)
    bare = []
    if args.get("bare_steps"):  # same process, same thread pool, right before and after the run
        bare.append(bare_steps({"threads": threads, "steps": args["bare_steps"]})["s_per_step"])
    t = time.perf_counter()
    cfg = load_config(args["config"], TrainConfig, args.get("overrides", []))
    summaries = run_training(cfg)
    wall = time.perf_counter() - t
    if args.get("bare_steps"):
        bare.append(bare_steps({"threads": threads, "steps": args["bare_steps"]})["s_per_step"])
    s = summaries[0]
    return {
        "bare_s_per_step": bare,
        "wall_s": wall,
        "load_s": s["load_s"],
        "train_s": s["train_s"],
        "steps": s["steps"],
        "clips": s["data"].get("clips"),
        "final_loss": s["final"].get("loss"),
        "threads": torch.get_num_threads(),
    }


def bare_steps(args: dict) -> dict:
    """Time bare PyTorch steps of the paper's shape: MLP 768->768->768->768 on a random [512, 768] batch,
    two InfoNCE-style terms (one per 384-d half) + a cross-covariance term, AdamW. Returns s/step."""
    import torch
    from torch import nn

    torch.set_num_threads(int(args.get("threads", 1)))
    torch.manual_seed(0)
    d = int(args.get("dim", 768))
    net = nn.Sequential(nn.Linear(d, 768), nn.ReLU(), nn.Linear(768, 768), nn.ReLU(), nn.Linear(768, 768))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01)
    x = torch.randn(int(args.get("batch", 512)), d)
    labels = torch.arange(x.shape[0]) // 32

    def step() -> None:
        z = net(x)
        loss = torch.zeros(())
        for part in (z[:, :384], z[:, 384:]):
            a = nn.functional.normalize(part, dim=1)
            sim = (a @ a.T / 0.1).masked_fill(torch.eye(len(a), dtype=torch.bool), -1e9)
            pos = (labels[:, None] == labels[None, :]).float().fill_diagonal_(0)
            loss = loss - ((sim.log_softmax(1) * pos).sum(1) / pos.sum(1)).mean()
        sc, cc = z[:, :384] - z[:, :384].mean(0), z[:, 384:] - z[:, 384:].mean(0)
        loss = loss + ((sc.T @ cc) / len(z)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):  # warm-up
        step()
    n = int(args.get("steps", 20))
    t = time.perf_counter()
    for _ in range(n):
        step()
    return {"s_per_step": (time.perf_counter() - t) / n, "steps": n, "threads": torch.get_num_threads()}


def finetune(args: dict) -> dict:
    """Fine-tune with configs/finetune/default.yaml + overrides, then time bare steps of the same model
    and batch (see bench/finetune.py); return both step times."""
    import torch

    from intervox.config import load_config
    from intervox.training.finetune import finetune as run_finetune
    from intervox.training.finetune_config import FinetuneConfig

    torch.set_num_threads(int(args.get("threads", 1)))
    cfg = load_config("configs/finetune/default.yaml", FinetuneConfig, args.get("overrides", []))
    summary = run_finetune(cfg)
    bare, audio_s = _bare_finetune_steps(cfg, int(args.get("bare_passes", 2)))
    return {"step_s": summary["step_s"]["upstream_trained"], "heads_only_s": summary["step_s"]["heads_only"],
            "trained_steps": summary["steps"] - summary["freeze_steps"], "bare_s_per_step": bare,
            "batch_audio_s": audio_s}


def _bare_finetune_steps(cfg: object, n: int) -> tuple[float, float]:
    """Return (s/step, mean batch seconds of audio) of bare steps on the run's upstream and heads, over the
    batches of the steps the run timed (log-mel precomputed), `n` passes; the best pass counts."""
    import torch

    from intervox.features.whisper_ct2 import WhisperCT2Upstream
    from intervox.training import ddp
    from intervox.training.finetune import build

    s = build(cfg, ddp.init_distributed("cpu"))
    if not isinstance(s.upstream, WhisperCT2Upstream):
        raise ValueError(f"the bare baseline takes a CTranslate2 Whisper upstream, not {s.upstream.name}")
    for _, p in s.trainable:
        p.requires_grad_(True)
    trained = [s.grid.batch(k) for k in range(cfg.optim.freeze_steps(), cfg.optim.steps)]
    batches = [_bare_inputs(s, b) for b in trained]
    opt = torch.optim.AdamW(list(s.heads.parameters()) + [p for _, p in s.trainable], lr=1e-5)
    _bare_step(s, opt, *batches[0])  # warm-up
    best = float("inf")
    for _ in range(n):
        t = time.perf_counter()
        for inputs in batches:
            _bare_step(s, opt, *inputs)
        best = min(best, (time.perf_counter() - t) / len(batches))
    audio_s = sum(len(a) for b in trained for a in b.audio) / s.upstream.sample_rate / len(trained)
    return best, audio_s


def _bare_inputs(s: object, batch: object) -> tuple:
    """Return (mel, lengths, frames, labels) of one batch, as the encoder takes it."""
    import torch
    import torch.nn.functional as F

    from intervox.features.whisper_ct2 import HOP, encoder_frames, log_mel

    mels = [log_mel(a, s.upstream.padded) for a in batch.audio]
    lengths = torch.tensor([m.shape[-1] for m in mels])
    mel = torch.stack([F.pad(m, (0, int(lengths.max()) - m.shape[-1])) for m in mels])
    frames = torch.tensor([encoder_frames(-(-len(a) // HOP)) for a in batch.audio])
    labels = {"speaker": batch.speaker, "content": batch.content}
    return mel, lengths, frames, labels


def _bare_step(s: object, opt: object, mel: object, lengths: object, frames: object, labels: dict) -> None:
    """Encoder + mean pooling + heads, inline SupCon per subspace + cross-covariance, backward, AdamW."""
    import torch
    import torch.nn.functional as F

    states = s.upstream.encoder(mel, lengths)  # [L + 1, B, T, H]
    valid = (torch.arange(states.shape[2])[None, :] < frames[:, None]).float() / frames[:, None]
    out = s.heads([torch.einsum("lbth,bt->blh", states, valid)])
    loss = torch.zeros(())
    for name, y in labels.items():
        z = F.normalize(out[name], dim=1)
        sim = (z @ z.T / 0.1).masked_fill(torch.eye(len(z), dtype=torch.bool), -1e9)
        pos = (y[:, None] == y[None, :]).float().fill_diagonal_(0)
        loss = loss - ((sim.log_softmax(1) * pos).sum(1) / pos.sum(1).clamp(min=1)).mean()
    a, b = out["speaker"] - out["speaker"].mean(0), out["content"] - out["content"].mean(0)
    loss = loss + ((a.T @ b) / len(a)).pow(2).sum()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


JOBS = {"stream": stream, "build": build, "train": train, "bare_steps": bare_steps, "finetune": finetune}


def main() -> None:
    """Run the job named by argv[1] with the JSON argv[2]; print its JSON result as the last line."""
    job, args = sys.argv[1], json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    from bench.common import peak_rss_mib

    result = JOBS[job](args)
    result["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
