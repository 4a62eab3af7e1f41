"""`intervox features`: audio shards -> feature shards through a frozen upstream SFM."""

from __future__ import annotations

import json

import click

from intervox.errors import ConfigError


def _parse_layers(value: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in value.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--frames-layers {value!r}: expected comma-separated integers, e.g. 3,6") from None


@click.command("features")
@click.argument("audio_dir", type=click.Path(file_okay=False))  # a folder or an fsspec URL (s3://...)
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder or fsspec URL (s3://bucket/feats) for the feature shards (same names, keys).")
@click.option("--upstream", default="whisper-base", show_default=True,
              help="whisper-base, whisper-tiny.en, or hf:<model id or directory> "
                   "(e.g. hf:microsoft/wavlm-base-plus).")
@click.option("--frames-layers", default="", help="Also store frame-level states of these layers, e.g. 3,6.")
@click.option("--workers", default=1, show_default=True,
              help="Dask worker processes on this machine's CPUs (a LocalCluster), one task per shard; "
                   "1 runs in this process.")
@click.option("--decode-workers", type=int, default=None,
              help="In-process mode: DataLoader processes that decode and length-batch the audio while this "
                   "process runs the forward. [default: 0 on CPU, min(4, cores) on a GPU]")
@click.option("--retries", default=2, show_default=True, help="Times a failed feature task is retried.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--batch-seconds", default=60.0, show_default=True,
              help="Audio seconds per forward batch (padded).")
@click.option("--padded", is_flag=True, help="Whisper: pad every clip to 30 s as in training (5-7x slower).")
@click.option("--scheduler", default=None,
              help="Address of a running Dask scheduler whose workers run one task per shard.")
@click.option("--max-bad-fraction", default=0.05, show_default=True,
              help="Fail when more than this fraction of source shards is corrupt.")
def features_cmd(audio_dir: str, out_dir: str, upstream: str, frames_layers: str, workers: int,
                 decode_workers: int | None, retries: int, device: str, batch_seconds: float, padded: bool,
                 scheduler: str | None, max_bad_fraction: float) -> None:
    """Extract pooled hidden states of every layer of a frozen SFM from audio shards.

    It runs in this process (the forward here, --decode-workers decoding) or as one Dask task per
    shard (--workers N > 1 on CPU, or --scheduler); a combination that cannot be honoured (e.g.
    --workers 4 on a GPU) is an error, and the output's "where" says what ran where.

    \b
    Example:
      intervox features shards/en --upstream whisper-base --out shards/en-features-whisper-base
      intervox features shards/en --out shards/en-features-wavlm-base-plus \\
        --upstream hf:microsoft/wavlm-base-plus --frames-layers 12
    """
    from intervox.features.extract import extract_features

    report = extract_features(audio_dir, out_dir, upstream, frames_layers=_parse_layers(frames_layers),
                              batch_seconds=batch_seconds, workers=workers, device=device,
                              scheduler=scheduler, decode_workers=decode_workers, retries=retries,
                              max_bad_fraction=max_bad_fraction, padded=padded)
    summary = {"where": report["execution"]["where"]}
    summary.update({k: report[k] for k in ("shards", "written", "skipped_complete", "clips", "audio_seconds",
                                           "wall_seconds", "rtf")})
    summary["bad_shards"] = len(report["bad_shards"])
    summary["retries_used"] = report["retries"]["used"]
    click.echo(json.dumps(summary, indent=1))
