"""`intervox train`: train the subspace projector on feature shards."""

from __future__ import annotations

import json
import os
import shlex
from contextlib import nullcontext
from pathlib import Path

import click

from intervox.locking import output_lock


@click.command("train")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TrainConfig YAML (configs/train/default.yaml, paper.yaml, ...).")
@click.argument("overrides", nargs=-1)
def train_cmd(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Train a projector into speaker and content subspaces; key=value overrides the config.

    Writes RUN_DIR/config.yaml and per seed RUN_DIR/seed-K/ (projector.safetensors,
    config.yaml, train_log.csv, summary.json, checkpoints/). Rerunning resumes from the
    newest checkpoint. Under torchrun every rank trains on its own shards (DDP).

    \b
    Example:
      intervox train --config configs/train/default.yaml
      intervox train --config configs/train/paper.yaml run_dir=runs/paper-short optim.steps=50
      torchrun --nproc_per_node 2 -m intervox train --config configs/train/default.yaml
    """
    from intervox.config import load_config
    from intervox.training.config import TrainConfig
    from intervox.training.loop import train

    cfg = load_config(config_path, TrainConfig, overrides)
    command = "intervox train " + " ".join(
        shlex.quote(a) for a in ([f"--config={config_path}"] if config_path else []) + list(overrides)
    )
    # one training run per run_dir: rank 0 holds its lock (the other ranks of a torchrun job share it)
    with output_lock(cfg.run_dir, command) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        summaries = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # one summary per job, not per rank
        click.echo(json.dumps([{k: s[k] for k in ("seed", "steps", "completed", "train_s", "final")}
                               for s in summaries], indent=1))
