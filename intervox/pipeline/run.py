"""Execute a shard plan with Dask: one task per shard, tasks return small stats, never audio.

Each task loads its anchors (at the target rate), applies the ops, encodes FLAC and writes
one tar atomically with its sidecar. A shard whose sidecar matches the plan hash and whose
bytes match is skipped; leftover `*.tmp` files of a killed run, and shards that the current
plan does not have (an earlier plan's), are removed at start. Items that cannot be made from
their input go to quarantine.jsonl (`input = written + quarantined` always holds); any other
exception in a task is a bug and fails the build. The folder is locked while a build runs.

The output may be a local folder or an fsspec URL (`s3://bucket/en`): tasks then write
their tars, sidecars and stats straight to the store (storage.py commits each file whole),
so Dask workers on other nodes need no shared file system. The driver keeps a local working
folder for such a build (`$INTERVOX_CACHE/remote/<hash of the URL>`: the lock, a rendered
grid source, which is then uploaded to `URL/source/` for the workers to read).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from intervox.config import to_plain
from intervox.corpora.manifest import read_manifest
from intervox.errors import ConfigError
from intervox.faults import fault_point
from intervox.locking import output_lock
from intervox.pipeline.cluster import connect
from intervox.pipeline.config import ShardsConfig, validate_config
from intervox.pipeline.identities import load_or_derive
from intervox.pipeline.plan import SPLIT_ORDER, Plan, build_plan
from intervox.pipeline.quarantine import (
    QuarantineEntry,
    check_quarantine_fraction,
    reconcile,
    write_quarantine,
)
from intervox.pipeline.task import PARTS_DIR, ShardTask, build_shard, finished_stats
from intervox.shards import storage
from intervox.shards.storage import Location

log = logging.getLogger(__name__)

SOURCE_DIR = "source"  # where a grid source is rendered (and cached) inside the output folder
# the files of one shard: NAME.tar, its sidecar NAME.json (and .parts/NAME.json), NAME = "{split}-{i:06d}"
SHARD_FILE = re.compile(rf"^(?:{'|'.join(SPLIT_ORDER)})-\d{{6}}\.(?:tar|json)$")


@dataclass(frozen=True)
class BuildReport:
    """What a build did: counts that reconcile, timings, where things are."""

    out_dir: str
    plan_hash: str
    planned: int
    written: int
    quarantined: int
    shards_total: int
    shards_built: int
    shards_skipped: int
    seconds_audio: float
    wall_seconds: float  # the whole build: source, plan, shards, index
    exec_seconds: float = 0.0  # the Dask part only (shards built this run)
    clips_built: int = 0  # clips written by the shards built this run (skipped shards excluded)
    stale_removed: tuple[str, ...] = ()  # shards of an earlier plan removed from the folder

    @property
    def clips_per_second(self) -> float:
        """Return clips written per second of shard execution in this run (0 when nothing was built)."""
        return self.clips_built / self.exec_seconds if self.exec_seconds > 0 else 0.0

    def summary(self) -> str:
        """Return the human summary line of the build."""
        return (
            f"{reconcile(self.planned, self.written, self.quarantined)}; shards {self.shards_total} "
            f"(built {self.shards_built}, skipped {self.shards_skipped}"
            + (f", {len(self.stale_removed)} of an earlier plan removed" if self.stale_removed else "")
            + "); "
            f"{self.seconds_audio / 3600:.2f} h audio; {self.wall_seconds:.1f} s wall, "
            f"{self.clips_per_second:.2f} clips/s in shard tasks"
        )


def resolve_source(
    cfg: ShardsConfig, out_dir: Path, *, synth_workers: int | None = None
) -> tuple[Path, Location]:
    """Return (manifest path, audio root): render the grid under DIR/source, or use the manifest.

    The audio root of a manifest source may be a URL (`source.root: s3://bucket/corpus`): the
    workers then read each clip from there.
    """
    src = cfg.source
    if src.kind == "manifest":
        manifest = Path(src.path)
        return manifest, storage.as_location(src.root) if src.root else manifest.parent
    from intervox.corpora.synth import GridSpec, synth_grid

    names = {f.name for f in dataclasses.fields(GridSpec)}
    values = {k: v for k, v in to_plain(src).items() if k in names}
    values["sample_rate"] = cfg.sample_rate
    manifest = Path(
        synth_grid(GridSpec(**values), out_dir / SOURCE_DIR, workers=synth_workers or src.synth_workers)
    )
    return manifest, manifest.parent


def make_tasks(plan: Plan, out_dir: Location, audio_root: Location, cfg: ShardsConfig) -> list[ShardTask]:
    """Return one ShardTask per shard of the plan, carrying only the utterances it uses."""
    from intervox.interventions.registry import get_op_class

    modules = tuple(sorted({get_op_class(iv.op["name"]).__module__ for iv in cfg.interventions}))
    tasks = []
    for position, shard in enumerate(plan.shards):
        utts = {it.anchor: plan.utterances[it.anchor] for it in shard.items}
        tasks.append(
            ShardTask(
                shard.name,
                shard.split,
                str(storage.join(out_dir, f"{shard.name}.tar")),
                plan.plan_hash,
                shard.items,
                utts,
                str(audio_root),
                cfg.sample_rate,
                cfg.min_seconds,
                cfg.max_seconds,
                modules,
                qc=cfg.qc,
                position=position,
                audio_format=cfg.audio_format,
            )
        )
    return tasks


def execute(
    tasks: Sequence[ShardTask],
    *,
    workers: int = 2,
    scheduler: str | None = None,
    on_result: Callable[[dict], None],
) -> None:
    """Run `build_shard` over tasks: in-process ('sync'), on a LocalCluster, or on `scheduler`.

    Bad input never raises out of a task (it is quarantined inside it), so a task that raises
    has hit a bug: Dask retries it twice, the other tasks still finish (their shards are kept
    for a rerun), then every failure is logged with its traceback and the first is re-raised.
    """
    if not tasks:
        return
    failures: list[tuple[ShardTask, BaseException]] = []
    if scheduler == "sync":
        for task in tasks:
            try:
                stats = build_shard(task)
            except Exception as exc:  # noqa: BLE001 - re-raised below, after the other shards
                failures.append((task, exc))
                continue
            on_result(stats)
    else:
        _execute_dask(tasks, workers, scheduler, on_result, failures)
    for task, exc in failures:
        log.error("shard %s failed (a bug, not bad input: bad input is quarantined)", task.name, exc_info=exc)
    if failures:
        raise failures[0][1]


def _execute_dask(
    tasks: Sequence[ShardTask],
    workers: int,
    scheduler: str | None,
    on_result: Callable[[dict], None],
    failures: list[tuple[ShardTask, BaseException]],
) -> None:
    from distributed import as_completed

    if not log.isEnabledFor(logging.DEBUG):  # scheduler chatter drowns the progress bar; -v shows it
        logging.getLogger("distributed").setLevel(logging.WARNING)
    client, cluster = connect(workers, scheduler)
    try:
        futures = {
            client.submit(build_shard, t, retries=2, pure=False, key=f"shard-{t.name}-{t.plan_hash[:12]}"): t
            for t in tasks
        }
        for fut in as_completed(futures):
            try:
                stats = fut.result()
            except Exception as exc:  # noqa: BLE001 - failed after its retries; re-raised by execute
                failures.append((futures[fut], exc))
            else:
                on_result(stats)
            fut.release()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def remove_stale_tmp(out_dir: Location) -> int:
    """Delete leftover `*.tmp` files of a killed run; return how many were removed."""
    stale = storage.list_files(out_dir, ".tmp") + storage.list_files(storage.join(out_dir, PARTS_DIR), ".tmp")
    for p in stale:
        storage.remove(p)
    return len(stale)


def remove_stale_shards(out_dir: Location, plan: Plan) -> tuple[str, ...]:
    """Delete the shards (tar, sidecar, stats) in `out_dir` that `plan` does not have; return their names.

    They belong to an earlier plan built into the same folder; left there, every reader of the
    folder (verify, the feature stage, training) would take their clips for this plan's.
    """
    planned = {s.name for s in plan.shards}
    names = [storage.basename(p) for d in (out_dir, storage.join(out_dir, PARTS_DIR))
             for p in storage.list_files(d)]
    stale = sorted({n.rsplit(".", 1)[0] for n in names if SHARD_FILE.match(n)} - planned)
    for name in stale:  # the tar first: a sidecar without its tar is ignored by every reader
        for p in (f"{name}.tar", f"{name}.json", f"{PARTS_DIR}/{name}.json"):
            storage.remove(storage.join(out_dir, *p.split("/")))
    if stale:
        log.warning("%s: removed %d shard(s) that plan %s does not have: %s", out_dir, len(stale),
                    plan.plan_hash[:12], ", ".join(f"{n}.tar" for n in stale))
    return tuple(stale)


def build_shards(
    cfg: ShardsConfig,
    out_dir: Location,
    *,
    workers: int = 2,
    scheduler: str | None = None,
    progress: bool = True,
    command: str | None = None,
    config_where: str = "<config>",
) -> BuildReport:
    """Build (or resume) the shard set of `cfg` in `out_dir`; return the BuildReport.

    Writes DIR/{split}-{i:06d}.tar + sidecars, DIR/quarantine.jsonl, DIR/index.json and
    DIR/dataset_card.md, holding DIR's lock (LockError when another run holds it). Raises
    ConfigError for a bad config, ManifestError for a bad manifest, QuarantineError (after
    writing everything) when more than `cfg.max_quarantine_fraction` of the input was
    quarantined, and a task's own exception when a task failed with a bug.
    """
    t0 = time.perf_counter()
    validate_config(cfg, config_where)
    out_dir = storage.as_location(out_dir)
    if isinstance(out_dir, Path):
        out_dir = out_dir.resolve()  # workers of a remote cluster do not share our working directory
    _refuse_feature_folder(out_dir)
    command = command or _command_line()
    with output_lock(storage.work_dir(out_dir), command):
        return _build_locked(cfg, out_dir, workers, scheduler, progress, command, t0)


def _build_locked(
    cfg: ShardsConfig, out_dir: Location, workers: int, scheduler: str | None, progress: bool, command: str,
    t0: float,
) -> BuildReport:
    """Build the shards of `cfg` into `out_dir` (whose lock the caller holds); return the BuildReport."""
    from intervox.shards.index import write_card, write_index

    removed = remove_stale_tmp(out_dir)
    if removed:
        log.info("removed %d leftover .tmp files of an interrupted run", removed)
    manifest, audio_root, judge_root = _resolve_audio(cfg, out_dir)
    utterances = read_manifest(manifest)
    if not utterances:
        raise ConfigError(f"{manifest}: the source manifest has no utterances")
    source_entries = _source_quarantine(manifest, cfg.source.kind)
    # speaker identities need audio (the judge hears them), so they are settled before the pure plan
    identities = load_or_derive(cfg, utterances, out_dir, judge_root,
                                workers=workers if scheduler is None else 1)  # local processes only
    plan = build_plan(cfg, utterances, identities)
    stale = remove_stale_shards(out_dir, plan)
    tasks = make_tasks(plan, out_dir, audio_root, cfg)
    ran = _run_tasks(tasks, workers, scheduler, progress)

    entries = source_entries + [QuarantineEntry(**q) for s in ran.stats for q in s["quarantine"]]
    write_quarantine(entries, out_dir)
    planned = plan.n_items + len(source_entries)  # a clip the source step failed to make is input too
    report = _report(out_dir, plan, ran, planned, len(entries), stale, t0)
    reconcile(report.planned, report.written, report.quarantined)
    write_index(out_dir, plan, ran.stats, entries, command=command, source_quarantine=len(source_entries))
    write_card(out_dir)
    check_quarantine_fraction(entries, planned, cfg.max_quarantine_fraction, str(out_dir))
    return report


def _resolve_audio(cfg: ShardsConfig, out_dir: Location) -> tuple[Path, Location, Location]:
    """Return (manifest, audio root of the shard tasks, audio root of the identity judge)."""
    manifest, audio_root = resolve_source(cfg, storage.work_dir(out_dir))
    judge_root = audio_root = audio_root.resolve() if isinstance(audio_root, Path) else audio_root
    if cfg.source.kind == "grid" and storage.is_url(out_dir):  # workers read the rendered grid from the store
        audio_root = storage.join(out_dir, SOURCE_DIR)
        n = storage.upload_tree(judge_root, audio_root)
        log.info("uploaded %d source files to %s", n, audio_root)
    return manifest, audio_root, judge_root


@dataclass(frozen=True)
class _Executed:
    """Every shard's stats in plan order (skipped ones too); the shards built now, their clips, seconds."""

    stats: list[dict]
    built: int
    clips: int
    seconds: float


def _run_tasks(tasks: Sequence[ShardTask], workers: int, scheduler: str | None, progress: bool) -> _Executed:
    """Run the tasks whose shard is not finished yet (with a progress bar); return all shards' stats."""
    results: dict[str, dict] = {}
    todo = []
    for task in tasks:
        done = finished_stats(task)
        if done is not None:
            results[task.name] = done
        else:
            todo.append(task)
    n_skipped = len(results)
    bar = _progress_bar(len(todo), progress)
    clips = [0]
    t_exec = time.perf_counter()

    def on_result(stats: dict) -> None:
        results[stats["shard"]] = stats
        clips[0] += stats["count"]
        if bar is not None:
            rate = clips[0] / max(time.perf_counter() - t_exec, 1e-9)
            bar.set_postfix_str(f"{clips[0]} clips, {rate:.1f} clips/s")
            bar.update(1)
        fault_point("shards.after_shard", len(results) - n_skipped - 1)  # tests: INTERVOX_FAULT

    try:
        execute(todo, workers=workers, scheduler=scheduler, on_result=on_result)
    finally:
        if bar is not None:
            bar.close()
    exec_seconds = time.perf_counter() - t_exec
    return _Executed([results[t.name] for t in tasks], len(todo), clips[0], exec_seconds)


def _report(
    out_dir: Location, plan: Plan, ran: _Executed, planned: int, quarantined: int, stale: tuple[str, ...],
    t0: float,
) -> BuildReport:
    """Return the BuildReport of a build whose shard tasks have all finished."""
    return BuildReport(
        out_dir=str(out_dir),
        plan_hash=plan.plan_hash,
        planned=planned,
        written=sum(s["count"] for s in ran.stats),
        quarantined=quarantined,
        shards_total=len(ran.stats),
        shards_built=ran.built,
        shards_skipped=len(ran.stats) - ran.built,
        seconds_audio=round(sum(s["seconds"] for s in ran.stats), 3),
        wall_seconds=time.perf_counter() - t0,
        exec_seconds=ran.seconds if ran.built else 0.0,
        clips_built=ran.clips,
        stale_removed=stale,
    )


def _refuse_feature_folder(out_dir: Location) -> None:
    """Raise ConfigError when `out_dir` holds feature shards: a build would delete them as stale."""
    try:
        kind = json.loads(storage.read_bytes(storage.join(out_dir, "index.json"))).get("kind")
    except (OSError, ValueError, AttributeError):
        return
    if kind == "features":
        raise ConfigError(f"{out_dir} holds feature shards (index.json kind 'features'): "
                          "build audio shards into another --out")


def _source_quarantine(manifest: Path, kind: str) -> list[QuarantineEntry]:
    """Return the items the source step rejected before the plan saw them, as entries.

    A grid source: what the synthesis could not render (its quarantine.jsonl). A manifest
    source: what `intervox corpus prepare` refused (its quarantine.jsonl, beside the manifest
    with prepare_summary.json): a table row it dropped was input too.
    """
    path = manifest.parent / "quarantine.jsonl"
    if not path.is_file() or (kind == "manifest" and not _prepared(manifest)):
        return []
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        stage = str(d.get("stage", "synth" if kind == "grid" else "prepare"))
        if kind == "manifest" and not stage.startswith("prepare"):
            continue  # not a prepare step's line: this file is someone else's
        item = str(d.get("item", "?"))
        split = next((s for s in SPLIT_ORDER if item.startswith(s + "-")), "source")
        entries.append(QuarantineEntry(split, item, str(d.get("reason", "")), stage))
    return entries


def _prepared(manifest: Path) -> bool:
    """True when `corpus prepare` wrote `manifest` (its prepare_summary.json names it)."""
    try:
        summary = json.loads((manifest.parent / "prepare_summary.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and Path(str(summary.get("manifest", ""))).name == manifest.name


def _progress_bar(total: int, enabled: bool):  # noqa: ANN202 - tqdm or None
    if not enabled or total == 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="shard", desc="shards", file=sys.stderr, dynamic_ncols=True)


def _command_line() -> str:
    return (
        "intervox " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv else "intervox shards build"
    )


def load_shards_config(path: str | Path | None, overrides: Sequence[str] = ()) -> ShardsConfig:
    """Return the ShardsConfig of `path` + overrides, validated (ConfigError names key and file)."""
    from intervox.config import load_config

    cfg = load_config(path, ShardsConfig, overrides)
    validate_config(cfg, str(path) if path else "<defaults>")
    return cfg
