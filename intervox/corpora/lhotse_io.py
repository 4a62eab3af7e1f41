"""Lhotse CutSet JSONL(.gz) <-> intervox manifests, without needing lhotse installed.

We read and write the JSON that `CutSet.to_jsonl` writes (lhotse 1.x): one MonoCut a line,
{"id", "start", "duration", "channel", "supervisions": [...], "recording": {"id",
"sources": [{"type": "file", "channels", "source"}], "sampling_rate", "num_samples",
"duration", "channel_ids"}, "type": "MonoCut"}. Our fields with no lhotse equivalent
(content_id, split, corpus, extra) travel in the supervision's "custom" dict, so
export -> import gives the same utterances back.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path

from intervox.corpora.adapters.common import AudioHeader, absolute, audio_header, norm_gender
from intervox.corpora.manifest import Utterance, iter_manifest
from intervox.errors import ManifestError

CUSTOM_FIELDS = ("content_id", "split", "corpus", "extra")
# Resampling does not change what is said or when; intervox resamples on load anyway.
HARMLESS_TRANSFORMS = ("Resample",)


def _open_text(path: Path, mode: str):
    return gzip.open(path, mode + "t", encoding="utf-8") if path.name.endswith(".gz") else path.open(
        mode, encoding="utf-8")


def iter_cuts(path: Path,
              on_bad_line: Callable[[str, str], None] | None = None) -> Iterator[tuple[str, dict]]:
    """Yield ("file:line", cut dict) for each line of a cut JSONL(.gz).

    A line that is not a JSON object raises ManifestError naming file and line, or, when
    `on_bad_line` is given, is passed to it as (where, reason) and skipped.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: cut set does not exist")
    try:
        with _open_text(path, "r") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    cut = json.loads(line)
                    problem = None if isinstance(cut, dict) else "line is not a JSON object"
                except json.JSONDecodeError as exc:
                    problem = f"not valid JSON ({exc.msg})"
                if problem is None:
                    yield where, cut
                elif on_bad_line is None:
                    raise ManifestError(f"{where}: {problem}")
                else:
                    on_bad_line(where, f"{where}: {problem}")
    except (OSError, EOFError) as exc:  # gzip: truncated or not gzip at all
        raise ManifestError(f"{path}: not a readable cut set ({exc})") from exc


def cut_to_utterance(cut: dict, where: str, audio_root: Path, *, language: str = "en",
                     corpus: str = "lhotse") -> Utterance:
    """Return the Utterance of one MonoCut dict; ManifestError/AudioError say why it is unusable."""
    try:
        return _cut_to_utterance(cut, where, audio_root, language, corpus)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:  # a field missing or of the wrong type
        raise ManifestError(f"{where}: malformed cut ({type(exc).__name__}: {exc})") from exc


def _cut_to_utterance(cut: dict, where: str, audio_root: Path, language: str, corpus: str) -> Utterance:
    kind = cut.get("type", "MonoCut")
    if kind != "MonoCut":
        raise ManifestError(f"{where}: cut type {kind} is not supported (only MonoCut)")
    rec = cut.get("recording") or {}
    sups = sorted(cut.get("supervisions") or [], key=lambda s: s.get("start", 0.0))
    if not rec or not sups:
        missing = "recording" if not rec else "supervision"
        raise ManifestError(f"{where}: cut {cut.get('id')} has no {missing}")
    odd = [t.get("name") for t in rec.get("transforms") or [] if t.get("name") not in HARMLESS_TRANSFORMS]
    if odd:
        raise ManifestError(f"{where}: recording transforms {odd} are not supported")
    channel = cut.get("channel", 0)
    source = next((s for s in rec.get("sources", []) if channel in s.get("channels", [channel])), None)
    if source is None or source.get("type") != "file":
        got = source.get("type") if source else "none"
        raise ManifestError(f"{where}: audio source of type {got} is not supported (only 'file')")
    audio = Path(source["source"])
    audio = audio if audio.is_absolute() else audio_root / audio
    header = audio_header(audio)
    speakers = {s.get("speaker") for s in sups}
    if len(speakers) != 1 or None in speakers or "" in speakers:
        raise ManifestError(f"{where}: cut {cut.get('id')} needs exactly one speaker, "
                            f"has {sorted(map(str, speakers))}")
    text = " ".join(s.get("text") or "" for s in sups).strip()
    if not text:
        raise ManifestError(f"{where}: cut {cut.get('id')} has no supervision text")
    custom = {k: v for s in sups for k, v in (s.get("custom") or {}).items()}
    return Utterance(
        id=str(cut.get("id")), audio=absolute(audio), speaker=str(speakers.pop()), text=text,
        language=next((s["language"] for s in sups if s.get("language")), language),
        corpus=custom.get("corpus") or corpus, sample_rate=header.sample_rate,
        offset=float(cut.get("start", 0.0)), duration=float(cut["duration"]),
        gender=next((norm_gender(s["gender"]) for s in sups if s.get("gender")), None),
        content_id=custom.get("content_id"), split=custom.get("split"), extra=custom.get("extra") or {},
    )


def utterance_to_cut(utt: Utterance, audio: Path, header: AudioHeader, recording_id: str) -> dict:
    """Return the MonoCut dict (lhotse 1.x JSON) of one utterance whose audio file is `audio`."""
    duration = utt.duration if utt.duration is not None else header.duration - utt.offset
    custom = {k: getattr(utt, k) for k in CUSTOM_FIELDS if getattr(utt, k) not in (None, {})}
    sup = {"id": utt.id, "recording_id": recording_id, "start": 0.0, "duration": duration, "channel": 0,
           "text": utt.text, "language": utt.language, "speaker": utt.speaker}
    if utt.gender:
        sup["gender"] = utt.gender
    if custom:
        sup["custom"] = custom
    channels = list(range(header.channels))
    source = {"type": "file", "channels": channels, "source": str(audio)}
    recording = {"id": recording_id, "sources": [source],
                 "sampling_rate": header.sample_rate, "num_samples": header.frames,
                 "duration": header.duration, "channel_ids": channels}
    return {"id": utt.id, "start": utt.offset, "duration": duration, "channel": 0, "supervisions": [sup],
            "recording": recording, "type": "MonoCut"}


def export_lhotse(manifest: Path, out: Path) -> int:
    """Write a manifest as a lhotse CutSet JSONL (gzip when `out` ends in .gz); return the cut count.

    Audio paths are written absolute (lhotse resolves relative ones against the working
    directory). Utterances sharing one file (offset slices) share one recording.
    """
    manifest, out = Path(manifest), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp" + (".gz" if out.name.endswith(".gz") else ""))
    headers: dict[Path, tuple[AudioHeader, str]] = {}
    n = 0
    with _open_text(tmp, "w") as f:
        for utt in iter_manifest(manifest):
            audio = utt.resolve_audio(manifest.parent).absolute()
            if audio not in headers:
                headers[audio] = (audio_header(audio), utt.id)
            header, rec_id = headers[audio]
            f.write(json.dumps(utterance_to_cut(utt, audio, header, rec_id), ensure_ascii=False) + "\n")
            n += 1
    tmp.replace(out)
    return n
