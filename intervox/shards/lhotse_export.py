"""Export an audio shard folder as a lhotse Shar set, so lhotse users read it with `CutSet.from_shar`.

Shar is lhotse's own tar-shard format (lhotse >= 1.10): `cuts.NNNNNN.jsonl.gz` (one MonoCut
per clip, its recording a `shar` placeholder) beside `recording.NNNNNN.tar` (`{cut_id}.flac`
or `.wav` + `{cut_id}.json`, the recording manifest), written with lhotse's own shard writers
(`JsonlShardWriter`, `TarWriter`) exactly as its `SharWriter` lays them out. The intervox shards
stream through the one reader (shards/read.py) and each clip's audio member is copied byte for
byte: no decode, no re-encode, the samples are the shard's. Each cut's `custom` carries
`{"shard", "key", "clip"}` (the clip's full JSON, with the intervention and its params).
lhotse is an optional dependency (`pip install 'intervox[lhotse]'`).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import soundfile as sf

from intervox.errors import ShardError
from intervox.shards.read import AUDIO_EXTS, iter_shards, list_shards


def clip_to_cut(meta: dict, audio: bytes, shard: str, key: str):  # noqa: ANN201 - a lhotse MonoCut
    """Return the lhotse MonoCut of one clip: its JSON `meta` as labels, its length from the audio header.

    The recording is a Shar placeholder: the reader takes the audio from the set's recording tar.
    """
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment

    try:
        header = sf.info(io.BytesIO(audio))  # exact length (the JSON's duration is rounded)
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise ShardError(f"{shard}:{key}: audio header not readable ({exc})") from exc
    sr, num_samples = int(header.samplerate), int(header.frames)
    recording = Recording(id=key, sources=[AudioSource(type="shar", channels=[0], source="")],
                          sampling_rate=sr, num_samples=num_samples, duration=num_samples / sr,
                          channel_ids=[0])
    supervision = SupervisionSegment(id=key, recording_id=key, start=0.0, duration=num_samples / sr,
                                     channel=0, text=meta.get("text"), language=meta.get("language"),
                                     speaker=meta.get("speaker"), gender=meta.get("gender"),
                                     custom={"content": meta.get("content"), "channel": meta.get("channel")})
    return MonoCut(id=key, start=0.0, duration=num_samples / sr, channel=0, supervisions=[supervision],
                   recording=recording, custom={"shard": Path(shard).name, "key": key, "clip": meta})


def _audio_member(sample: dict, where: str) -> tuple[str, bytes] | None:
    """Return (format, bytes) of a raw sample's audio, None for a feature sample (no audio)."""
    ext = next((e for e in AUDIO_EXTS if e in sample), None)
    if ext is None:
        return None
    if "json" not in sample:
        raise ShardError(f"{where}: audio without its .json")
    return ext, sample[ext]


def export_shar(directory: str | Path, out: str | Path, shard_size: int = 1000) -> int:
    """Write every clip of the audio shards in `directory` as a lhotse Shar set in `out`; return the count.

    `out` must not exist yet (or be empty): the set is written to `OUT.tmp` and renamed when whole.
    """
    try:
        from lhotse.shar.utils import to_shar_placeholder
        from lhotse.shar.writers import JsonlShardWriter, TarWriter
    except ImportError as exc:
        raise ShardError(f"the Shar export needs lhotse ({exc}): pip install 'intervox[lhotse]'") from exc
    from lhotse import fastcopy

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ShardError(f"{out}: exists and is not an empty folder; remove it or choose another --out")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n, fmt = 0, None
    with JsonlShardWriter(f"{tmp}/cuts.%06d.jsonl.gz", shard_size=shard_size) as cuts, \
            TarWriter(f"{tmp}/recording.%06d.tar", shard_size=shard_size) as recordings:
        for sample in iter_shards(list_shards(directory), decode=None):
            where = f"{sample['__shard__']}:{sample['__key__']}"
            member = _audio_member(sample, where)
            if member is None:
                continue  # feature shards carry no audio to export
            fmt = fmt or member[0]  # one recording field per Shar set: the set's audio_format
            if member[0] != fmt:
                raise ShardError(f"{where}: .{member[0]} audio in a set of .{fmt} clips")
            key = sample["__key__"]
            cut = clip_to_cut(json.loads(sample["json"]), member[1], sample["__shard__"], key)
            placeholder = to_shar_placeholder(cut.recording, cut)
            recordings.write(f"{key}.{fmt}", io.BytesIO(member[1]))
            recordings.write(f"{key}.json", io.BytesIO(json.dumps(placeholder.to_dict()).encode() + b"\n"),
                             count=False)
            cuts.write(fastcopy(cut, recording=placeholder))
            n += 1
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return n
