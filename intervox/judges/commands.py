"""CLI for the judges: `intervox shards qc DIR` (added to the `shards` group in shards/commands.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("qc")
@click.argument("shard_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML file of QCConfig fields (thresholds, fraction, seed, asr_model).")
@click.argument("overrides", nargs=-1)
@click.option("--fraction", type=float, default=None, help="Score this fraction of clips (seeded by key).")
@click.option("--asr-model", type=click.Choice(["whisper-tiny.en", "whisper-base", "none"]), default=None,
              help="ASR for the content judge (tiny.en is faster, English only).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write qc.jsonl, qc_summary.json, qc_validity.md (default: SHARD_DIR).")
def qc_cmd(shard_dir: Path, config_path: Path | None, overrides: tuple[str, ...], fraction: float | None,
           asr_model: str | None, out: Path | None) -> None:
    """Score an audio shard set with the offline judges (ASR, speaker, pitch) and write a validity table.

    OVERRIDES are key=value pairs of QCConfig fields, e.g. speaker_max_similarity=0.75.
    Nothing is removed from the shards. When the results go to SHARD_DIR itself, the validity
    section of its dataset_card.md is re-rendered from qc_summary.json.

    \b
    Example:
      intervox shards qc shards/en --fraction 0.1 --asr-model whisper-tiny.en
      intervox shards qc shards/en speaker_max_similarity=0.75 max_refs=5
    """
    from intervox.config import load_config
    from intervox.judges.qc import QCConfig
    from intervox.judges.shard_qc import score_shard_dir
    from intervox.shards.index import INDEX_FILE, write_card

    extra = list(overrides)
    if fraction is not None:
        extra.append(f"fraction={fraction}")
    if asr_model is not None:
        extra.append(f"asr_model={asr_model}")
    cfg = load_config(config_path, QCConfig, extra)
    summary = score_shard_dir(shard_dir, cfg, out)
    where = out or shard_dir
    s = summary
    click.echo(f"scored {s['n_scored']} of {s['n_clips']} clips: {s['n_accepted']} accepted, "
               f"{summary['n_rejected']} rejected ({summary['n_unscorable']} not scorable); "
               f"wrote {where}/qc.jsonl, qc_summary.json, qc_validity.md")
    if Path(where).resolve() == shard_dir.resolve() and (shard_dir / INDEX_FILE).is_file():
        click.echo(f"updated the validity section of {write_card(shard_dir)}")
