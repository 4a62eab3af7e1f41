"""The training loop: one full run per seed into `run_dir/seed-K/`, resumable, DDP-aware."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from intervox import __version__
from intervox.config import dump_config, to_plain
from intervox.errors import TrainingError
from intervox.faults import fault_point
from intervox.shards import storage
from intervox.shards.mirror import copy_dir, local_shard_dir
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
from intervox.training.cohort_clips import CohortClips, cohort_inputs
from intervox.training.config import LossConfig, TrainConfig
from intervox.training.data import (
    Batch,
    GridSampler,
    common_shards,
    frame_layers_for_sum,
    frame_slot,
    input_specs,
    is_frame_pair_copy,
    iter_fused_samples,
    made_by_excluded_op,
    no_frame_pairs_error,
)
from intervox.training.feature_index import index_feature_table
from intervox.training.losses import (
    cohort_decorrelation,
    frame_content_loss,
    leakage_loss,
    sigreg_loss,
    subspace_orthogonality,
    supcon_loss,
)
from intervox.training.model import InputSpec, SubspaceProjector
from intervox.training.stream import StreamSource

log = logging.getLogger(__name__)

LOG_FIELDS = ("step", "loss", "speaker", "content", "orthogonality", "sigreg", "frame_content", "leakage",
              "cohort", "cohort_speaker", "lr", "speaker_positives", "content_positives", "batch",
              "elapsed_s")


def _frame_source(cfg: TrainConfig, feature_dir: Path) -> tuple[LossConfig, dict]:
    """Return the loss config with its frame slot resolved, and how the frames are read.

    A layer input reads the frames of the content subspace's layer (one slot); a weighted sum
    reads every stored layer, and the model sums the rows of the content range with the content
    view's own weights (`frame_layer` None: all slots).
    """
    if cfg.model.input == "layer":
        layer = cfg.model.subspace_layer("content")
        slot = frame_slot(feature_dir, layer, cfg.loss.frame_layer)
        desc = {"frame_layer": {"layer": layer, "slot": slot}}
        return dataclasses.replace(cfg.loss, frame_layer=slot), desc
    if cfg.loss.frame_layer is not None:
        raise TrainingError("loss.frame_layer picks one slot for a layer input; with model.input: "
                            "weighted_sum the frame loss reads every row of the content range")
    if "content" not in (cfg.model.subspace_layer_ranges or {}):
        raise TrainingError("the frame-level content loss on a weighted sum needs "
                            "model.subspace_layer_ranges.content (the rows whose frames are stored)")
    lo, hi = cfg.model.subspace_layer_ranges["content"]
    rows = list(range(lo, hi + 1))
    return cfg.loss, {"frame_layers": {"rows": rows, "stored": frame_layers_for_sum(feature_dir, rows)}}


def build_source(cfg: TrainConfig, seed: int, info: ddp.DistInfo) -> tuple[object, list[InputSpec], dict]:
    """Return (batch source, input specs, data description) for the configured batching."""
    dirs = [Path(d) for d in cfg.data.features]
    for d in dirs:
        if not d.is_dir():
            raise TrainingError(f"feature directory {d} does not exist")
    names = common_shards(dirs, cfg.data.split)
    frame_loss = cfg.loss.frame_content_weight > 0
    loss_cfg, frames_desc = cfg.loss, {}
    if frame_loss:
        loss_cfg, frames_desc = _frame_source(cfg, dirs[0])
    if cfg.data.batching == "grid":
        table = index_feature_table(dirs, cfg.data.split, cfg.data.frames or frame_loss, names,
                                    cfg.data.max_bad_shard_fraction, reuse=True,
                                    exclude_ops=cfg.data.exclude_ops)
        if frame_loss and not len(table.pairs):  # the loss would silently add nothing
            raise no_frame_pairs_error(dirs[0], cfg.data.split, "clip")
        sampler = GridSampler(table, cfg.data, seed, info.rank, info.world,
                              cfg.loss.frame_pairs if frame_loss else 0, cfg.loss.frames_per_pair,
                              loss_cfg.frame_layer)
        desc = {"clips": len(table.keys), "speakers": len(table.speakers), "contents": len(table.contents),
                "shards": len(names), "frame_pairs": int(len(sampler.pairs)),
                "rank_speakers": int(len(sampler.my_speakers)), "bad_shards": table.bad_shards,
                "excluded_clips": table.excluded,
                "grid": sampler.describe(), **frames_desc}
        _log_grid(desc["grid"], len(table.speakers), len(table.contents))
        return sampler, table.inputs, desc
    resampled = cfg.data.resampled if cfg.data.resampled is not None else info.distributed
    if info.distributed and not resampled:
        log.warning("DDP without resampled shards: ranks with fewer batches may leave others waiting")
    data_cfg = dataclasses.replace(cfg.data, frames=cfg.data.frames or frame_loss)
    source = StreamSource(dirs, names, data_cfg, seed, resampled, loss_cfg)  # ranks: wds.split_by_node
    # the first readable shard describes the inputs (a bad first shard is skipped like any other)
    read = _first_shard(dirs, names, frame_loss, cfg.data.max_bad_shard_fraction)
    if not read:
        raise TrainingError(f"{dirs[0]}: no readable '{cfg.data.split}' feature shard")
    first = [s for s in read if not made_by_excluded_op(s["meta"], cfg.data.exclude_ops)]
    if not first:
        raise TrainingError(f"{dirs[0]}: every clip of {read[0]['shard']} was made by an op in "
                            "data.exclude_ops")
    # shards hold whole blocks, each with its op copies: a shard without a pair means data without any
    if frame_loss and not any(is_frame_pair_copy(s["meta"]) and s["frames"] is not None for s in first):
        raise no_frame_pairs_error(dirs[0], cfg.data.split, f"clip of its first shard ({first[0]['shard']})")
    specs = input_specs(first[0])
    return source, specs, {"shards": len(names), "resampled": resampled, **frames_desc}


def _first_shard(dirs: list[Path], names: list[str], frames: bool, max_bad_fraction: float) -> list[dict]:
    """Return the joined samples of the first readable shard of `names` ([] when none is readable)."""
    samples: list[dict] = []
    for sample in iter_fused_samples(dirs, names, frames, max_bad_fraction, len(names)):
        if samples and sample["shard"] != samples[0]["shard"]:
            break
        samples.append(sample)
    return samples


def _log_grid(grid: dict, speakers: int, contents: int) -> None:
    """Log once what the grid batches will be; warn when the data cannot give S x T."""
    s, t = grid["speakers_per_batch"], grid["contents_per_batch"]
    if grid["full_grid"]:
        log.info("grid batches: %d speakers x %d contents = %d clips every step, every anchor with a "
                 "speaker and a content positive", s, t, grid["target"])
    else:
        log.warning("the data (%d speakers, %d contents) hold no full %d x %d sub-grid: the first %d steps "
                    "draw %d-%d clips (mean %.1f) instead of %d, keeping only clips with a speaker and a "
                    "content positive", speakers, contents, s, t, grid["probe_steps"], grid["probe_min"],
                    grid["probe_max"], grid["probe_mean"], grid["target"])


def batch_stats(log_path: Path) -> dict:
    """Return {batch, speaker_positives, content_positives: {min, mean}} over every row of train_log.csv.

    Read back from the log so a resumed run's summary covers the steps before the resume too.
    """
    with open(log_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return {}
    return {k: {"min": min(float(r[k]) for r in rows), "mean": sum(float(r[k]) for r in rows) / len(rows)}
            for k in ("batch", "speaker_positives", "content_positives")}


def compute_losses(model: torch.nn.Module, batch: Batch, cfg: TrainConfig, generator: torch.Generator,
                   device: torch.device, cohort: CohortClips | None = None
                   ) -> tuple[torch.Tensor, dict[str, float]]:
    """Return (total loss, {term: value}) of one batch (`cohort`: the real clips of the cohort term)."""
    lc = cfg.loss
    pooled = [p.to(device, non_blocking=True) for p in batch.pooled]
    n = pooled[0].shape[0]
    if cohort is not None:  # one forward for both: DDP sees each parameter used once per step
        pick = torch.randint(0, cohort.speaker.shape[0], (lc.cohort_clips,), generator=generator)
        pooled = [torch.cat([p, c[pick].to(device)]) for p, c in zip(pooled, cohort.pooled, strict=True)]
    frames = None
    if lc.frame_content_weight > 0 and batch.frame_source is not None:
        frames = torch.cat([batch.frame_source.flatten(0, 1), batch.frame_copy.flatten(0, 1)]).to(device)
    use_bf16 = cfg.bf16 and device.type == "cuda"
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_bf16):
        out = model(pooled, frames)
    out = {k: v.float() for k, v in out.items()}
    if cohort is not None:  # the cohort's rows, then the batch's (heads that gather ranks: no cohort)
        real = {k: out[k][n:] for k in ("speaker", "content")}
        out = {k: v if k == "frame_content" else v[:n] for k, v in out.items()}
    speaker_temperature = lc.speaker_tau()
    spk = supcon_loss(out["speaker"], batch.speaker.to(device), speaker_temperature, lc.margin)
    con = supcon_loss(out["content"], batch.content.to(device), lc.temperature, lc.margin)
    zero = out["speaker"].sum() * 0.0
    terms = {"speaker": spk.loss, "content": con.loss, "orthogonality": zero, "sigreg": zero,
             "frame_content": zero, "leakage": zero, "cohort": zero, "cohort_speaker": zero}
    total = lc.speaker_weight * spk.loss + lc.content_weight * con.loss
    parts = [out[k] for k in ("speaker", "content", "residual") if k in out]
    if lc.orthogonality != "none":
        terms["orthogonality"] = subspace_orthogonality(parts, lc.orthogonality)
        total = total + lc.orthogonality_weight * terms["orthogonality"]
    if lc.leakage_weight > 0:
        speaker, content = batch.speaker.to(device), batch.content.to(device)
        terms["leakage"] = (leakage_loss(out["content"], content, speaker)
                            + leakage_loss(out["speaker"], speaker, content))
        total = total + lc.leakage_weight * terms["leakage"]
    if cohort is not None and lc.cohort_weight > 0:
        terms["cohort"] = cohort_decorrelation(real["speaker"], real["content"])
        total = total + lc.cohort_weight * terms["cohort"]
    if cohort is not None and lc.cohort_speaker_weight > 0:
        labels = cohort.speaker[pick].to(device)
        terms["cohort_speaker"] = supcon_loss(real["speaker"], labels, speaker_temperature, lc.margin).loss
        total = total + lc.cohort_speaker_weight * terms["cohort_speaker"]
    if lc.regularizer == "sigreg":
        terms["sigreg"] = sum(sigreg_loss(out[k], generator, lc.sigreg_directions, lc.sigreg_knots,
                                          lc.sigreg_t_max, lc.sigreg_scale_by_n)
                              for k in ("speaker", "content")) / 2
        total = total + lc.sigreg_weight * terms["sigreg"]
    if frames is not None:
        fc = out["frame_content"]
        half = fc.shape[0] // 2
        shape = batch.frame_source.shape[:2] + (fc.shape[-1],)
        terms["frame_content"] = frame_content_loss(fc[:half].reshape(shape), fc[half:].reshape(shape),
                                                    lc.temperature).loss
        total = total + lc.frame_content_weight * terms["frame_content"]
    return total, {"loss": float(total.detach()), **{k: float(v.detach()) for k, v in terms.items()}}


def warmup_fraction(pct_start: float, steps: int) -> float:
    """Return `pct_start`, raised so the warm-up spans at least 2 steps.

    OneCycleLR divides by (pct_start * steps - 1): a warm-up of exactly one step (e.g. 10 steps
    at 0.1) raises ZeroDivisionError. Runs of reference size (480 steps) are unaffected.
    """
    return min(max(pct_start, 2.0 / steps), 0.5) if steps >= 4 else pct_start


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """Return the torch generator of one step (SIGReg directions are resampled every step)."""
    state = np.random.SeedSequence([seed, rank, step, 2]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _open_log(path: Path, keep_until: int) -> csv.DictWriter:
    """Open train_log.csv for appending, dropping rows past `keep_until` (a resumed run redoes them)."""
    rows = []
    if path.is_file() and keep_until > 0:
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= keep_until]
    f = open(path, "w", newline="")  # noqa: SIM115 - closed by the caller via writer.file
    writer = csv.DictWriter(f, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    writer.file = f  # type: ignore[attr-defined]
    return writer


def _tensorboard(seed_dir: Path):  # noqa: ANN202 - SummaryWriter or None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not importable: skipping TensorBoard logs (train_log.csv has every step)")
        return None
    return SummaryWriter(str(seed_dir / "tensorboard"))


PCS_CLIPS = 8192  # training clips the input bases of model.subspace_input_pcs are fitted on


def _fit_input_pcs(model: SubspaceProjector, cfg: TrainConfig, seed_index: int, info: ddp.DistInfo) -> None:
    """Fit the model's input bases on the first PCS_CLIPS clips of the training split (every rank alike)."""
    dirs = [Path(d) for d in cfg.data.features]
    names = common_shards(dirs, cfg.data.split)
    samples = itertools.islice(iter_fused_samples(dirs, names, False, cfg.data.max_bad_shard_fraction,
                                                  len(names)), PCS_CLIPS)

    def batches() -> Iterator[list[torch.Tensor]]:
        while chunk := [s["pooled"][0] for s in itertools.islice(samples, 1024)]:
            yield [torch.as_tensor(np.stack(chunk), dtype=torch.float32, device=info.device)]

    clips, kept = model.fit_input_pcs(batches())
    log.info("seed-%d: input bases fitted on %d clips; variance kept %s", seed_index, clips,
             ", ".join(f"{k} {v:.3f}" for k, v in kept.items()))


class _SeedLog:
    """What a seed writes while it trains: train_log.csv and TensorBoard (main rank), debug keys (any)."""

    def __init__(self, cfg: TrainConfig, seed_dir: Path, start: int, info: ddp.DistInfo) -> None:
        self.cfg, self.main, self.row = cfg, info.is_main, {}
        self.writer = self.tb = self.keys_file = None
        self.t_train = time.perf_counter()
        if self.main:
            self.writer = _open_log(seed_dir / "train_log.csv", start)
            self.tb = _tensorboard(seed_dir)
        if cfg.debug.log_keys:
            (seed_dir / "debug").mkdir(parents=True, exist_ok=True)
            self.keys_file = open(seed_dir / "debug" / f"rank-{info.rank}.txt", "a")  # noqa: SIM115

    def keys(self, step: int, batch: Batch) -> None:
        """Record which clips (and shards) step `step` drew (cfg.debug.log_keys)."""
        if self.keys_file is not None:
            self.keys_file.write("".join(f"K\t{step + 1}\t{k}\n" for k in batch.keys)
                                 + "".join(f"S\t{step + 1}\t{s}\n" for s in batch.shards))

    def step(self, done: int, stop: int, batch: Batch, terms: dict, lr: float, seed_index: int) -> None:
        """Write step `done`'s row to the CSV and TensorBoard, and log it every cfg.log_every steps."""
        if not self.main:
            return
        n = max(len(batch.keys), 1)
        self.row = {"step": done, **{k: f"{v:.6g}" for k, v in terms.items()}, "lr": f"{lr:.6g}",
                    "speaker_positives": f"{batch.positives['speaker'] / n:.4f}",
                    "content_positives": f"{batch.positives['content'] / n:.4f}", "batch": len(batch.keys),
                    "elapsed_s": f"{time.perf_counter() - self.t_train:.2f}"}
        self.writer.writerow(self.row)
        if self.tb is not None:
            for k, v in terms.items():
                self.tb.add_scalar(f"loss/{k}", v, done)
            self.tb.add_scalar("lr", lr, done)
        if done % self.cfg.log_every == 0 or done == stop:
            log.info("seed-%d step %d/%d loss %.4f (speaker %.4f content %.4f orth %.4g) lr %.3g",
                     seed_index, done, self.cfg.optim.steps, terms["loss"], terms["speaker"],
                     terms["content"], terms["orthogonality"], lr)

    def close(self) -> None:
        if self.keys_file is not None:
            self.keys_file.close()
        if self.writer is not None:
            self.writer.file.close()
        if self.tb is not None:
            self.tb.close()


@dataclasses.dataclass
class _SeedState:
    """One seed's model, optimiser and schedule, and where its run stands."""

    model: SubspaceProjector
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    config_hash: str
    start: int = 0
    resumed_from: int | None = None
    last_checkpoint: Path | None = None


def _new_state(cfg: TrainConfig, specs: list[InputSpec], desc: dict, seed: int,
               info: ddp.DistInfo) -> _SeedState:
    """Return a fresh model (seeded from `seed`), its AdamW and its one-cycle schedule."""
    torch.manual_seed(seed)  # model initialisation; nothing else draws from torch's RNG
    model = SubspaceProjector(specs, cfg.model).to(info.device)
    if "frame_layers" in desc:  # the frame loss on the content view's sum: which layer each slot holds
        model.set_frame_layers(desc["frame_layers"]["stored"])
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.optim.max_lr, weight_decay=cfg.optim.weight_decay)
    pct_start = warmup_fraction(cfg.optim.pct_start, cfg.optim.steps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.optim.max_lr, total_steps=cfg.optim.steps,
                                                pct_start=pct_start,
                                                anneal_strategy=cfg.optim.anneal_strategy)
    return _SeedState(model, opt, sched, config_hash(cfg))


def _resume(state: _SeedState, cfg: TrainConfig, seed: int, seed_dir: Path, source: object) -> None:
    """Load the seed's last checkpoint into `state` and `source` (cfg.resume and one exists)."""
    found = list_checkpoints(seed_dir) if cfg.resume else []
    if not found:
        return
    path = found[-1][1]
    saved = load_checkpoint(path)
    if saved["config_hash"] != state.config_hash or saved["seed"] != seed:
        raise TrainingError(f"{path} was written by a different config or seed; "
                            "use a new run_dir or resume=false")
    state.model.load_state_dict(saved["model"])
    state.opt.load_state_dict(saved["optimizer"])
    state.sched.load_state_dict(saved["scheduler"])
    set_rng_state(saved["rng"])
    source.restore(saved["data"])
    state.start = state.resumed_from = int(saved["step"])
    state.last_checkpoint = path
    log.info("%s: resumed from %s", seed_dir.name, path)


def _checkpoint(state: _SeedState, cfg: TrainConfig, seed: int, seed_dir: Path, source: object,
                done: int) -> None:
    """Save step `done` (main rank), keep the newest cfg.keep_checkpoints, then the fault point tests use."""
    state.last_checkpoint = checkpoint_path(seed_dir, done)
    save_checkpoint(state.last_checkpoint, {
        "step": done, "seed": seed, "config_hash": state.config_hash, "model": state.model.state_dict(),
        "optimizer": state.opt.state_dict(), "scheduler": state.sched.state_dict(), "rng": rng_state(),
        "data": source.state()})
    prune_checkpoints(seed_dir, cfg.keep_checkpoints)
    fault_point("train.after_checkpoint", done)  # tests: INTERVOX_FAULT


def train_seed(cfg: TrainConfig, seed_index: int, info: ddp.DistInfo) -> dict:
    """Train one seed into run_dir/seed-K and return its summary."""
    seed = cfg.seeds[seed_index]
    seed_dir = Path(cfg.run_dir) / f"seed-{seed_index}"
    t_start = time.perf_counter()
    source, specs, desc = build_source(cfg, seed, info)
    cohort = cohort_inputs(cfg, specs, info.rank)  # may build an upstream, which draws from torch's RNG
    state = _new_state(cfg, specs, desc, seed, info)
    _resume(state, cfg, seed, seed_dir, source)
    if state.model.input_pcs and state.resumed_from is None:  # a resumed model has them from its checkpoint
        _fit_input_pcs(state.model, cfg, seed_index, info)
    net = DistributedDataParallel(state.model) if info.distributed else state.model
    stop = min(cfg.optim.steps, cfg.max_steps) if cfg.max_steps is not None else cfg.optim.steps
    load_s = time.perf_counter() - t_start
    if info.is_main:
        seed_dir.mkdir(parents=True, exist_ok=True)
        dump_config(dataclasses.replace(cfg, seeds=(seed,)), seed_dir / "config.yaml")
    out = _SeedLog(cfg, seed_dir, state.start, info)
    pos_sums = {"speaker": 0.0, "content": 0.0}
    try:
        for step in range(state.start, stop):
            batch = source.batch(step)
            if cfg.debug.nan_at_step == step + 1:
                batch.pooled[0][0] = float("nan")
            out.keys(step, batch)
            generator = _step_generator(seed, info.rank, step)
            lr, terms = _train_step(net, state, batch, cfg, generator, info, cohort,
                                    where=f"seed-{seed_index} step {step + 1}")
            for k in pos_sums:
                pos_sums[k] += batch.positives[k] / max(len(batch.keys), 1)
            if step == state.start:
                log.info("seed-%d: batch of %d clips; anchors with positives: speaker %d, content %d",
                         seed_index, len(batch.keys), batch.positives["speaker"], batch.positives["content"])
            out.step(step + 1, stop, batch, terms, lr, seed_index)
            if info.is_main and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == stop):
                _checkpoint(state, cfg, seed, seed_dir, source, step + 1)
    finally:
        out.close()
    summary = _seed_summary(cfg, state, specs, desc, seed_index, stop, info, pos_sums, out, load_s)
    if info.is_main:
        if summary["completed"]:
            export_projector(seed_dir / "projector.safetensors", state.model, {
                "inputs": [s.to_dict() for s in specs], "subspaces": state.model.subspaces,
                "model": to_plain(cfg.model), "seed": seed, "steps": stop, "intervox": __version__})
        summary["batches"] = batch_stats(seed_dir / "train_log.csv")
        (seed_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    ddp.barrier(info)
    return summary


def _train_step(net: torch.nn.Module, state: _SeedState, batch: Batch, cfg: TrainConfig,
                generator: torch.Generator, info: ddp.DistInfo, cohort: CohortClips | None, *,
                where: str) -> tuple[float, dict]:
    """Run one optimiser step on `batch`; return (the step's learning rate, its loss terms).

    A non-finite loss on any rank stops every rank before the step, naming the last good checkpoint.
    """
    total, terms = compute_losses(net, batch, cfg, generator, info.device, cohort)
    if not ddp.all_true(math.isfinite(terms["loss"]), info):
        raise TrainingError(f"{where}: non-finite loss {terms}; "
                            f"last good checkpoint: {state.last_checkpoint or 'none'} (kept)")
    state.opt.zero_grad(set_to_none=True)
    total.backward()
    if cfg.optim.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.optim.grad_clip)
    lr = state.sched.get_last_lr()[0]
    state.opt.step()
    state.sched.step()
    return lr, terms


def _seed_summary(cfg: TrainConfig, state: _SeedState, specs: list[InputSpec], desc: dict, seed_index: int,
                  stop: int, info: ddp.DistInfo, pos_sums: dict, out: _SeedLog, load_s: float) -> dict:
    """Return the seed's summary.json (less "batches", which the main rank reads from its log)."""
    steps_run = stop - state.start
    return {
        "seed": cfg.seeds[seed_index], "seed_index": seed_index, "steps": stop,
        "completed": stop == cfg.optim.steps, "resumed_from": state.resumed_from, "world_size": info.world,
        "device": str(info.device), "load_s": round(load_s, 3),
        "train_s": round(time.perf_counter() - out.t_train, 3),
        "data": desc, "inputs": [s.to_dict() for s in specs],
        "final": {k: float(v) for k, v in out.row.items() if k not in ("step", "batch", "elapsed_s")},
        "mean_positives": {k: v / steps_run for k, v in pos_sums.items()} if steps_run else {},
        "layer_weights": state.model.layer_weights(),
        "subspace_inputs": state.model.subspace_inputs(),
    }


def with_local_features(cfg: TrainConfig, info: ddp.DistInfo) -> TrainConfig:
    """Return `cfg` reading local copies of the feature sets it names by URL (`s3://...`).

    The first process of each node syncs the copies; the node's other ranks wait for it, then
    read the same copies without listing the URL again.
    """
    if not any(storage.is_url(str(d)) for d in cfg.data.features):
        return cfg
    if info.local_rank == 0:
        dirs = tuple(str(local_shard_dir(d)) for d in cfg.data.features)
        ddp.barrier(info)
    else:
        ddp.barrier(info)
        dirs = tuple(str(copy_dir(d)) for d in cfg.data.features)
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, features=dirs))


def train(cfg: TrainConfig) -> list[dict]:
    """Train every seed of `cfg` into cfg.run_dir; return their summaries."""
    info = ddp.init_distributed(cfg.device)
    try:
        if info.is_main:
            Path(cfg.run_dir).mkdir(parents=True, exist_ok=True)
            dump_config(cfg, Path(cfg.run_dir) / "config.yaml")  # as given: a URL stays a URL
        cfg = with_local_features(cfg, info)
        return [train_seed(cfg, k, info) for k in range(len(cfg.seeds))]
    finally:
        ddp.cleanup(info)
