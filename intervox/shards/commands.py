"""`intervox shards build | verify | export-lhotse | qc`: thin click commands over the library."""

from __future__ import annotations

import shlex
import sys

import click

from intervox.judges.commands import qc_cmd


@click.group("shards")
def shards() -> None:
    """Build, verify and export interventional WebDataset shards.

    \b
    Example:
      intervox shards build --config configs/shards/default.yaml --out shards/en --workers 2
      intervox shards verify shards/en
    """


@shards.command("build")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="ShardsConfig YAML (configs/shards/*.yaml); defaults apply when omitted.",
)
@click.argument("overrides", nargs=-1)
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), required=True,
    help="Output shard folder, or an fsspec URL (s3://bucket/en, gs://...).",
)
@click.option(
    "--workers",
    type=int,
    default=2,
    show_default=True,
    help="Worker processes of the local Dask cluster (one thread each).",
)
@click.option(
    "--scheduler",
    default=None,
    help="'sync' (in-process, for debugging) or tcp://HOST:PORT of an existing Dask scheduler.",
)
@click.option("--strict", is_flag=True, help="Exit non-zero when any item was quarantined.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def build_cmd(
    config_path: str | None,
    overrides: tuple[str, ...],
    out_dir: str,
    workers: int,
    scheduler: str | None,
    strict: bool,
    no_progress: bool,
) -> None:
    """Build (or resume) the shard set of a config: plan -> Dask tasks -> tars + index.

    OVERRIDES are dotted key=value pairs, e.g. source.lang=bn shard_size=128.

    Every shard is one Dask task. By default a LocalCluster of --workers processes runs
    them; --scheduler tcp://HOST:PORT sends them to any running Dask cluster instead:
    start one with dask-jobqueue (e.g. `SLURMCluster(...).scale(jobs=8)`, then pass
    `cluster.scheduler_address`), with the Dask Kubernetes operator (`KubeCluster`, then
    port-forward the scheduler), or by hand (`dask scheduler` + `dask worker ADDR
    --nthreads 1`). Workers need intervox installed (docs/cluster.md: a container image or
    an environment spec) and must reach --out and the source audio: a shared filesystem at the
    same paths, or URLs (--out s3://bucket/en, source.root=s3://bucket/corpus) with each
    worker's credentials in its environment. A rerun skips finished shards; the
    exit code is 1 when nothing was written, or with --strict when anything was
    quarantined (see DIR/quarantine.jsonl); config errors exit 2.

    \b
    Example:
      intervox shards build --config configs/shards/default.yaml --out shards/en --workers 2
      intervox shards build --config configs/shards/default.yaml source.lang=bn --out shards/bn
      intervox shards build --config configs/shards/librispeech.yaml --out shards/ls \\
          --scheduler tcp://10.0.0.5:8786
    """
    from intervox.pipeline.run import build_shards, load_shards_config

    cfg = load_shards_config(config_path, overrides)
    args = (["--config", config_path] if config_path else []) + list(overrides) + ["--out", out_dir]
    args += ["--workers", str(workers)] if scheduler is None else ["--scheduler", scheduler]
    command = "intervox shards build " + " ".join(
        shlex.quote(a) for a in args + (["--strict"] if strict else [])
    )
    report = build_shards(
        cfg,
        out_dir,
        workers=workers,
        scheduler=scheduler,
        progress=not no_progress,
        command=command,
        config_where=config_path or "<defaults>",
    )
    click.echo(report.summary())
    click.echo(f"index: {out_dir}/index.json")
    if report.written == 0:
        click.echo("error: nothing was written (see quarantine.jsonl)", err=True)
        sys.exit(1)
    if (strict or cfg.strict) and report.quarantined:
        click.echo(f"error: {report.quarantined} item(s) quarantined and --strict is set", err=True)
        sys.exit(1)


@shards.command("verify")
@click.argument("directory", type=click.Path(file_okay=False))
def verify_cmd(directory: str) -> None:
    """Check every shard against its sidecar (size, sha256), decode every clip, check the JSON.

    Works on audio and feature shard folders, local or at an fsspec URL. Exit code 1 on
    any problem, each named with its shard (and key).

    \b
    Examples:
      intervox shards verify shards/en
      intervox shards verify s3://bucket/en
    """
    from intervox.shards.verify import verify_dir

    report = verify_dir(directory)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(report.summary())
    if not report.ok:
        sys.exit(1)


@shards.command("export-lhotse")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--out",
    "out_path",
    type=click.Path(file_okay=False),
    required=True,
    help="Output folder of the lhotse Shar set (must not exist yet, or be empty).",
)
@click.option("--shard-size", type=click.IntRange(min=1), default=1000, show_default=True,
              help="Cuts per Shar shard.")
def export_lhotse_cmd(directory: str, out_path: str, shard_size: int) -> None:
    """Write the shards' clips as a lhotse Shar set: read it with `CutSet.from_shar(in_dir=OUT)`.

    OUT gets `cuts.NNNNNN.jsonl.gz` (one MonoCut per clip; `custom` holds {shard, key, clip JSON
    incl. the intervention}) and `recording.NNNNNN.tar` (the clips' audio, copied byte for byte).
    Needs lhotse (`pip install 'intervox[lhotse]'`).

    \b
    Example:
      intervox shards export-lhotse shards/en --out shards/en-shar
    """
    from intervox.shards.lhotse_export import export_shar

    n = export_shar(directory, out_path, shard_size)
    click.echo(f"wrote {n} cuts as a lhotse Shar set in {out_path}")


# `intervox shards qc DIR`: after-the-fact QC of a shard set (its command lives with the judges)
shards.add_command(qc_cmd)
