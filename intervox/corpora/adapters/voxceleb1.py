"""VoxCeleb1: root/wav/<idXXXXX>/<youtube id>/<NNNNN>.wav, a trial list, vox1_meta.csv.

Utterance id = the path under wav/ without ".wav" ("id10270/x6uYqmx31kE/00001"), speaker =
the idXXXXX folder. VoxCeleb has no transcripts and the manifest requires text, so text is
the placeholder "<unk>" (UNKNOWN_TEXT) and content_id is None: use it for speaker work only.
Language is the `language` option ("en": most of VoxCeleb1 is English, not all of it).

Gender (and the dev/test set) come from vox1_meta.csv when present (tab-separated despite
its name). Without it, speakers that occur in the trial list are split "test", the rest
"train" (the official Vox1-O test speakers are exactly the trial speakers).

The trial list (veri_test2.txt, veri_test.txt, or the `trials` option; lines
"label enroll.wav test.wav" relative to wav/) is normalised to out/trials.txt as
"label enroll_id test_id" with manifest ids. A trial whose file is missing or quarantined
is left out of trials.txt and listed in out/trials_quarantine.jsonl (or, with
strict_trials=True, raises ManifestError naming the paths).
"""

from __future__ import annotations

import json
from pathlib import Path

from intervox.corpora.adapters.common import (
    Collector,
    absolute,
    audio_header,
    norm_gender,
    read_table,
    require_root,
)
from intervox.corpora.manifest import Utterance
from intervox.errors import ManifestError

UNKNOWN_TEXT = "<unk>"
TRIAL_NAMES = ("veri_test2.txt", "veri_test.txt", "meta/veri_test2.txt", "meta/veri_test.txt")
META_NAMES = ("vox1_meta.csv", "meta/vox1_meta.csv")


def read_meta(root: Path) -> dict[str, dict]:
    """Return speaker -> {"gender", "set", "nationality"} from vox1_meta.csv (empty when absent)."""
    path = next((root / n for n in META_NAMES if (root / n).is_file()), None)
    if path is None:
        return {}
    return {r["VoxCeleb1 ID"]: {"gender": norm_gender(r.get("Gender")), "set": r.get("Set", ""),
                                "nationality": r.get("Nationality") or None}
            for r in read_table(path, "\t") if r.get("VoxCeleb1 ID")}


def read_trials(path: Path) -> list[tuple[int, str, str, str]]:
    """Return (line number, label, enroll, test) of each non-empty trial line (label unparsed)."""
    trials = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if len(parts) == 3:
            trials.append((lineno, parts[0], parts[1], parts[2]))
        elif parts:  # malformed: kept so that it is reported, not silently lost
            trials.append((lineno, line.strip(), "", ""))
    return trials


def _trial_id(rel: str) -> str:
    return rel[:-4] if rel.endswith(".wav") else rel


def prepare(root: Path, out: Path, *, trials: str | Path | None = None, strict_trials: bool = False,
            language: str = "en", corpus: str = "voxceleb1") -> Path:
    """Write out/manifest.jsonl (+ out/trials.txt) for a VoxCeleb1 tree; return the manifest path."""
    root = require_root(root, "VoxCeleb1")
    if not (root / "wav").is_dir():
        raise ManifestError(f"{root}: no wav/ folder (expected root/wav/idXXXXX/<youtube id>/NNNNN.wav)")
    if trials is not None:
        trials_path = Path(trials)
        if not trials_path.is_file():
            raise ManifestError(f"{trials_path}: trial list does not exist")
    else:
        trials_path = next((root / n for n in TRIAL_NAMES if (root / n).is_file()), None)
    trial_lines = read_trials(trials_path) if trials_path else []
    trial_speakers = {p.split("/")[0] for _, _, e, t in trial_lines for p in (e, t) if p}
    meta = read_meta(root)
    col = Collector("voxceleb1", root, out)
    for wav in sorted((root / "wav").glob("*/*/*.wav")):
        uid = str(wav.relative_to(root / "wav").with_suffix("")).replace("\\", "/")
        spk = wav.parents[1].name

        def build(wav=wav, uid=uid, spk=spk) -> Utterance:
            header = audio_header(wav)
            info = meta.get(spk, {})
            if info.get("set"):
                split = "test" if info["set"].lower() == "test" else "train"
            else:
                split = ("test" if spk in trial_speakers else "train") if trial_lines else None
            extra = {"youtube_id": wav.parent.name, **({"nationality": info["nationality"]}
                                                        if info.get("nationality") else {})}
            return Utterance(
                id=uid, audio=absolute(wav), speaker=spk, text=UNKNOWN_TEXT, language=language,
                corpus=corpus, sample_rate=header.sample_rate, duration=header.duration,
                gender=info.get("gender"), split=split, extra=extra,
            )

        col.attempt(str(wav), build)
    details: dict = {"trials": None, "meta": bool(meta)}
    if trials_path is not None:
        details["trials"] = _write_trials(trials_path, trial_lines, {u.id for u in col.utterances}, root,
                                          Path(out), strict_trials)
    return col.finish(**details)


def _write_trials(path: Path, lines: list, ids: set[str], root: Path, out: Path, strict: bool) -> dict:
    """Write out/trials.txt (+ trials_quarantine.jsonl); return trial counts."""
    kept, dropped = [], []
    for lineno, label, enroll, test in lines:
        item = f"{path}:{lineno}"
        if label not in ("0", "1") or not test:
            dropped.append({"item": item, "reason": f"{item}: not a 'label enroll test' line with label 0/1"})
            continue
        bad = [p for p in (enroll, test) if _trial_id(p) not in ids]
        if bad:
            why = "; ".join(f"{root / 'wav' / p} is missing or quarantined" for p in bad)
            dropped.append({"item": item, "reason": f"{item}: {why}"})
            continue
        kept.append(f"{label} {_trial_id(enroll)} {_trial_id(test)}\n")
    if strict and dropped:
        shown = "; ".join(d["reason"] for d in dropped[:5])
        raise ManifestError(f"{path}: {len(dropped)} trial(s) unusable: {shown}")
    out.mkdir(parents=True, exist_ok=True)
    (out / "trials.txt").write_text("".join(kept), encoding="utf-8")
    with (out / "trials_quarantine.jsonl").open("w", encoding="utf-8") as f:
        for d in dropped:
            f.write(json.dumps({**d, "stage": "prepare:voxceleb1:trials"}) + "\n")
    return {"source": str(path), "input": len(lines), "written": len(kept), "quarantined": len(dropped)}
