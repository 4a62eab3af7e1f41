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
from collections.abc import Iterable
from dataclasses import asdict, dataclass

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


@dataclass(frozen=True)
class ExtractSpec:
    """Everything a worker needs to turn one audio shard into a feature shard."""

    upstream: str
    device: str
    frames_layers: tuple[int, ...]
    batch_seconds: float
    padded: bool = False
    threads: int = 0  # torch intra-op threads in a worker process; 0 = leave as is


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


def featurize(upstream: Upstream, audios: list[np.ndarray], frames_layers: tuple[int, ...],
              batch_seconds: float) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """Return per clip (pooled float16 [L + 1, H], frames float16 [n, T, H] or None), in input order."""
    out: list = [None] * len(audios)
    durations = [len(a) / upstream.sample_rate for a in audios]
    for batch in length_batches(durations, batch_seconds):
        states = upstream.forward([audios[i] for i in batch])
        for i, s in zip(batch, states, strict=True):
            pooled = s.mean(dim=1).to(torch.float16).numpy()
            frames = s[list(frames_layers)].to(torch.float16).numpy() if frames_layers else None
            out[i] = (pooled, frames)
    return out


def process_shard(src: Location, out_dir: Location, spec: ExtractSpec, shard_plan_hash: str) -> dict:
    """Write the feature shard of audio shard `src`; return its stats. Raises ShardError if `src` is bad."""
    t0 = time.perf_counter()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    upstream = load_upstream(spec.upstream, spec.device, spec.padded)
    samples = [decode_sample(s) for s in iter_tar_samples(src)]
    audios, metas = [], []
    for s in samples:
        name = f"{src}:{s['__key__']}"
        ext = next((e for e in AUDIO_EXTS if e in s), None)
        if ext is None or not isinstance(s.get("json"), dict):
            raise ShardError(f"{name}: sample lacks audio (.flac/.wav) or .json")
        audio, sr = s[ext]
        audios.append(resample(audio, sr, upstream.sample_rate))
        metas.append(s["json"])
    t1 = time.perf_counter()
    feats = featurize(upstream, audios, spec.frames_layers, spec.batch_seconds)
    t2 = time.perf_counter()
    out = []
    for s, meta, (pooled, frames) in zip(samples, metas, feats, strict=True):
        sample = {"__key__": s["__key__"], "json": {**meta, "upstream": upstream.identity},
                  "pooled.npy": npy_bytes(pooled)}
        if frames is not None:
            sample["frames.npy"] = npy_bytes(frames)
        out.append(sample)
    info = write_shard(storage.join(out_dir, storage.basename(src)), out, shard_plan_hash)
    audio_seconds = sum(len(a) for a in audios) / upstream.sample_rate
    return {"shard": storage.basename(src), "clips": len(out), "audio_seconds": audio_seconds,
            "forward_seconds": t2 - t1, "seconds": time.perf_counter() - t0, "sha256": info.sha256}


def _safe_process(src: Location, out_dir: Location, spec: ExtractSpec, shard_plan_hash: str) -> dict:
    """Return process_shard's stats, or {"shard", "bad": reason} when the source shard is corrupt."""
    try:
        return process_shard(src, out_dir, spec, shard_plan_hash)
    except ShardError as exc:
        log.warning("skipping bad shard %s: %s", src, exc)
        return {"shard": storage.basename(src), "bad": str(exc)}


def _progress(items: Iterable, total: int) -> Iterable:
    """Wrap `items` in a shard progress bar on stderr (silent when not a terminal or log file)."""
    from tqdm import tqdm

    return tqdm(items, total=total, desc="features", unit="shard", mininterval=2.0)


def _run_dask(todo: list[tuple[Location, str]], out_dir: Location, spec: ExtractSpec, workers: int,
              scheduler: str | None) -> list[dict]:
    client, cluster = connect(workers, scheduler)
    try:
        from dask.distributed import as_completed

        futures = [client.submit(_safe_process, src, out_dir, spec, ph, pure=False) for src, ph in todo]
        for n, _ in enumerate(_progress(as_completed(futures), len(futures))):
            fault_point("features.after_shard", n)  # tests: INTERVOX_FAULT (intervox/faults.py)
        return client.gather(futures)
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
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
    padded: bool = False,
    command: str | None = None,
) -> dict:
    """Turn the audio shards of `audio_dir` into feature shards in `out_dir`; return a report dict.

    Finished shards (sidecar plan hash matches) are skipped. `workers > 1` (CPU) or
    `scheduler` runs one Dask task per shard; on a GPU shards run in this process.
    Raises ShardError when no shards exist or too many are corrupt, ConfigError on bad layers,
    LockError when another run holds `out_dir`.
    """
    t0 = time.perf_counter()
    audio_dir, out_dir = storage.as_location(audio_dir), storage.as_location(out_dir)
    shards = list_shards(audio_dir)
    if not shards:
        raise ShardError(f"{audio_dir}: no audio shards (*.tar) found")
    device = resolve_device(device)
    model = load_upstream(upstream, device, padded)
    n_states = model.num_hidden_states
    frames_layers = tuple(int(x) for x in frames_layers)
    bad_layers = [x for x in frames_layers if not 0 <= x < n_states]
    if bad_layers:
        raise ConfigError(f"frames_layers {bad_layers} out of range for {upstream} (0..{n_states - 1})")
    use_dask = device == "cpu" and (workers > 1 or scheduler is not None)
    threads = max(1, (os.cpu_count() or 1) // max(workers, 1)) if use_dask else 0
    spec = ExtractSpec(upstream, device, frames_layers, batch_seconds, padded, threads)
    command = command or f"intervox features {audio_dir} --out {out_dir} --upstream {upstream}"
    with output_lock(storage.work_dir(out_dir), command):
        remove_stale_features(out_dir, {storage.basename(src) for src in shards})
        sources = {storage.basename(src): source_sha256(src) for src in shards}
        dask = (workers, scheduler) if use_dask else None
        results, done = _run_shards(shards, sources, out_dir, model, spec, dask)
        bad = [r for r in results if "bad" in r]
        good = [r for r in results if "bad" not in r]
        audio_s = sum(r["audio_seconds"] for r in good)
        wall = time.perf_counter() - t0
        report = {
            "upstream": model.identity, "device": device, "workers": workers if use_dask else 1,
            "frames_layers": list(frames_layers), "shards": len(shards), "written": len(good),
            "skipped_complete": len(done),
            "bad_shards": [{"shard": r["shard"], "reason": r["bad"]} for r in bad],
            "clips": sum(r["clips"] for r in good), "audio_seconds": audio_s,
            "forward_seconds": sum(r["forward_seconds"] for r in good),
            "shard_seconds": sum(r["seconds"] for r in good), "wall_seconds": wall,
            "rtf": wall / audio_s if audio_s else None,
        }
        if len(bad) > max_bad_fraction * len(shards):
            names = ", ".join(r["shard"] for r in bad)
            raise ShardError(f"{len(bad)} of {len(shards)} source shards are corrupt (allowed fraction "
                             f"{max_bad_fraction}): {names}; first: {bad[0]['bad']}")
        _write_index(audio_dir, out_dir, model, spec, report, sources, command)
    return report


def _run_shards(shards: list[Location], sources: dict[str, str], out_dir: Location, model: Upstream,
                spec: ExtractSpec, dask: tuple[int, str | None] | None) -> tuple[list[dict], list]:
    """Process every source shard whose feature shard is not complete; on Dask when `dask` is
    (workers, scheduler), else in this process.

    Returns (the processed shards' results, the skipped complete ones).
    """
    todo, done = [], []
    for src in shards:
        name = storage.basename(src)
        ph = plan_hash(model.identity, spec.frames_layers, sources[name])
        # the sidecar holds the sha256 of what was written: a rerun does not hash finished shards again
        (done if shard_is_complete(storage.join(out_dir, name), ph, check_sha256=False) else todo).append(
            (src, ph))
    log.info("features %s: %d shards to do, %d already done", spec.upstream, len(todo), len(done))
    if dask is not None and todo:
        return _run_dask(todo, out_dir, spec, *dask), done
    results = []
    for src, ph in _progress(todo, len(todo)):
        results.append(_safe_process(src, out_dir, spec, ph))
        fault_point("features.after_shard", len(results) - 1)  # tests: INTERVOX_FAULT
    return results, done


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


def _write_index(audio_dir: Location, out_dir: Location, model: Upstream, spec: ExtractSpec, report: dict,
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
        "upstream": model.identity,
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
            "num_hidden_states": model.num_hidden_states, "frames_layers": list(spec.frames_layers),
            "spec": {k: v for k, v in asdict(spec).items() if k != "threads"},
            "bad_shards": report["bad_shards"],
        },
        "versions": versions(),
    }
    text = json.dumps(index, indent=1, ensure_ascii=False) + "\n"
    atomic_write_bytes(storage.join(out_dir, "index.json"), text.encode())
