"""Export a shard folder as a lhotse CutSet manifest (JSONL, gzip), one MonoCut per clip.

lhotse has no "member of a tar" audio source. Each cut's recording therefore uses a
`command` source (`tar -xOf SHARD KEY.flac`, which lhotse runs and decodes from stdout),
and its `custom` field carries `{"shard", "key", "clip"}` (the clip's full JSON, with the
intervention and its params) so a loader can read the member directly instead. lhotse is
not a dependency: the dicts are written in the format `CutSet.from_jsonl` reads.
"""

from __future__ import annotations

import gzip
import json
import shlex
from pathlib import Path

from intervox.shards.read import iter_tar_samples, list_shards


def clip_to_cut(meta: dict, shard: Path, key: str) -> dict:
    """Return the lhotse MonoCut dict of one clip (its JSON `meta`) stored in `shard` as KEY.flac."""
    sr = int(meta["sr"])
    duration = float(meta["duration"])
    num_samples = int(round(duration * sr))
    command = f"tar -xOf {shlex.quote(str(shard.resolve()))} {shlex.quote(key + '.flac')}"
    recording = {
        "id": key,
        "sources": [{"type": "command", "channels": [0], "source": command}],
        "sampling_rate": sr,
        "num_samples": num_samples,
        "duration": num_samples / sr,
        "channel_ids": [0],
    }
    supervision = {
        "id": key,
        "recording_id": key,
        "start": 0.0,
        "duration": num_samples / sr,
        "channel": 0,
        "text": meta.get("text"),
        "language": meta.get("language"),
        "speaker": meta.get("speaker"),
        "gender": meta.get("gender"),
        "custom": {"content": meta.get("content"), "channel": meta.get("channel")},
    }
    return {
        "id": key,
        "start": 0.0,
        "duration": num_samples / sr,
        "channel": 0,
        "supervisions": [supervision],
        "recording": recording,
        "custom": {"shard": shard.name, "key": key, "clip": meta},
        "type": "MonoCut",
    }


def export_lhotse(directory: str | Path, out: str | Path) -> int:
    """Write every clip of the audio shards in `directory` as a cut to `out` (.jsonl.gz); return the count."""
    directory, out = Path(directory), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = 0
    # no name, mtime=0: the same shards give the same .gz bytes
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
        for shard in list_shards(directory):
            for sample in iter_tar_samples(shard):
                if "json" not in sample or "flac" not in sample:
                    continue  # feature shards carry no audio to point at
                cut = clip_to_cut(json.loads(sample["json"]), shard, sample["__key__"])
                gz.write((json.dumps(cut, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
                n += 1
    tmp.replace(out)
    return n
