"""Audio shards -> feature shards: every clip through a frozen upstream, mean-pooled per layer.

Each source shard `NAME.tar` becomes `out_dir/NAME.tar` with the same keys: `KEY.json` (the
audio clip's JSON plus `"upstream"`), `KEY.pooled.npy` (float16 [L + 1, H], the mean over the
clip's valid frames of every hidden state) and, if asked, `KEY.frames.npy` (float16
[len(frames_layers), frames, H]). Shards are written atomically with a sidecar whose plan
hash covers the upstream identity, the frame layers and the source shard's sha256, so a
rerun skips finished shards and redoes any whose source or upstream changed.

A corrupt source shard is skipped with a warning and listed in the report; the run fails
(ShardError, after every good shard is written) only when more than `max_bad_fraction`
(default 0.05: one bad shard in twenty is tolerated, as a crashed disk or a truncated copy
should not throw away a day of extraction, but a systematic problem must not pass silently)
of the shards are bad.

The output folder is locked while the stage runs; feature shards without a source shard (left
by an earlier run over other audio shards) are removed; `out_dir/index.json` is the feature
set's own index (`"kind": "features"`: its shards with counts and sha256, the upstream, the
source folder and its plan hash), which `intervox shards verify` checks the folder against.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch

from intervox.audio import resample
from intervox.errors import ConfigError, ShardError
from intervox.faults import fault_point
from intervox.features.base import Upstream, resolve_device
from intervox.features.registry import DEFAULT_UPSTREAM, get_upstream
from intervox.locking import output_lock
from intervox.pipeline.cluster import connect
from intervox.shards import storage
from intervox.shards.index import FORMAT, FORMAT_VERSION, versions
from intervox.shards.read import AUDIO_EXTS, decode_sample, iter_tar_samples, list_shards
from intervox.shards.storage import Location
from intervox.shards.write import (
    atomic_write_bytes,
    file_sha256,
    read_sidecar,
    shard_is_complete,
    sidecar_path,
    write_shard,
)

log = logging.getLogger(__name__)

DEFAULT_MAX_BAD_FRACTION = 0.05
DEFAULT_RETRIES = 2  # as the shard stage's tasks (intervox/pipeline/run.py)


@dataclass(frozen=True)
class ExtractSpec:
    """Everything a worker needs to turn one audio shard into a feature shard."""

    upstream: str
    device: str
    frames_layers: tuple[int, ...]
    batch_seconds: float
    padded: bool = False
    threads: int = 0  # torch intra-op threads in a worker process; 0 = leave as is


@dataclass(frozen=True)
class FeatureTask:
    """One source shard to turn into a feature shard."""

    src: Location
    position: int  # the shard's place in the sorted source list (the features.in_task fault step)
    plan_hash: str

    @property
    def name(self) -> str:
        return storage.basename(self.src)


_UPSTREAMS: dict[tuple[str, str, bool], Upstream] = {}  # per process: a Dask worker loads a model once


def load_upstream(name: str, device: str, padded: bool = False) -> Upstream:
    """Return the upstream `name` on `device`, loaded once per process."""
    key = (name, device, padded)
    if key not in _UPSTREAMS:
        _UPSTREAMS[key] = get_upstream(name, device=device, padded=padded)
    return _UPSTREAMS[key]


def plan_hash(identity: dict, frames_layers: tuple[int, ...], source_sha256: str) -> str:
    """Return the sha256 of (upstream identity, frames_layers, source shard sha256)."""
    blob = json.dumps({"upstream": identity, "frames_layers": list(frames_layers), "source": source_sha256},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def source_sha256(tar: Location) -> str:
    """Return a source shard's sha256: from its sidecar when the size matches, else hashed."""
    info = read_sidecar(tar)
    if info is not None and info.bytes == storage.size(tar):
        return info.sha256
    return file_sha256(tar)


def length_batches(durations: list[float], batch_seconds: float) -> list[list[int]]:
    """Return index batches, sorted by duration, each with count x longest <= batch_seconds (>= 1 clip)."""
    batches: list[list[int]] = []
    for i in sorted(range(len(durations)), key=lambda i: durations[i]):
        if batches and (len(batches[-1]) + 1) * durations[i] <= batch_seconds:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def npy_bytes(array: np.ndarray) -> bytes:
    """Return .npy bytes of `array` (no pickle)."""
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def pool_states(upstream: Upstream, audios: list[np.ndarray],
                frames_layers: tuple[int, ...]) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Return per clip of one forward batch (pooled float16 [L + 1, H], frames float16 [n, T, H] or None)."""
    out = []
    for s in upstream.forward(audios):
        pooled = s.mean(dim=1).to(torch.float16).numpy()
        frames = s[list(frames_layers)].to(torch.float16).numpy() if frames_layers else None
        out.append((pooled, frames))
    return out


def featurize(upstream: Upstream, audios: list[np.ndarray], frames_layers: tuple[int, ...],
              batch_seconds: float) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Return per clip (pooled float16 [L + 1, H], frames float16 [n, T, H] or None), in input order."""
    out: list = [None] * len(audios)
    durations = [len(a) / upstream.sample_rate for a in audios]
    for batch in length_batches(durations, batch_seconds):
        feats = pool_states(upstream, [audios[i] for i in batch], frames_layers)
        for i, f in zip(batch, feats, strict=True):
            out[i] = f
    return out


def read_audio_shard(src: Location, sample_rate: int) -> tuple[list[str], list[dict], list[np.ndarray]]:
    """Return (keys, clip JSONs, audio resampled to `sample_rate`) of audio shard `src`, in tar order.

    Raises ShardError when `src` is corrupt or a sample lacks its audio or JSON.
    """
    keys, metas, audios = [], [], []
    for s in (decode_sample(s) for s in iter_tar_samples(src)):
        name = f"{src}:{s['__key__']}"
        ext = next((e for e in AUDIO_EXTS if e in s), None)
        if ext is None or not isinstance(s.get("json"), dict):
            raise ShardError(f"{name}: sample lacks audio (.flac/.wav) or .json")
        audio, sr = s[ext]
        keys.append(s["__key__"])
        metas.append(s["json"])
        audios.append(resample(audio, sr, sample_rate))
    return keys, metas, audios


def write_feature_shard(task: FeatureTask, out_dir: Location, identity: dict, keys: list[str],
                        metas: list[dict], feats: list[tuple[np.ndarray, np.ndarray | None]]) -> str:
    """Write the feature shard of `task` (tar + sidecar, atomically); return its sha256."""
    fault_point("features.in_task", task.position)  # tests: a failing task is retried (intervox/faults.py)
    out = []
    for key, meta, (pooled, frames) in zip(keys, metas, feats, strict=True):
        sample = {"__key__": key, "json": {**meta, "upstream": identity}, "pooled.npy": npy_bytes(pooled)}
        if frames is not None:
            sample["frames.npy"] = npy_bytes(frames)
        out.append(sample)
    return write_shard(storage.join(out_dir, task.name), out, task.plan_hash).sha256


def process_shard(task: FeatureTask, out_dir: Location, spec: ExtractSpec) -> dict:
    """Write the feature shard of `task` in this process; return its stats. ShardError: the source is bad."""
    t0 = time.perf_counter()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    upstream = load_upstream(spec.upstream, spec.device, spec.padded)
    keys, metas, audios = read_audio_shard(task.src, upstream.sample_rate)
    t1 = time.perf_counter()
    feats = featurize(upstream, audios, spec.frames_layers, spec.batch_seconds)
    t2 = time.perf_counter()
    sha256 = write_feature_shard(task, out_dir, upstream.identity, keys, metas, feats)
    audio_seconds = sum(map(len, audios)) / upstream.sample_rate
    return {"shard": task.name, "clips": len(keys), "audio_seconds": audio_seconds,
            "forward_seconds": t2 - t1, "seconds": time.perf_counter() - t0, "sha256": sha256}


def _safe_process(task: FeatureTask, out_dir: Location, spec: ExtractSpec) -> dict:
    """Return process_shard's stats, or {"shard", "bad": reason} when the source shard is corrupt.

    Any other exception (a bug, a CUDA error) propagates: the caller retries the task.
    """
    try:
        return process_shard(task, out_dir, spec)
    except ShardError as exc:
        log.warning("skipping bad shard %s: %s", task.src, exc)
        return {"shard": task.name, "bad": str(exc)}


def describe_upstream(spec: ExtractSpec) -> dict:
    """Return the identity of `spec`'s upstream, loading it in this (worker) process, where tasks reuse it."""
    return load_upstream(spec.upstream, spec.device, spec.padded).identity


def _progress_bar(total: int):  # noqa: ANN202 - a tqdm bar
    """Return a shard progress bar on stderr (silent when not a terminal or log file)."""
    from tqdm import tqdm

    return tqdm(total=total, desc="features", unit="shard", mininterval=2.0)


@dataclass(frozen=True)
class Execution:
    """Where the stage runs: the forward in this process fed by DataLoader decode workers, or one
    Dask task per shard (each decodes and runs its own shard) on a LocalCluster or a scheduler."""

    device: str
    decode_workers: int = 0  # in-process: DataLoader processes that read, decode, resample and batch
    dask_workers: int = 0  # LocalCluster worker processes (1 thread each); 0: none started here
    scheduler: str | None = None  # address of a running Dask scheduler whose workers run the tasks
    torch_threads: int = 0  # intra-op threads of each Dask task; 0: as the worker process has them

    @property
    def mode(self) -> str:
        return "dask-scheduler" if self.scheduler else "dask-local" if self.dask_workers else "in-process"

    def describe(self) -> str:
        """Return one line saying what runs where (logged, and in the report)."""
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}: a task per shard on its workers, on {self.device}"
        if self.dask_workers:
            return (f"Dask LocalCluster, {self.dask_workers} worker processes x 1 thread: a task per shard, "
                    f"forward on {self.device} with {self.torch_threads} torch threads per task")
        return f"in-process on {self.device} with {self.decode_workers} DataLoader decode workers"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "where": self.describe(), **asdict(self)}


def plan_execution(device: str, workers: int = 1, scheduler: str | None = None,
                   decode_workers: int | None = None) -> Execution:
    """Return where the stage runs for these options; ConfigError for a combination it cannot honour.

    `workers > 1` or `scheduler`: Dask, one task per shard. Otherwise the forward runs in this
    process and `decode_workers` DataLoader processes decode; by default none on CPU (decoding is
    ~1% of a forward there, and the cores are the forward's) and min(4, cores) on a GPU, which a
    serial decode would leave idle.
    """
    device = resolve_device(device)
    cores = os.cpu_count() or 1
    if workers < 1:
        raise ConfigError(f"--workers {workers}: needs at least 1 (1 runs in this process)")
    if decode_workers is not None and decode_workers < 0:
        raise ConfigError(f"--decode-workers {decode_workers}: needs 0 (decode in this process) or more")
    if device.startswith("cuda") and scheduler is None and not torch.cuda.is_available():
        raise ConfigError(f"device {device}: torch sees no GPU here (use --device cpu or auto)")
    if scheduler is not None and workers > 1:
        raise ConfigError(f"--workers {workers} with --scheduler {scheduler}: --workers sizes a LocalCluster "
                          "started here; a scheduler's own workers run the tasks. Drop one of the two")
    dask = workers > 1 or scheduler is not None
    if dask and decode_workers:
        where = f"--scheduler {scheduler}" if scheduler else f"--workers {workers}"
        raise ConfigError(f"--decode-workers {decode_workers} with {where}: decode workers feed the "
                          "forward in this process, while a Dask task decodes its own shard in its worker "
                          "(whose daemon processes cannot start DataLoader processes). Drop one of the two")
    if dask and device.startswith("cuda") and scheduler is None:
        raise ConfigError(f"--workers {workers} on {device}: {workers} Dask processes would each load the "
                          "model onto one GPU; on a GPU the forward runs in this process. Use "
                          f"--decode-workers {workers} for parallel decoding, or --device cpu for {workers} "
                          "Dask CPU workers")
    if scheduler is not None:
        return Execution(device, scheduler=scheduler)
    if dask:
        return Execution(device, dask_workers=workers, torch_threads=max(1, cores // workers))
    default = min(4, cores) if device.startswith("cuda") else 0
    return Execution(device, decode_workers=default if decode_workers is None else decode_workers)


class DecodedShards(torch.utils.data.IterableDataset):
    """Per source shard of this DataLoader worker: a head item (keys, clip JSONs, batch count), then
    its clips decoded, resampled and grouped in the stage's length batches. A bad shard yields
    {"task", "bad"}; any other failure {"task", "error"} (retried by the main process)."""

    def __init__(self, tasks: list[FeatureTask], sample_rate: int, batch_seconds: float) -> None:
        self.tasks, self.sample_rate, self.batch_seconds = tasks, sample_rate, batch_seconds

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for task in self.tasks[worker::workers]:  # whole shards per worker: a shard's batches stay in order
            yield from self._shard(task)

    def _shard(self, task: FeatureTask) -> Iterator[dict]:
        t0 = time.perf_counter()
        try:
            keys, metas, audios = read_audio_shard(task.src, self.sample_rate)
        except ShardError as exc:
            yield {"task": task, "bad": str(exc)}
            return
        except Exception:  # noqa: BLE001 - reported to the main process, which retries the task
            yield {"task": task, "error": traceback.format_exc()}
            return
        batches = length_batches([len(a) / self.sample_rate for a in audios], self.batch_seconds)
        yield {"task": task, "keys": keys, "metas": metas, "batches": len(batches),
               "audio_seconds": sum(map(len, audios)) / self.sample_rate, "seconds": time.perf_counter() - t0}
        for batch in batches:
            yield {"task": task, "indices": batch, "audios": [audios[i] for i in batch]}


def _as_is(item: object) -> object:
    return item  # DataLoader's default conversion would turn the audio arrays into tensors


def _run_in_process(tasks: list[FeatureTask], out_dir: Location, retries: int, *, model: Upstream,
                    spec: ExtractSpec, execution: Execution) -> tuple[list[dict], list]:
    """Run the forward here on the batches DataLoader workers decode; return (results, failures).

    A shard whose decode, forward or write fails is retried whole, here, up to `retries` times.
    """
    loader = torch.utils.data.DataLoader(
        DecodedShards(tasks, model.sample_rate, spec.batch_seconds), batch_size=None, collate_fn=_as_is,
        num_workers=execution.decode_workers, prefetch_factor=4 if execution.decode_workers else None)
    results: list[dict] = []
    failed: list[tuple[FeatureTask, Exception]] = []
    pending: dict[str, dict] = {}
    bar = _progress_bar(len(tasks))
    for item in loader:
        task = item["task"]
        if "bad" in item:
            log.warning("skipping bad shard %s: %s", task.src, item["bad"])
            _finish(results, {"shard": task.name, "bad": item["bad"]}, bar)
            continue
        if "error" in item:
            failed.append((task, RuntimeError(f"{task.src}: failed in a decode worker:\n{item['error']}")))
            continue
        if "keys" in item:  # a shard's head: its batches follow (none for a shard without clips)
            pending[task.name] = {**item, "feats": [None] * len(item["keys"]), "forward_seconds": 0.0}
        if task.name not in pending:  # a batch of a shard that failed earlier
            continue
        try:
            result = _add_batch(pending[task.name], item if "indices" in item else None, model, out_dir, spec)
        except Exception as exc:  # noqa: BLE001 - retried below, with the other failures
            del pending[task.name]
            failed.append((task, exc))
            continue
        if result is not None:
            del pending[task.name]
            _finish(results, result, bar)
    failures = []
    for task, exc in failed:
        log.warning("feature task %s failed (attempt 1 of %d): %s", task.name, retries + 1, exc)
        try:
            if not retries:
                raise exc
            result = _retry_here(task, out_dir, spec, retries)
        except Exception as final:  # noqa: BLE001 - raised by extract_features after the other shards
            failures.append((task, final))
            continue
        _finish(results, result, bar)
    bar.close()
    return results, failures


def _add_batch(state: dict, item: dict | None, model: Upstream, out_dir: Location,
               spec: ExtractSpec) -> dict | None:
    """Run one batch's forward (`item`; None for the head) into `state`; once the shard's last batch
    is in, write the feature shard and return its stats."""
    if item is not None:
        t = time.perf_counter()
        feats = pool_states(model, item["audios"], spec.frames_layers)
        for i, f in zip(item["indices"], feats, strict=True):
            state["feats"][i] = f
        state["forward_seconds"] += time.perf_counter() - t
        state["batches"] -= 1
    if state["batches"]:
        return None
    t = time.perf_counter()
    task = state["task"]
    sha256 = write_feature_shard(task, out_dir, model.identity, state["keys"], state["metas"], state["feats"])
    return {"shard": task.name, "clips": len(state["keys"]), "audio_seconds": state["audio_seconds"],
            "forward_seconds": state["forward_seconds"],
            "seconds": state["seconds"] + state["forward_seconds"] + time.perf_counter() - t,
            "sha256": sha256, "attempts": 1}


def _retry_here(task: FeatureTask, out_dir: Location, spec: ExtractSpec, retries: int) -> dict:
    """Return the stats of `task` run again in this process after a failed first attempt, trying up
    to `retries` more times (the stats say how many attempts); the last failure raises."""
    for attempt in range(2, retries + 2):
        try:
            return {**_safe_process(task, out_dir, spec), "attempts": attempt}
        except Exception as exc:  # noqa: BLE001 - logged; the last one is raised
            if attempt == retries + 1:
                raise
            log.warning("feature task %s failed (attempt %d of %d): %s", task.name, attempt, retries + 1, exc)
    raise ValueError(f"retries={retries}: a retry needs retries >= 1")


def _finish(results: list[dict], result: dict, bar) -> None:  # noqa: ANN001 - a tqdm bar
    """Record a finished task (written or bad); the fault point's step counts them."""
    results.append(result)
    bar.update(1)
    fault_point("features.after_shard", len(results) - 1)  # tests: INTERVOX_FAULT (intervox/faults.py)


def _run_dask(tasks: list[FeatureTask], out_dir: Location, retries: int, *, client: object,
              spec: ExtractSpec) -> tuple[list[dict], list]:
    """Run one Dask task per shard; a task that raises is resubmitted up to `retries` times.

    Retries are resubmitted here rather than with Dask's `retries=`, so the report can count them.
    A worker that dies is Dask's to handle: it reruns the worker's tasks elsewhere.
    """
    from distributed import as_completed

    def submit(task: FeatureTask, attempt: int) -> object:
        key = f"features-{task.name}-{task.plan_hash[:12]}-{attempt}"
        future = client.submit(_safe_process, task, out_dir, spec, pure=False, key=key)
        running[future] = (task, attempt)
        return future

    running: dict = {}
    pool = as_completed([submit(t, 1) for t in tasks])
    results: list[dict] = []
    failures = []
    bar = _progress_bar(len(tasks))
    for future in pool:
        task, attempt = running.pop(future)
        try:
            result = future.result()
        except Exception as exc:  # noqa: BLE001 - retried, or raised by extract_features after the others
            if attempt > retries:
                failures.append((task, exc))
            else:
                log.warning("feature task %s failed (attempt %d of %d): %s", task.name, attempt, retries + 1,
                            exc)
                pool.add(submit(task, attempt + 1))
            continue
        finally:
            future.release()
        _finish(results, {**result, "attempts": attempt}, bar)
    bar.close()
    return results, failures


@contextmanager
def _backend(execution: Execution, spec: ExtractSpec) -> Iterator[tuple[dict, Callable]]:
    """Yield (upstream identity, run(tasks, out_dir, retries) -> (results, failures)) for `execution`.

    On Dask the model is loaded by a worker (which keeps it for its tasks), never by this process.
    """
    if execution.mode == "in-process":
        model = load_upstream(spec.upstream, spec.device, spec.padded)
        yield model.identity, partial(_run_in_process, model=model, spec=spec, execution=execution)
        return
    client, cluster = connect(execution.dask_workers or 1, execution.scheduler)
    try:
        identity = client.submit(describe_upstream, spec, pure=False).result()
        yield identity, partial(_run_dask, client=client, spec=spec)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def extract_features(
    audio_dir: Location,
    out_dir: Location,
    upstream: str = DEFAULT_UPSTREAM,
    *,
    frames_layers: tuple[int, ...] = (),
    batch_seconds: float = 60.0,
    workers: int = 1,
    device: str = "auto",
    scheduler: str | None = None,
    decode_workers: int | None = None,
    retries: int = DEFAULT_RETRIES,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    padded: bool = False,
    command: str | None = None,
) -> dict:
    """Turn the audio shards of `audio_dir` into feature shards in `out_dir`; return a report dict.

    Finished shards (sidecar plan hash matches) are skipped. Where it runs (plan_execution, named
    in the log and the report's "execution"): in this process with `decode_workers` DataLoader
    decode processes, or one Dask task per shard (`workers > 1`: a LocalCluster; `scheduler`).
    A task that raises is retried up to `retries` times; one that still fails is raised after
    every other shard is done. Raises ShardError when no shards exist or too many are corrupt,
    ConfigError on bad layers or options that cannot be honoured, LockError when another run
    holds `out_dir`.
    """
    t0 = time.perf_counter()
    audio_dir, out_dir = storage.as_location(audio_dir), storage.as_location(out_dir)
    shards = list_shards(audio_dir)
    if not shards:
        raise ShardError(f"{audio_dir}: no audio shards (*.tar) found")
    if retries < 0:
        raise ConfigError(f"retries {retries}: needs 0 or more")
    execution = plan_execution(device, workers, scheduler, decode_workers)
    layers = tuple(int(x) for x in frames_layers)
    spec = ExtractSpec(upstream, execution.device, layers, batch_seconds, padded, execution.torch_threads)
    log.info("features %s: %s", upstream, execution.describe())
    command = command or f"intervox features {audio_dir} --out {out_dir} --upstream {upstream}"
    with output_lock(storage.work_dir(out_dir), command), _backend(execution, spec) as (identity, run):
        n_states = int(identity["layers"]) + 1
        bad_layers = [x for x in spec.frames_layers if not 0 <= x < n_states]
        if bad_layers:
            raise ConfigError(f"frames_layers {bad_layers} out of range for {upstream} (0..{n_states - 1})")
        remove_stale_features(out_dir, {storage.basename(src) for src in shards})
        sources = {storage.basename(src): source_sha256(src) for src in shards}
        tasks, done = _plan_tasks(shards, sources, out_dir, identity, spec)
        results, failures = run(tasks, out_dir, retries) if tasks else ([], [])
        for task, exc in failures:
            log.error("feature task %s failed after %d attempts", task.name, retries + 1, exc_info=exc)
        if failures:
            raise failures[0][1]
        results.sort(key=lambda r: r["shard"])  # tasks finish in any order; the report lists them by name
        report = _report(identity, execution, spec, shards, done, results, retries, time.perf_counter() - t0)
        bad = report["bad_shards"]
        if len(bad) > max_bad_fraction * len(shards):
            names = ", ".join(r["shard"] for r in bad)
            raise ShardError(f"{len(bad)} of {len(shards)} source shards are corrupt (allowed fraction "
                             f"{max_bad_fraction}): {names}; first: {bad[0]['reason']}")
        _write_index(audio_dir, out_dir, identity, spec, report, sources, command)
    return report


def _report(identity: dict, execution: Execution, spec: ExtractSpec, shards: list[Location], done: list,
            results: list[dict], retries: int, wall: float) -> dict:
    """Return the feature stage's report: where it ran, what it wrote, skipped or found corrupt, how fast."""
    bad = [r for r in results if "bad" in r]
    good = [r for r in results if "bad" not in r]
    audio_s = sum(r["audio_seconds"] for r in good)
    return {
        "upstream": identity, "device": execution.device,
        "workers": None if execution.scheduler else execution.dask_workers or 1,  # None: a scheduler's
        "execution": execution.to_dict(),
        "retries": {"limit": retries, "used": sum(r["attempts"] - 1 for r in good),
                    "shards": sorted(r["shard"] for r in good if r["attempts"] > 1)},
        "frames_layers": list(spec.frames_layers), "shards": len(shards), "written": len(good),
        "skipped_complete": len(done),
        "bad_shards": [{"shard": r["shard"], "reason": r["bad"]} for r in bad],
        "clips": sum(r["clips"] for r in good), "audio_seconds": audio_s,
        "forward_seconds": sum(r["forward_seconds"] for r in good),
        "shard_seconds": sum(r["seconds"] for r in good), "wall_seconds": wall,
        "rtf": wall / audio_s if audio_s else None,
    }


def _plan_tasks(shards: list[Location], sources: dict[str, str], out_dir: Location, identity: dict,
                spec: ExtractSpec) -> tuple[list[FeatureTask], list[Location]]:
    """Return (a task per source shard whose feature shard is not complete, the complete ones' sources)."""
    todo, done = [], []
    for position, src in enumerate(shards):
        name = storage.basename(src)
        ph = plan_hash(identity, spec.frames_layers, sources[name])
        # the sidecar holds the sha256 of what was written: a rerun does not hash finished shards again
        if shard_is_complete(storage.join(out_dir, name), ph, check_sha256=False):
            done.append(src)
        else:
            todo.append(FeatureTask(src, position, ph))
    log.info("features %s: %d shards to do, %d already done", spec.upstream, len(todo), len(done))
    return todo, done


def remove_stale_features(out_dir: Location, source_names: set[str]) -> list[str]:
    """Delete feature shards (tar + sidecar) whose source shard is gone; return their names.

    They were made from an earlier set of audio shards; left there, training would read them.
    """
    stale = [p for p in list_shards(out_dir) if storage.basename(p) not in source_names]
    for tar in stale:  # the tar first: a sidecar without its tar is ignored by every reader
        storage.remove(tar)
        storage.remove(sidecar_path(tar))
    names = [storage.basename(p) for p in stale]
    if stale:
        log.warning("%s: removed %d feature shard(s) without a source shard: %s", out_dir, len(stale),
                    ", ".join(names))
    return names


def _write_index(audio_dir: Location, out_dir: Location, identity: dict, spec: ExtractSpec, report: dict,
                 sources: dict[str, str], command: str) -> None:
    """Write out_dir/index.json: the feature set's own index (kind "features"), never the audio one's."""
    try:
        audio_index = json.loads(storage.read_bytes(storage.join(audio_dir, "index.json")))
    except FileNotFoundError:
        audio_index = {}
    except ValueError as exc:
        raise ShardError(f"{storage.join(audio_dir, 'index.json')}: not valid JSON ({exc})") from exc
    shards = []
    for name, src_sha in sources.items():  # source order; a bad source shard has no feature shard
        info = read_sidecar(storage.join(out_dir, name))
        if info is not None and storage.exists(storage.join(out_dir, name)):
            shards.append({"shard": name, "split": name.rsplit("-", 1)[0], "count": info.count,
                           "bytes": info.bytes, "sha256": info.sha256, "source_sha256": src_sha})
    splits: dict[str, dict] = {}
    for e in shards:
        d = splits.setdefault(e["split"], {"clips": 0, "shards": 0})
        d["clips"] += e["count"]
        d["shards"] += 1
    index = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "kind": "features", "command": command,
        "upstream": identity,
        "source": {"dir": str(audio_dir), "kind": audio_index.get("kind"),
                   "plan_hash": audio_index.get("plan_hash"), "shards": len(sources)},
        "counts": {"shards": len(shards), "clips": sum(e["count"] for e in shards),
                   "bad_source_shards": len(report["bad_shards"])},
        "splits": splits,
        "shards": shards,
        "vocab": audio_index.get("vocab", {}),
        "features": {
            "source_dir": str(audio_dir),
            "members": ["json", "pooled.npy"] + (["frames.npy"] if spec.frames_layers else []),
            "pooled": "mean over valid frames of each hidden state, float16 [layers + 1, hidden]",
            "num_hidden_states": int(identity["layers"]) + 1, "frames_layers": list(spec.frames_layers),
            "spec": {k: v for k, v in asdict(spec).items() if k != "threads"},
            "bad_shards": report["bad_shards"],
        },
        "versions": versions(),
    }
    text = json.dumps(index, indent=1, ensure_ascii=False) + "\n"
    atomic_write_bytes(storage.join(out_dir, "index.json"), text.encode())
