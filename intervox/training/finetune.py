"""`intervox finetune`: train the SFM itself with the subspace heads (Speech-FT's stable fine-tuning).

Each step runs the upstream on the batch's audio (trainable except its convolutional front end),
mean-pools every layer over the clip's frames as the feature stage does, and feeds the pooled
layers to `intervox train`'s projector and loss (`model.py`, `losses.py` through
`loop.compute_losses`). Under torchrun the heads' outputs of every rank are gathered with their
gradient, so each anchor's negatives are the whole job's batch. The run writes
RUN/finetuned.safetensors (the upstream's weights) for `intervox merge`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import math
import time
from pathlib import Path
from typing import TextIO

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import save_file
from torch import nn

from intervox import __version__
from intervox.config import dump_config, to_plain
from intervox.errors import TrainingError
from intervox.faults import fault_point
from intervox.features.finetuned import (
    METADATA_KEY,
    enable_checkpointing,
    frontend_prefixes,
    hidden_states,
    pool_frames,
    upstream_module,
)
from intervox.features.registry import get_upstream
from intervox.training import ddp
from intervox.training.checkpoint import (
    checkpoint_path,
    config_hash,
    export_projector,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from intervox.training.data import Batch, no_frame_pairs_error
from intervox.training.finetune_cohort import CohortAudio
from intervox.training.finetune_config import FinetuneConfig
from intervox.training.finetune_data import AudioGrid
from intervox.training.loop import _step_generator, compute_losses
from intervox.training.losses import supcon_loss
from intervox.training.model import InputSpec, SubspaceProjector

log = logging.getLogger(__name__)

FRAME_TIME_STREAM = 2  # which frames of each pair the frame loss compares: a seed stream of their own

FINETUNED_FILE = "finetuned.safetensors"
LOG_FIELDS = ("step", "loss", "speaker", "content", "orthogonality", "leakage", "frame_content",
              "cohort_speaker", "cohort_batch", "drift", "lr",
              "upstream_lr", "upstream_trained", "batch", "global_batch", "elapsed_s", "cpu_s")


class _GatherRows(torch.autograd.Function):
    """all_gather of equal-size row blocks whose backward sums the gradient over ranks (SimCLR-style)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001 - autograd signature
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        # every rank computed the same global loss: its gradient w.r.t. this rank's rows is the
        # sum of what each rank's copy sends back (the gradient averaging later divides by W)
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_rows(x: torch.Tensor, info: ddp.DistInfo) -> torch.Tensor:
    """Return the rows of `x` of every rank in rank order (differentiable; row counts may differ by rank)."""
    if not info.distributed:
        return x
    n = torch.tensor([x.shape[0]], device=x.device)
    counts = [torch.zeros_like(n) for _ in range(info.world)]
    dist.all_gather(counts, n)
    counts_list = [int(c) for c in counts]
    top = max(counts_list)
    padded = torch.cat([x, x.new_zeros((top - x.shape[0], *x.shape[1:]))]) if top > x.shape[0] else x
    gathered = _GatherRows.apply(padded) if x.requires_grad else _gather_plain(padded, info.world)
    keep = torch.cat([torch.arange(c) + r * top for r, c in enumerate(counts_list)]).to(x.device)
    return gathered.index_select(0, keep)


def _gather_plain(x: torch.Tensor, world: int) -> torch.Tensor:
    parts = [torch.empty_like(x) for _ in range(world)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


class GatheredHeads(nn.Module):
    """The projector, returning every rank's subspace embeddings (so SupCon sees the job's batch)."""

    def __init__(self, heads: SubspaceProjector, info: ddp.DistInfo) -> None:
        super().__init__()
        self.heads, self.info = heads, info

    def forward(self, pooled: list[torch.Tensor],
                frames: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        out = self.heads(pooled, frames)
        names = list(self.heads.subspaces)
        joined = gather_rows(torch.cat([out[k].float() for k in names], dim=1), self.info)
        sizes = [self.heads.subspaces[k] for k in names]
        gathered = dict(zip(names, joined.split(sizes, dim=1), strict=True))
        if "frame_content" in out:  # each rank's own pairs: a frame's negatives are the rank's other frames
            gathered["frame_content"] = out["frame_content"]
        return gathered


def average_gradients(params: list[nn.Parameter], info: ddp.DistInfo) -> None:
    """All-reduce the mean gradient of `params` over ranks in one flat buffer (every rank trains them all)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not info.distributed or not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= info.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def trainable_upstream_params(upstream, freeze_frontend: bool) -> list[tuple[str, nn.Parameter]]:  # noqa: ANN001
    """Return the (name, parameter) pairs of the upstream that fine-tuning may change."""
    skip = frontend_prefixes(upstream) if freeze_frontend else ()
    return [(n, p) for n, p in upstream_module(upstream).named_parameters()
            if not n.startswith(skip) and n != "masked_spec_embed"]  # wav2vec2's mask vector: unused here


def export_upstream(path: Path, upstream, metadata: dict) -> None:  # noqa: ANN001
    """Write the upstream module's state_dict as safetensors with one JSON metadata entry."""
    state = upstream_module(upstream).state_dict()
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(metadata, sort_keys=True)})
    tmp.replace(path)


@dataclasses.dataclass
class Setup:
    """Everything a fine-tuning run trains with."""

    upstream: object
    heads: SubspaceProjector
    trainable: list[tuple[str, nn.Parameter]]
    optimizer: torch.optim.Optimizer
    grid: AudioGrid
    cohort: CohortAudio | None  # data.cohort's real clips, when the cohort term or preserve reads them
    reference: object | None  # the frozen pre-trained upstream, when preserve.weight > 0


def build(cfg: FinetuneConfig, info: ddp.DistInfo) -> Setup:
    """Return the upstream (eval mode, frozen), the heads, the optimiser and this rank's data."""
    upstream = get_upstream(cfg.upstream, device=str(info.device))
    # eval mode throughout: no dropout, layerdrop or SpecAugment masking, so every rank runs the
    # same network and a resumed run repeats the same steps bit for bit
    upstream_module(upstream).eval().requires_grad_(False)
    trainable = trainable_upstream_params(upstream, cfg.optim.freeze_frontend)
    if cfg.gradient_checkpointing:
        enable_checkpointing(upstream)
    torch.manual_seed(cfg.seed)  # heads initialisation; nothing else draws from torch's RNG
    spec = InputSpec(cfg.upstream, upstream.num_hidden_states, int(upstream.identity["hidden"]))
    heads = SubspaceProjector([spec], cfg.model).to(info.device)
    optimizer = torch.optim.AdamW([{"params": list(heads.parameters()), "lr": cfg.optim.lr},
                                   {"params": [p for _, p in trainable], "lr": cfg.optim.upstream_lr}],
                                  weight_decay=cfg.optim.weight_decay)
    grid = AudioGrid(cfg.data, upstream.sample_rate, cfg.seed, info.rank, info.world)
    if cfg.loss.frame_content_weight > 0 and not len(grid.table.pairs):  # the loss would add nothing
        raise no_frame_pairs_error(cfg.data.shards, cfg.data.split, f"clip of rank {info.rank}'s shards")
    cohort = None
    if cfg.reads_cohort():
        cohort = CohortAudio(cfg.data, upstream.sample_rate, cfg.seed, info.rank,
                             Path(cfg.run_dir) / "cohort")
    return Setup(upstream, heads, trainable, optimizer, grid, cohort, reference_upstream(cfg, upstream, info))


def reference_upstream(cfg: FinetuneConfig, upstream, info: ddp.DistInfo):  # noqa: ANN001, ANN201
    """Return a frozen copy of the pre-trained upstream for preserve.weight, or None when it is off."""
    if cfg.preserve.weight == 0:
        return None
    bad = [k for k in cfg.preserve.layers if k >= upstream.num_hidden_states]
    if bad:
        raise TrainingError(f"preserve.layers {bad}: {cfg.upstream} has hidden states 0-"
                            f"{upstream.num_hidden_states - 1}")
    reference = get_upstream(cfg.upstream, device=str(info.device))
    upstream_module(reference).eval().requires_grad_(False)
    return reference


def _state(s: Setup, cfg: FinetuneConfig, step: int) -> dict:
    return {"step": step, "seed": cfg.seed, "config_hash": config_hash(cfg), "heads": s.heads.state_dict(),
            "upstream": {n: p.detach().clone() for n, p in s.trainable},
            "optimizer": s.optimizer.state_dict(), "rng": rng_state(), "data": s.grid.sampler.state()}


def _restore(s: Setup, cfg: FinetuneConfig, path: Path) -> int:
    """Load checkpoint `path` into the setup; return its step."""
    state = load_checkpoint(path)
    if state.get("config_hash") != config_hash(cfg) or state.get("seed") != cfg.seed:
        raise TrainingError(f"{path} was written by a different config or seed; use a new run_dir or "
                            "resume=false")
    s.heads.load_state_dict(state["heads"])
    params = dict(s.trainable)
    if set(params) != set(state["upstream"]):
        raise TrainingError(f"{path}: its upstream parameters are not this run's trainable ones")
    with torch.no_grad():
        for n, t in state["upstream"].items():
            params[n].copy_(t)
    s.optimizer.load_state_dict(state["optimizer"])
    set_rng_state(state["rng"])
    s.grid.sampler.restore(state["data"])
    return int(state["step"])


def train_step(s: Setup, cfg: FinetuneConfig, step: int, info: ddp.DistInfo, heads: GatheredHeads) -> dict:
    """Run optimiser step `step` (0-based); return its logged terms."""
    train_upstream = step >= cfg.optim.freeze_steps()
    for _, p in s.trainable:
        p.requires_grad_(train_upstream)
    batch = s.grid.batch(step)
    if cfg.debug.nan_at_step == step + 1:
        batch.audio[0] = batch.audio[0] * np.float32("nan")
    device = info.device
    states, frames = _upstream_states(s.upstream, cfg, device, batch.audio, train_upstream)
    pooled = pool_frames(states.float(), frames)
    labels = {k: gather_rows(getattr(batch, k).to(device), info) for k in ("speaker", "content")}
    b = Batch(pooled=[pooled], speaker=labels["speaker"], content=labels["content"], keys=batch.keys,
              shards=batch.shards, positives=batch.positives)
    if cfg.loss.frame_content_weight > 0:
        b.frame_source, b.frame_copy = frame_pair_states(s, cfg, step, info, train_upstream)
    total, terms = compute_losses(heads, b, cfg, _step_generator(cfg.seed, 0, step), device)
    terms.update(drift=0.0, cohort_batch=0)
    preserving = s.reference is not None and train_upstream  # frozen steps leave the upstream as it was
    on_cohort = cfg.preserve.clips == "cohort"
    # the cohort's forward pass only when a term reads it (a cohort preserve skips frozen steps)
    needed = cfg.loss.cohort_speaker_weight > 0 or (preserving and on_cohort)
    cohort = cohort_pass(s, cfg, step, info, train_upstream) if needed else None
    if preserving:
        drift = layer_drift(s, cfg, *((cohort.audio, cohort.pooled) if on_cohort else (batch.audio, pooled)))
        total = total + cfg.preserve.weight * drift
        terms.update(loss=float(total.detach()), drift=float(drift.detach()))
    if cfg.loss.cohort_speaker_weight > 0:
        term, clips = cohort_speaker_term(cohort, cfg, info, heads)
        total = total + cfg.loss.cohort_speaker_weight * term
        terms.update(loss=float(total.detach()), cohort_speaker=float(term.detach()), cohort_batch=clips)
    if not ddp.all_true(math.isfinite(terms["loss"]), info):
        raise TrainingError(f"step {step + 1}: non-finite loss {terms}")
    s.optimizer.zero_grad(set_to_none=True)
    total.backward()
    params = list(s.heads.parameters()) + ([p for _, p in s.trainable] if train_upstream else [])
    average_gradients(params, info)
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
    factor = cfg.optim.lr_factor(step)
    s.optimizer.param_groups[0]["lr"] = cfg.optim.lr * factor
    s.optimizer.param_groups[1]["lr"] = cfg.optim.upstream_lr * factor
    s.optimizer.step()
    return {**terms, "lr": cfg.optim.lr * factor, "upstream_lr": cfg.optim.upstream_lr * factor,
            "upstream_trained": int(train_upstream), "batch": len(batch.keys),
            "global_batch": int(labels["speaker"].shape[0])}


def _upstream_states(upstream, cfg: FinetuneConfig, device: torch.device, audio: list[np.ndarray],  # noqa: ANN001
                     train_upstream: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the upstream's (states, valid frames) of `audio`: bf16 on a GPU, autograd once it trains."""
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16 and device.type == "cuda"), \
            torch.set_grad_enabled(train_upstream):
        return hidden_states(upstream, audio)


def layer_drift(s: Setup, cfg: FinetuneConfig, audio: list[np.ndarray], pooled: torch.Tensor) -> torch.Tensor:
    """Return the mean squared difference of preserve.layers' layer-normed pooled features from the frozen
    pre-trained upstream's on the same audio (`pooled`: the trained upstream's [B, L + 1, H])."""
    states, frames = _upstream_states(s.reference, cfg, pooled.device, audio, train_upstream=False)
    reference = pool_frames(states.float(), frames)
    layers = list(cfg.preserve.layers)
    width = (pooled.shape[-1],)
    now = torch.nn.functional.layer_norm(pooled[:, layers], width)
    return ((now - torch.nn.functional.layer_norm(reference[:, layers], width)) ** 2).mean()


@dataclasses.dataclass
class CohortPass:
    """One step's draw of the cohort's real clips and the upstream's pooled layers of them."""

    audio: list[np.ndarray]
    speaker: torch.Tensor  # label ids (int64), [N]
    pooled: torch.Tensor  # [N, L + 1, H], with autograd once the upstream trains


def cohort_pass(s: Setup, cfg: FinetuneConfig, step: int, info: ddp.DistInfo,
                train_upstream: bool) -> CohortPass:
    """Run the upstream on step `step`'s cohort draw (with autograd once it trains), so real voices
    shape its layers: through the cohort speaker term, or the drift preserve holds on them."""
    audio, speaker = s.cohort.draw(step)
    states, frames = _upstream_states(s.upstream, cfg, info.device, audio, train_upstream)
    return CohortPass(audio, speaker, pool_frames(states.float(), frames))


def cohort_speaker_term(cohort: CohortPass, cfg: FinetuneConfig, info: ddp.DistInfo,
                        heads: GatheredHeads) -> tuple[torch.Tensor, int]:
    """Return the speaker SupCon of the step's real cohort clips (every rank's, gathered) and their count.

    A raw speaker subspace is the upstream's layer itself, so the term shapes the upstream as
    well as the speaker head.
    """
    out = heads([cohort.pooled])
    labels = gather_rows(cohort.speaker.to(info.device), info)
    loss = supcon_loss(out["speaker"].float(), labels, cfg.loss.speaker_tau(), cfg.loss.margin).loss
    return loss, int(labels.shape[0])


def frame_pair_states(s: Setup, cfg: FinetuneConfig, step: int, info: ddp.DistInfo,
                      train_upstream: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the content layer's states of the step's (anchor, copy) pairs at the same frames [P, F, H].

    The upstream runs on the pairs' audio (with autograd once it trains), so the frame loss shapes
    its frames as well as the content head; each pair's F frames are drawn from (seed, rank, step).
    """
    anchors, copies = s.grid.frame_pairs(step, cfg.loss.frame_pairs)
    states, frames = _upstream_states(s.upstream, cfg, info.device, anchors + copies, train_upstream)
    layer, n, p = cfg.model.subspace_layer("content"), cfg.loss.frames_per_pair, len(anchors)
    rng = np.random.default_rng([cfg.seed, info.rank, step, FRAME_TIME_STREAM])
    src, cpy = [], []
    for i in range(p):
        length = int(min(frames[i], frames[p + i]))  # praat_gender keeps the length; a resample may not
        t = torch.as_tensor(np.sort(rng.choice(length, size=n, replace=length < n)), device=states.device)
        src.append(states[layer, i, t])
        cpy.append(states[layer, p + i, t])
    return torch.stack(src).float(), torch.stack(cpy).float()


def _open_log(path: Path, keep_until: int) -> tuple[csv.DictWriter, TextIO]:
    """Open train_log.csv for writing, keeping the rows up to `keep_until` (a resumed run redoes the rest)."""
    rows = []
    if path.is_file() and keep_until > 0:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
    f = open(path, "w", newline="")  # noqa: SIM115 - closed by the caller
    writer = csv.DictWriter(f, fieldnames=LOG_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return writer, f


def run_finetune(cfg: FinetuneConfig, info: ddp.DistInfo) -> dict:
    """Fine-tune into cfg.run_dir (resuming from its newest checkpoint); return the summary."""
    run_dir = Path(cfg.run_dir)
    t_start = time.perf_counter()
    s = build(cfg, info)
    found = list_checkpoints(run_dir) if cfg.resume else []
    start = _restore(s, cfg, found[-1][1]) if found else 0
    if found:
        log.info("finetune: resumed from %s", found[-1][1])
    stop = min(cfg.optim.steps, cfg.max_steps) if cfg.max_steps is not None else cfg.optim.steps
    heads = GatheredHeads(s.heads, info)
    desc = s.grid.describe()
    if s.cohort is not None:
        desc["cohort"] = s.cohort.describe()
    load_s = time.perf_counter() - t_start
    writer = f = keys_file = None
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        dump_config(cfg, run_dir / "config.yaml")
        writer, f = _open_log(run_dir / "train_log.csv", start)
    if cfg.debug.log_keys:
        (run_dir / "debug").mkdir(parents=True, exist_ok=True)
        keys_file = open(run_dir / "debug" / f"rank-{info.rank}.txt", "a")  # noqa: SIM115
    step_s: dict[int, list[float]] = {0: [], 1: []}
    row: dict = {}
    t_train, cpu_train = time.perf_counter(), time.process_time()
    try:
        for step in range(start, stop):
            t0 = time.perf_counter()
            row = train_step(s, cfg, step, info, heads)
            step_s[row["upstream_trained"]].append(time.perf_counter() - t0)
            done = step + 1
            if keys_file is not None:
                batch = s.grid.batch(step)
                keys_file.write("".join(f"K\t{done}\t{k}\n" for k in batch.keys)
                                + "".join(f"S\t{done}\t{sh}\n" for sh in batch.shards))
            if info.is_main:
                _record_step(s, cfg, run_dir, writer, f, row, done, stop, (t_train, cpu_train))
    finally:
        if keys_file is not None:
            keys_file.close()
        if f is not None:
            f.close()
    completed = stop == cfg.optim.steps
    summary = {"steps": stop, "completed": completed, "resumed_from": start if found else None,
               "world_size": info.world, "device": str(info.device), "upstream": s.upstream.identity,
               "freeze_steps": cfg.optim.freeze_steps(), "load_s": round(load_s, 3),
               "train_s": round(time.perf_counter() - t_train, 3),
               "step_s": {"heads_only": _mean(step_s[0]), "upstream_trained": _mean(step_s[1])},
               "data_rank0": desc, "final": {k: v for k, v in row.items() if k != "batch"}}
    if info.is_main and completed:
        _export(s, cfg, run_dir, stop)
    if info.is_main:
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    ddp.barrier(info)
    return summary


def _record_step(s: Setup, cfg: FinetuneConfig, run_dir: Path, writer: csv.DictWriter, f: TextIO,
                 row: dict, done: int, stop: int, started: tuple[float, float]) -> None:
    """Write step `done`'s log row (main rank), log it every cfg.log_every steps, checkpoint when due."""
    writer.writerow({"step": done, "elapsed_s": f"{time.perf_counter() - started[0]:.2f}",
                     "cpu_s": f"{time.process_time() - started[1]:.2f}",  # this process's CPU time
                     **{k: f"{v:.6g}" if isinstance(v, float) else v for k, v in row.items()}})
    if done % cfg.log_every == 0 or done == stop:
        log.info("finetune step %d/%d loss %.4f (speaker %.4f content %.4f orth %.4g%s) lr %.3g%s",
                 done, cfg.optim.steps, row["loss"], row["speaker"], row["content"],
                 row["orthogonality"], f" cohort speaker {row['cohort_speaker']:.4f}" if s.cohort else "",
                 row["lr"], "" if row["upstream_trained"] else " (upstream frozen)")
    if done % cfg.checkpoint_every == 0 or done == stop:
        f.flush()
        save_checkpoint(checkpoint_path(run_dir, done), _state(s, cfg, done))
        prune_checkpoints(run_dir, cfg.keep_checkpoints)
        fault_point("finetune.after_checkpoint", done)  # tests: INTERVOX_FAULT


def _export(s: Setup, cfg: FinetuneConfig, run_dir: Path, steps: int) -> None:
    """Write the fine-tuned upstream and the heads of a completed run."""
    base = {"name": s.upstream.identity["name"], "weights_sha256": s.upstream.identity["weights_sha256"]}
    export_upstream(run_dir / FINETUNED_FILE, s.upstream, {
        "base": base, "config": to_plain(cfg), "steps": steps, "intervox": __version__})
    spec = s.heads.inputs[0]
    export_projector(run_dir / "heads.safetensors", s.heads, {
        "inputs": [spec.to_dict()], "subspaces": s.heads.subspaces, "model": to_plain(cfg.model),
        "seed": cfg.seed, "steps": steps, "intervox": __version__})


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def finetune(cfg: FinetuneConfig) -> dict:
    """Fine-tune cfg.upstream with the subspace heads into cfg.run_dir (torchrun: one process per device)."""
    info = ddp.init_distributed(cfg.device)
    try:
        return run_finetune(cfg, info)
    finally:
        ddp.cleanup(info)
