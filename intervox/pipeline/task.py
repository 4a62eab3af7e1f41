"""One shard task (runs on a Dask worker): load anchors, apply ops, encode FLAC, write the tar.

A task returns only small stats (counts, seconds per op, quarantine entries), never audio;
the stats are written beside the shard (DIR/.parts/NAME.json) before the tar, so a resumed
run can skip a finished shard and still account for every item.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from intervox import __version__
from intervox.audio import check_audio, encode_audio, load_audio
from intervox.corpora.manifest import Utterance
from intervox.errors import AudioError, InterventionError, SynthesisError
from intervox.faults import fault_point
from intervox.judges.qc import QCConfig
from intervox.pipeline.plan import PlanItem, canonical_json
from intervox.pipeline.quarantine import QuarantineEntry
from intervox.shards import storage
from intervox.shards.storage import Location
from intervox.shards.write import atomic_write_bytes, read_sidecar, shard_is_complete, write_shard

PARTS_DIR = ".parts"  # per-shard stats of finished shards, so a resumed run can skip them

# What bad input raises inside an op: such an item is quarantined. Any other exception is a bug
# (in an op or here): it fails the task, and Dask's retries and then the build report it.
INPUT_ERRORS = (AudioError, InterventionError, SynthesisError)

_OP_CACHE: dict[str, object] = {}  # op spec JSON -> instance: heavy engines load once per worker


@dataclass(frozen=True)
class ShardTask:
    """Everything one Dask task needs to write one shard (small: ids, params, paths)."""

    name: str
    split: str
    tar_path: str
    plan_hash: str
    items: tuple[PlanItem, ...]
    utterances: dict[str, Utterance]
    audio_root: str
    sample_rate: int
    min_seconds: float
    max_seconds: float
    op_modules: tuple[str, ...] = ()  # modules that register the plan's ops (imported on the worker)
    qc: QCConfig | None = None  # judge rendered clips; rejected op copies go to quarantine
    position: int = 0  # the shard's place in the plan (names the shards.in_task fault point)
    audio_format: str = "flac"  # KEY.flac or KEY.wav (ShardsConfig.audio_format)


class _Quarantined(Exception):  # noqa: N818 - control flow inside a task, never raised out
    def __init__(self, stage: str, reason: str) -> None:
        super().__init__(reason)
        self.stage, self.reason = stage, reason


def _get_op(spec: dict, modules: Sequence[str]) -> object:
    """Return the op instance for `spec`, built once per process (engines stay loaded)."""
    key = canonical_json(spec)
    if key not in _OP_CACHE:
        for module in modules:
            importlib.import_module(module)
        from intervox.interventions.registry import from_dict

        _OP_CACHE[key] = from_dict(spec)
    return _OP_CACHE[key]


def source_location(utt: Utterance, audio_root: Location) -> Location:
    """Return where an utterance's audio is: its own URL or absolute path, else under `audio_root`."""
    if storage.is_url(utt.audio):
        return utt.audio
    if Path(utt.audio).is_absolute() or not storage.is_url(audio_root):
        return utt.resolve_audio(Path(audio_root))
    return storage.join(audio_root, *Path(utt.audio).parts)


def source_audio(utt: Utterance, audio_root: Location, sample_rate: int) -> tuple[np.ndarray, int]:
    """Return an utterance's audio at `sample_rate` from a folder or a URL (AudioError naming it)."""
    location = source_location(utt, audio_root)
    try:
        with storage.local_file(location) as path:  # a URL is copied to a temporary file first
            try:
                return load_audio(path, sample_rate, offset=utt.offset, duration=utt.duration)
            except AudioError as exc:
                raise AudioError(str(exc).replace(str(path), str(location))) from exc
    except OSError as exc:  # the store could not give the object
        raise AudioError(f"{location}: cannot read ({exc})") from exc


def _load_anchor(utt: Utterance, task: ShardTask) -> tuple[np.ndarray, int]:
    """Return the anchor's audio at the target rate, or raise _Quarantined naming the problem."""
    path = source_location(utt, task.audio_root)
    try:
        audio, sr = source_audio(utt, task.audio_root, task.sample_rate)
    except AudioError as exc:
        raise _Quarantined("load", str(exc)) from exc
    seconds = audio.size / sr
    if seconds < task.min_seconds:
        raise _Quarantined("check", f"{path}: too short ({seconds:.3f} s < {task.min_seconds} s)")
    if seconds > task.max_seconds:
        raise _Quarantined("check", f"{path}: too long ({seconds:.3f} s > {task.max_seconds} s)")
    return audio, sr


def _clip_json(item: PlanItem, utt: Utterance, sr: int, n: int) -> dict:
    """Return the clip JSON of the data contract (docs/architecture.md)."""
    gender = utt.gender
    if item.op and isinstance(item.op["params"].get("target_gender"), str):
        gender = item.op["params"]["target_gender"]
    # A Speech Commands clip keeps its 12-class label: `eval kws_features=DIR` runs the standard
    # 12-class probe (train on train, test on test) on clips that carry it (evaluation/kws.py).
    label12 = {"label12": utt.extra["label12"]} if "label12" in utt.extra else {}
    return {
        "key": item.key,
        "speaker": item.speaker,
        "content": item.content,
        "channel": item.channel,
        "language": utt.language,
        "text": item.text,
        "gender": gender,
        "split": item.split,
        "block": item.block,
        "slot": item.slot,
        "source_id": utt.id,
        "source_speaker": utt.speaker,
        "source_key": item.source_key,
        "op": item.op,
        "sr": sr,
        "duration": round(n / sr, 4),
        "corpus": utt.corpus,
        **label12,
        "versions": {"intervox": __version__, "numpy": np.__version__},
    }


def _render(item: PlanItem, audio: np.ndarray, sr: int, task: ShardTask) -> np.ndarray:
    """Return the item's audio: the anchor itself, or the op applied with the planned params."""
    if item.op is None:
        return audio
    if item.op.get("error"):
        raise _Quarantined("op", f"{item.key}: {item.op['error']}")
    op = _get_op(item.op["spec"], task.op_modules)
    try:
        out = op.apply(audio, sr, **item.op["params"])
        return check_audio(np.asarray(out), sr, f"{item.key} ({item.op['name']} output)")
    except INPUT_ERRORS as exc:  # this input cannot take this op: quarantine the item, not the run
        raise _Quarantined(
            "op", f"{item.key}: {item.op['name']} failed: {type(exc).__name__}: {exc}"
        ) from exc


def build_shard(task: ShardTask) -> dict:
    """Write one shard and return its stats: counts, seconds per op, quarantine entries."""
    anchors: dict[str, tuple[np.ndarray, int] | _Quarantined] = {}
    samples, quarantine, made, rendered = [], [], [], []
    for item in task.items:
        utt = task.utterances[item.anchor]
        if item.anchor not in anchors:
            try:
                anchors[item.anchor] = _load_anchor(utt, task)
            except _Quarantined as q:
                anchors[item.anchor] = q
        loaded = anchors[item.anchor]
        try:
            if isinstance(loaded, _Quarantined):
                raise loaded
            audio, sr = loaded
            out = _render(item, audio, sr, task)
            encoded = encode_audio(out, sr, task.audio_format)
        except _Quarantined as q:
            quarantine.append(QuarantineEntry(item.split, item.key, q.reason, q.stage).to_dict())
            continue
        samples.append({"__key__": item.key, task.audio_format: encoded,
                        "json": _clip_json(item, utt, sr, out.size)})
        made.append((item, out.size / sr))
        if task.qc is not None:  # QC needs every clip of the shard: anchors and same-speaker refs
            rendered.append((item, out, sr))
    qc_records = None
    if task.qc is not None:
        rejected, qc_records = _apply_qc(task, samples, rendered, anchors, quarantine)
        samples = [x for x in samples if x["__key__"] not in rejected]
        made = [m for m in made if m[0].key not in rejected]
        del rendered
    by_op: dict[str, list[float]] = {}
    for item, seconds in made:
        stat = by_op.setdefault(item.op["name"] if item.op else "source", [0, 0.0])
        stat[0] += 1
        stat[1] += seconds
    stats = {
        "shard": task.name,
        "split": task.split,
        "plan_hash": task.plan_hash,
        "count": len(samples),
        "planned": len(task.items),
        "seconds": round(sum(s for _, s in by_op.values()), 4),
        "by_op": {k: {"clips": v[0], "seconds": round(v[1], 4)} for k, v in sorted(by_op.items())},
        "quarantine": quarantine,
    }
    if qc_records is not None:
        stats["qc"] = qc_records  # per scored clip, for the validity table of index.json and the card
    fault_point("shards.in_task", task.position)  # tests kill the worker here (intervox/faults.py)
    # stats first, tar + sidecar last: a complete sidecar then always has its stats beside it
    parts = storage.join(storage.parent(task.tar_path), PARTS_DIR)
    storage.makedirs(parts)
    # not fsynced: stats lost or torn by a power cut do not parse, and the shard is rebuilt
    atomic_write_bytes(storage.join(parts, f"{task.name}.json"), (canonical_json(stats) + "\n").encode(),
                       durable=False)
    info = write_shard(task.tar_path, samples, task.plan_hash)
    return {**stats, "bytes": info.bytes, "sha256": info.sha256}


def _apply_qc(
    task: ShardTask, samples: list[dict], rendered: list[tuple], anchors: dict, quarantine: list[dict]
) -> tuple[set[str], list[dict]]:
    """Judge the rendered clips; add "qc" to kept clips' JSON, quarantine rejected ones (stage "qc").

    Returns (rejected keys, QC records for the validity table).
    """
    from intervox.pipeline.qc_stage import judge_rendered

    loaded = {k: v for k, v in anchors.items() if not isinstance(v, _Quarantined)}
    verdicts = judge_rendered(rendered, loaded, task.utterances, task.qc)
    by_key = {x["__key__"]: x for x in samples}
    split_of = {item.key: item.split for item, _, _ in rendered}
    rejected = set()
    for v in verdicts:
        if v.accepted:
            by_key[v.key]["json"]["qc"] = v.clip_qc
        else:
            rejected.add(v.key)
            quarantine.append(QuarantineEntry(split_of[v.key], v.key, f"qc: {v.reason}", "qc").to_dict())
    return rejected, [v.record for v in verdicts]


def finished_stats(task: ShardTask) -> dict | None:
    """Return the stats of an already finished shard of this plan, or None if it must be built.

    The tar is not hashed again: its sidecar, written only after the tar was committed whole,
    holds the sha256 of what was written (`intervox shards verify` re-hashes).
    """
    part = storage.join(storage.parent(task.tar_path), PARTS_DIR, f"{task.name}.json")
    if not shard_is_complete(task.tar_path, task.plan_hash, check_sha256=False):
        return None
    try:
        stats = json.loads(storage.read_bytes(part))
    except (OSError, ValueError):
        return None
    info = read_sidecar(task.tar_path)
    if stats.get("plan_hash") != task.plan_hash or info is None or info.count != stats.get("count"):
        return None
    return {**stats, "bytes": info.bytes, "sha256": info.sha256}
