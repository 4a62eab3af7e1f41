"""`intervox finetune` and `intervox merge`: fine-tune an upstream with the subspace heads, then merge."""

from __future__ import annotations

import json
import os
import shlex
from contextlib import nullcontext
from pathlib import Path

import click

from intervox.locking import output_lock


@click.command("finetune")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="FinetuneConfig YAML (configs/finetune/default.yaml).")
@click.argument("overrides", nargs=-1)
def finetune_cmd(config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Fine-tune the upstream itself with the speaker/content heads on audio shards (Speech-FT recipe).

    The upstream stays frozen for the first optim.freeze_fraction of the steps (heads only), then
    trains all but its convolutional front end. Writes RUN_DIR/config.yaml, train_log.csv,
    summary.json, checkpoints/, and when done finetuned.safetensors (the upstream's weights, for
    `intervox merge`) and heads.safetensors. Rerunning resumes from the newest checkpoint.
    configs/finetune/cohort.yaml (what `make finetune` runs) also trains the speaker layer on real
    voices: data.cohort's clips, drawn each step (loss.cohort_speaker_weight), and holds the layers
    above it to the pre-trained model's on the same clips (preserve.clips=cohort).

    \b
    Example:
      intervox finetune --config configs/finetune/default.yaml optim.steps=40
      torchrun --nproc_per_node 2 -m intervox finetune --config configs/finetune/default.yaml
    """
    from intervox.config import load_config
    from intervox.training.finetune import finetune
    from intervox.training.finetune_config import FinetuneConfig

    cfg = load_config(config_path, FinetuneConfig, overrides)
    command = "intervox finetune " + " ".join(
        shlex.quote(a) for a in ([f"--config={config_path}"] if config_path else []) + list(overrides))
    rank = int(os.environ.get("RANK", "0"))
    with output_lock(cfg.run_dir, command) if rank == 0 else nullcontext():
        summary = finetune(cfg)
    if rank == 0:
        click.echo(json.dumps({k: summary[k] for k in ("steps", "completed", "train_s", "step_s", "final")},
                              indent=1, default=str))


@click.command("merge")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--alpha", "alphas", type=float, multiple=True, required=True,
              help="Interpolation weight in [0, 1]: 0 = the base model, 1 = the fine-tuned one. Repeatable.")
@click.option("--real", "real_dirs", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Also evaluate every merged model's raw layers on this real panel (repeatable); "
                   "writes RUN_DIR/alpha_sweep.json.")
def merge_cmd(run_dir: Path, alphas: tuple[float, ...], real_dirs: tuple[Path, ...]) -> None:
    """Write theta_0 + alpha * (theta_ft - theta_0) of a fine-tuning run: RUN_DIR/merged/alpha-A.safetensors.

    Each merged model is an upstream named finetuned:RUN_DIR@A (for `features --upstream`,
    `eval --real`, `intervox.load`).

    \b
    Example:
      intervox merge runs/en-finetune-whisper-tiny.en --alpha 0.25
      intervox merge runs/en-finetune-whisper-tiny.en --alpha 0 --alpha 0.5 --alpha 1 --real shards/devpanel
    """
    from intervox.training.merge import merge_run

    for path in merge_run(run_dir, list(alphas)):
        click.echo(str(path))
    if real_dirs:
        from intervox.evaluation.alpha_sweep import format_sweep, sweep

        click.echo(format_sweep(sweep(run_dir, list(alphas), list(real_dirs))))
