"""`intervox eval` and `intervox report`: thin wrappers over evaluation.run and evaluation.report."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("eval")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
# a str, not a Path: Path("s3://b/f") is "s3:/b/f"
@click.option("--features", type=click.Path(file_okay=False), default=None,
              help="Feature shard dir or fsspec URL (default: data.features of the run's config.yaml).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Eval config YAML (default: built-in defaults, see configs/eval/default.yaml).")
@click.option("--real", "real_dirs", multiple=True, type=click.Path(path_type=Path),
              help="Real test set (repeatable): a folder corpus (e.g. `intervox corpus devpanel`) or "
                   "a `corpus prepare` output; adds a real-speech table per set.")
@click.argument("overrides", nargs=-1)
def eval_cmd(run_dir: Path, features: str | None, config_path: Path | None,
             real_dirs: tuple[Path, ...], overrides: tuple[str, ...]) -> None:
    """Evaluate a training run: SV EER, keyword spotting, disentanglement.

    OVERRIDES are dotted key=value pairs of the eval config, e.g. sv_trials_per_class=1000.
    Writes RUN_DIR/results.json, RUN_DIR/trials_{split}.txt and RUN_DIR/plots/, and prints
    the summary table (every seed's projector beside the layer baselines).

    \b
    Example:
      intervox eval runs/en-whisper-base --config configs/eval/default.yaml sv_trials_per_class=1000
      intervox eval runs/en-whisper-base --real shards/devpanel
    """
    from intervox.config import load_config
    from intervox.evaluation.config import EvalConfig
    from intervox.evaluation.run import evaluate
    from intervox.evaluation.summary import format_summary

    cfg = load_config(config_path, EvalConfig, overrides)
    results = evaluate(run_dir, features, cfg)
    click.echo(format_summary(results))
    if real_dirs:
        from intervox.evaluation.real import evaluate_run_real, format_real

        click.echo(format_real(evaluate_run_real(run_dir, real_dirs)))
    click.echo(f"wrote {run_dir / 'results.json'}")


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--audio-shards", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Audio shard dir for the listening examples "
                   "(default: the one in the feature dir's index.json).")
@click.option("--pairs", type=int, default=6, show_default=True, help="Source/intervened pairs to embed.")
def report_cmd(run_dir: Path, audio_shards: Path | None, pairs: int) -> None:
    """Write RUN_DIR/report.html: tables, plots and audio examples in one self-contained file.

    \b
    Example:
      intervox report runs/en-whisper-base --audio-shards shards/en
    """
    from intervox.evaluation.report import write_report

    click.echo(f"wrote {write_report(run_dir, audio_shards, n_pairs=pairs)}")


@click.command("cohort")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.argument("panel_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--split", default="dev", show_default=True,
              help="The panel split whose clips form the cohort ('' for the whole panel).")
@click.option("--ridge", type=float, default=None,
              help="Ridge of the content regression, relative to the clip count "
                   "(default: training.cohort.DEFAULT_RIDGE).")
@click.option("--floor", type=float, default=None,
              help="Eigenvalue floor of the speaker whitening, as a fraction of the largest "
                   "(default: training.cohort.DEFAULT_FLOOR).")
def cohort_cmd(run_dir: Path, panel_dir: Path, split: str, ridge: float | None, floor: float | None) -> None:
    """Fit each seed's cohort backend: content less its speaker-subspace prediction; speaker whitened.

    PANEL_DIR is a folder corpus of real recordings (its labels are not read); the backend
    is fitted on one split's clips and saved as RUN_DIR/seed-K/cohort.safetensors, which
    `intervox.load(RUN_DIR).embed` and `eval --real` (a `subspaces+cohort` row) then use.
    `eval --real` refuses a panel whose report split shares a clip with the cohort.

    \b
    Example:
      intervox cohort runs/en-whisper-base shards/devpanel --split dev
    """
    from intervox.evaluation.cohort import fit_cohort
    from intervox.training.cohort import DEFAULT_FLOOR, DEFAULT_RIDGE

    ridge = DEFAULT_RIDGE if ridge is None else ridge
    floor = DEFAULT_FLOOR if floor is None else floor
    for s in fit_cohort(run_dir, panel_dir, split=split or None, ridge=ridge, floor=floor):
        click.echo(f"{s['seed_dir']}/cohort.safetensors: {s['clips']} clips, {s['speakers']} speakers "
                   f"of {s['source']}, ridge {s['ridge']}, floor {s['floor']}")
