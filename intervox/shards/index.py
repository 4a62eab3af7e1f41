"""DIR/index.json (shards, counts, factor vocabularies, blocks, plan, versions) and DIR/dataset_card.md.

Both are derived only from the plan and the per-shard stats, never from timestamps, so a
rerun of the same plan rewrites them byte for byte.
"""

from __future__ import annotations

import json
import platform
from collections import defaultdict
from typing import TYPE_CHECKING

from intervox.shards import storage
from intervox.shards.storage import Location
from intervox.shards.write import atomic_write_bytes

if TYPE_CHECKING:
    from intervox.pipeline.plan import Plan
    from intervox.pipeline.quarantine import QuarantineEntry

INDEX_FILE = "index.json"
CARD_FILE = "dataset_card.md"
QC_SUMMARY_FILE = "qc_summary.json"  # written by `intervox shards qc DIR`
SPEAKERS_FILE = "speakers.jsonl"  # one row per speaker identity with clips (pipeline/identities.py)
FORMAT = "intervox-shards"
FORMAT_VERSION = 1

# Licence of the voices by engine prefix of a speaker id ("espeak:en-us:m3" -> "espeak").
ENGINE_LICENCES = {
    "espeak": ("espeak-ng", "GPL-3.0-or-later (the engine; its output audio is not a derived work)"),
    "flite": ("Flite (CMU)", "BSD-style"),
    "festival": ("Festival + festvox voices", "free (X11/BSD-style)"),
    "piper": ("Piper + joe-us voice", "MIT"),
    "kokoro": ("Kokoro", "Apache-2.0"),
    "mbrola": ("MBROLA voices", "non-free (research/non-commercial)"),
    "pico": ("SVOX Pico", "Apache-2.0"),
}


def versions() -> dict[str, str]:
    """Return the versions of the libraries that decide the shards' bytes."""
    import dask
    import numpy
    import soundfile

    from intervox import __version__

    out = {
        "intervox": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "soundfile": soundfile.__version__,
        "libsndfile": soundfile.__libsndfile_version__,
        "dask": dask.__version__,
    }
    try:
        import distributed

        out["distributed"] = distributed.__version__
    except ImportError:
        pass
    return out


KINDS = ("engine voice", "derived voice", "real speaker")  # identity kinds, pipeline/identities.py
MAX_CARD_SPEAKERS = 200  # the card lists every identity up to this many (speakers.jsonl always has all)


def engine_of(speaker: str) -> str:
    """Return the engine prefix of a speaker id (text before the first ':'), or 'corpus'."""
    base = speaker.split("~", 1)[0]
    return base.split(":", 1)[0] if ":" in base else "corpus"


def build_index(
    plan: Plan,
    stats: list[dict],
    quarantine: list[QuarantineEntry],
    *,
    command: str,
    source_quarantine: int = 0,
) -> dict:
    """Return the index.json dict of a finished build."""
    lost = {q.item for q in quarantine}
    vocab = _vocab_sets(plan, lost)
    splits = _split_stats(plan, stats, quarantine)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": "audio",
        "audio_format": plan.config.get("audio_format", "flac"),  # KEY.flac or KEY.wav, 16-bit mono
        "plan_hash": plan.plan_hash,
        "manifest_hash": plan.manifest_hash,
        "command": command,
        "counts": {
            "input": plan.n_items + source_quarantine,
            "written": sum(s["count"] for s in stats),
            "quarantined": len(quarantine),
            "source_quarantined": source_quarantine,
        },
        "quarantine": len(quarantine),
        "splits": splits,
        "shards": _shard_entries(stats),
        "vocab": {split: {k: sorted(v) for k, v in d.items()} for split, d in sorted(vocab.items())},
        "blocks": _blocks_section(plan),
        "plan": plan.config,
        **({"identities": identities_section(plan, speaker_rows(plan, lost))} if plan.identities else {}),
        **({"qc": build_qc_section(plan.config["qc"], stats)} if plan.config.get("qc") else {}),
        "versions": versions(),
    }


def _vocab_sets(plan: Plan, lost: set[str]) -> dict[str, dict[str, set]]:
    """Return split -> the sets of speakers, contents and channels of its written (not lost) items."""
    vocab: dict[str, dict[str, set]] = defaultdict(
        lambda: {"speakers": set(), "contents": set(), "channels": set()}
    )
    for shard in plan.shards:
        for it in shard.items:
            if it.key not in lost:
                v = vocab[it.split]
                v["speakers"].add(it.speaker)
                v["contents"].add(it.content)
                v["channels"].add(it.channel)
    return vocab


def _split_stats(plan: Plan, stats: list[dict], quarantine: list[QuarantineEntry]) -> dict[str, dict]:
    """Return index.json's "splits": per split clips, shards, seconds (and by op), blocks, quarantined."""
    from intervox.pipeline.plan import plan_summary

    summary = plan_summary(plan)
    splits: dict[str, dict] = {}
    for s in stats:
        d = splits.setdefault(
            s["split"], {"clips": 0, "planned": 0, "shards": 0, "seconds": 0.0, "by_op": {}}
        )
        d["clips"] += s["count"]
        d["planned"] += s["planned"]
        d["shards"] += 1
        d["seconds"] = round(d["seconds"] + s["seconds"], 3)
        for op, o in s["by_op"].items():
            e = d["by_op"].setdefault(op, {"clips": 0, "seconds": 0.0})
            e["clips"] += o["clips"]
            e["seconds"] = round(e["seconds"] + o["seconds"], 3)
    for split, d in splits.items():
        d.update({k: summary[split][k] for k in ("anchors", "blocks", "dense_blocks", "speaker_only_blocks")})
        d["quarantined"] = sum(1 for q in quarantine if q.split == split)
    return splits


def _shard_entries(stats: list[dict]) -> list[dict]:
    """Return index.json's "shards": one entry per shard that has a tar."""
    return [
        {
            "shard": f"{s['shard']}.tar",
            "split": s["split"],
            "count": s["count"],
            "planned": s["planned"],
            "bytes": s["bytes"],
            "sha256": s["sha256"],
            "seconds": s["seconds"],
        }
        for s in stats
        if s["sha256"] is not None
    ]  # a failed shard has no tar


def _blocks_section(plan: Plan) -> dict:
    """Return index.json's "blocks": the block shape, whether every block is dense, and a note."""
    return {
        "speakers": plan.config["block"]["speakers"],
        "contents": plan.config["block"]["contents"],
        "dense": all(b.dense for b in plan.blocks),
        "note": (
            "every block is a full speakers x contents sub-grid"
            if all(b.dense for b in plan.blocks)
            else "sparse source: speakers sharing contents form dense blocks, the rest "
            "speaker-only blocks (no content-positives)"
        ),
    }


def speaker_rows(plan: Plan, lost: set[str]) -> list[dict]:
    """Return speakers.jsonl: one row per (split, identity) that has written clips, in table order."""
    clips: dict[tuple[str, str], int] = defaultdict(int)
    for shard in plan.shards:
        for it in shard.items:
            if it.key not in lost:
                clips[(it.split, it.speaker)] += 1
    table = plan.identities
    rows = []
    for e in table.rows() if table is not None else []:
        n = clips.pop((e.split, e.id), 0)
        if n == 0:
            continue
        recipe = None if e.slot is None else {"op": e.op, "slot": e.slot, "attempt": e.attempt,
                                              "params": e.params}
        rows.append({
            "id": e.id, "split": e.split, "kind": e.kind, "base": e.base, "recipe": recipe,
            "gender": e.gender, "clips": n, "judge": table.judge,
            "similarity_to_base": e.similarity_to_base, "nearest": e.nearest,
            "similarity_to_nearest": e.similarity_to_nearest, "indistinct_from": list(e.indistinct_from),
        })
    if clips:  # every clip label comes from the table; anything else is a bug, not data
        raise ValueError(f"clip speakers missing from the identity table: {sorted(clips)[:5]}")
    return rows


def identities_section(plan: Plan, rows: list[dict]) -> dict:
    """Return index.json's "identities" section: judge, counts per split and kind, distances, drops."""
    table = plan.identities
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        counts[r["split"]][r["kind"]] += 1

    def stats(field: str, rows: list[dict]) -> dict | None:
        v = sorted(r[field] for r in rows if r[field] is not None)
        return {"n": len(v), "min": v[0], "median": v[len(v) // 2], "max": v[-1]} if v else None

    derived = [r for r in rows if r["recipe"] is not None]
    return {
        "file": SPEAKERS_FILE,
        "judge": table.judge,
        "judge_label": table.judge_label,
        "max_similarity": table.max_similarity,
        "counts": {split: dict(sorted(c.items())) for split, c in counts.items()},
        "similarity_to_base": stats("similarity_to_base", derived),
        "similarity_to_nearest": stats("similarity_to_nearest", rows),
        "indistinct_pairs": len(table.indistinct_pairs()),
        "dropped": [
            {"id": e.id, "split": e.split, "base": e.base, "op": e.op, "attempts": len(e.tries),
             "last": e.tries[-1] if e.tries else None}
            for e in table.dropped()
        ],
    }


def build_qc_section(qc_config: dict, stats: list[dict]) -> dict:
    """Return index.json's "qc" section: counts and the per-op validity table of the build's QC records."""
    from intervox.judges.qc import QCConfig
    from intervox.judges.validity import validity_table

    records = [r for s in stats for r in s.get("qc", [])]  # a failed shard has no records
    return {
        "when": "build",
        "n_scored": len(records),
        "n_accepted": sum(bool(r["accepted"]) for r in records),
        "n_rejected": sum(not r["accepted"] for r in records),
        "n_unscorable": sum(r["scores"] is None for r in records),
        "validity": validity_table(records, QCConfig(**qc_config)),
    }


def write_index(
    out_dir: Location,
    plan: Plan,
    stats: list[dict],
    quarantine: list[QuarantineEntry],
    *,
    command: str,
    source_quarantine: int = 0,
) -> Location:
    """Write DIR/index.json atomically and return its path."""
    index = build_index(plan, stats, quarantine, command=command, source_quarantine=source_quarantine)
    if plan.identities is not None:
        rows = speaker_rows(plan, {q.item for q in quarantine})
        atomic_write_bytes(storage.join(out_dir, SPEAKERS_FILE),
                           "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    path = storage.join(out_dir, INDEX_FILE)
    atomic_write_bytes(
        path, (json.dumps(index, indent=1, sort_keys=False, ensure_ascii=False) + "\n").encode()
    )
    return path


def read_index(directory: Location) -> dict:
    """Return DIR/index.json as a dict (ShardError when missing or not JSON)."""
    from intervox.errors import ShardError

    path = storage.join(directory, INDEX_FILE)
    try:
        return json.loads(storage.read_bytes(path))
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: missing or not valid JSON ({exc})") from exc


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 360 else f"{seconds / 60:.1f} min"


def render_card(index: dict, qc_summary: dict | None = None, speakers: list[dict] | None = None) -> str:
    """Return the dataset card (Markdown) of an index (+ an after-the-fact QC summary, if given)."""
    plan = index["plan"]
    src = plan["source"]
    counts = index["counts"]
    all_speakers = {s for v in index["vocab"].values() for s in v["speakers"]}
    engines = sorted({engine_of(s) for s in all_speakers})
    lines = _made_lines(index, _source_text(src), plan)
    lines += _statistics_lines(index, counts)
    lines += _identity_lines(index, speakers)
    lines += _validity_lines(index, qc_summary)
    lines += _licence_lines(engines)
    lines += _format_lines(index)
    return "\n".join(lines)


def _source_text(src: dict) -> str:
    """Return the card's one-phrase description of the plan's source (the grid or the manifest)."""
    if src["kind"] == "grid":
        return (
            f"a synthetic dense grid rendered offline by the intervox voice bank (language `{src['lang']}`, "
            f"{src['train_speakers']} training voices x {src['train_sentences']} sentences, "
            f"{src['val_speakers']} x {src['val_sentences']} validation, {src['ood_voices']} out-of-domain "
            f"voices, {src['keyword_voices']} keyword voices)"
        )
    return f"the manifest `{src['path']}`"


def _made_lines(index: dict, source: str, plan: dict) -> list[str]:
    """Return the card's title, intro and "How it was made" section (source, command, plan, blocks, ops)."""
    return [
        "# intervox interventional speech shards",
        "",
        "WebDataset tar shards of source speech clips and *intervened* copies: each copy changes exactly one "
        "factor (speaker, content or channel) of its anchor and keeps the others, so every clip has "
        "speaker- and content-positives inside its contrastive block.",
        "",
        "## How it was made",
        "",
        f"Source: {source}.",
        "",
        "Command:",
        "",
        "```",
        index["command"],
        "```",
        "",
        f"Plan hash `{index['plan_hash']}` (sha256 of the resolved config, the manifest content, the "
        "speaker-identity decisions and the intervox version); identical plans give byte-identical shards "
        "on any number of workers.",
        "",
        f"Blocks: {index['blocks']['speakers']} speakers x {index['blocks']['contents']} contents; "
        f"{index['blocks']['note']}.",
        "",
        "Interventions:",
        "",
        *_intervention_lines(plan["interventions"]),
    ]


def _intervention_lines(interventions: list[dict]) -> list[str]:
    """Return one bullet per intervention of the plan (op, copies per anchor, splits, params)."""
    lines: list[str] = []
    for iv in interventions:
        spec = ", ".join(f"{k}={v}" for k, v in iv["op"].items() if k != "name")
        lines.append(
            f"- `{iv['op']['name']}` x{iv['per_anchor']} per anchor on {', '.join(iv['splits'])}"
            + (f" ({spec})" if spec else "")
        )
    if not interventions:
        lines.append("- none (source clips only)")
    return lines


def _statistics_lines(index: dict, counts: dict) -> list[str]:
    """Return the card's "Statistics" section: the input reconciliation, per-split and per-op tables."""
    lines = [
        "",
        "## Statistics",
        "",
        f"Input {counts['input']} clips = written {counts['written']} + quarantined "
        f"{counts['quarantined']} (see `quarantine.jsonl`).",
        "",
        "| split | clips | shards | audio | speakers | contents | blocks (dense) |",
        "|---|---|---|---|---|---|---|",
    ]
    for split, d in index["splits"].items():
        v = index["vocab"].get(split, {"speakers": [], "contents": []})
        lines.append(
            f"| {split} | {d['clips']} | {d['shards']} | {_hours(d['seconds'])} | {len(v['speakers'])} "
            f"| {len(v['contents'])} | {d['blocks']} ({d['dense_blocks']}) |"
        )
    lines += ["", "| split | op | clips | audio |", "|---|---|---|---|"]
    for split, d in index["splits"].items():
        for op, o in d["by_op"].items():
            lines.append(f"| {split} | {op} | {o['clips']} | {_hours(o['seconds'])} |")
    return lines


def _licence_lines(engines: list[str]) -> list[str]:
    """Return the card's "Licences" section: one line per voice engine, then the code's licence."""
    lines = ["", "## Licences", ""]
    for e in engines:
        name, licence = ENGINE_LICENCES.get(e, (e, "see the source corpus' licence"))
        lines.append(f"- {name}: {licence}")
    lines.append("- intervox code: MIT")
    return lines


def _format_lines(index: dict) -> list[str]:
    """Return the card's "Format" section (clip files, keys, sidecars) and its versions line."""
    return [
        "",
        "## Format",
        "",
        f"Each clip is `KEY.{index.get('audio_format', 'flac')}` (16-bit mono) + `KEY.json` (speaker, "
        "content, channel, split, block, op "
        "with its params and seed: enough to replay it). Keys are `{split}-{shard:06d}-{item:06d}`. "
        "Every tar has a sidecar `NAME.json` with its sha256; `intervox shards verify DIR` checks them.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in index["versions"].items()),
        "",
    ]


def _identity_lines(index: dict, speakers: list[dict] | None) -> list[str]:
    """Return the card's "Speaker identities" section (index.json's summary + the speakers.jsonl rows)."""
    ids = index.get("identities")
    if not ids:
        return []

    def dist(d: dict | None) -> str:
        return f"min {d['min']:.3f}, median {d['median']:.3f} (n={d['n']})" if d else "not measured"

    judge, bar = ids["judge_label"], ids["max_similarity"]
    rule = (f"It was kept only when {judge} put its mean embedding over probe sentences below cosine {bar} "
            "to its base and to every other identity of its split, else redrawn."
            if ids["judge"] != "none" else "No speaker judge measured them (`identities.judge: none`).")
    lines = ["", "## Speaker identities", "",
             f"One row per identity in `{ids['file']}`. A derived voice is one recipe (op + fixed params) "
             f"per base voice and speaker-op slot, and says every sentence its base says. {rule}",
             "", "| split | " + " | ".join(KINDS) + " |", "|---|" + "---|" * len(KINDS)]
    for split, c in ids["counts"].items():
        lines.append(f"| {split} | " + " | ".join(str(c.get(k, 0)) for k in KINDS) + " |")
    lines += ["", f"{judge} cosine of a derived voice to its base: {dist(ids['similarity_to_base'])}; "
              f"of any identity to its nearest other: {dist(ids['similarity_to_nearest'])}; op-made voices "
              f"at or above {bar} to another identity: {ids['indistinct_pairs']} pairs (never non-target "
              "trials)."]
    if ids["dropped"]:
        dropped = ", ".join(f"`{d['id']}` ({d['split']}, {d['attempts']} attempts)" for d in ids["dropped"])
        lines += ["", f"Dropped after every attempt ({len(ids['dropped'])}): {dropped}."]
    if speakers and len(speakers) <= MAX_CARD_SPEAKERS:
        lines += ["", "| identity | split | kind | recipe | clips | to base | nearest other |",
                  "|---|---|---|---|---|---|---|"]
        for r in speakers:
            rec = r["recipe"]
            recipe = f"{rec['op']} " + ", ".join(f"{k}={_short(v)}" for k, v in rec["params"].items()) if (
                rec and rec["params"]) else "-"
            near = f"{r['similarity_to_nearest']:.3f} `{r['nearest']}`" if r["nearest"] else "-"
            base = f"{r['similarity_to_base']:.3f}" if r["similarity_to_base"] is not None else "-"
            lines.append(f"| `{r['id']}` | {r['split']} | {r['kind']} | {recipe} | {r['clips']} | {base} "
                         f"| {near} |")
    return lines


def _short(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def read_speakers(directory: Location) -> list[dict] | None:
    """Return the rows of DIR/speakers.jsonl, or None when there is none."""
    try:
        text = storage.read_bytes(storage.join(directory, SPEAKERS_FILE)).decode("utf-8")
    except OSError:
        return None
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _validity_lines(index: dict, qc_summary: dict | None) -> list[str]:
    """Return the card's "Intervention validity" section: QC during the build and/or afterwards."""
    from intervox.judges.validity import validity_markdown

    runs = []
    if index.get("qc"):
        runs.append(("QC ran inside the shard tasks: clips it rejected are in `quarantine.jsonl` (stage "
                     "`qc`), kept clips carry their scores in `KEY.json` (`\"qc\"`).", index["qc"]))
    if qc_summary:
        runs.append(("Scored after the build by `intervox shards qc` (`qc.jsonl`, `qc_summary.json`); "
                     "nothing was removed.", qc_summary))
    if not runs:
        return []
    lines = ["", "## Intervention validity", "",
             "Offline judges score each intervened clip against its unedited anchor: Whisper CER "
             "(content), Resemblyzer cosine (speaker), Praat F0 (pitch). A speaker op should push the "
             "similarity to its source below same-speaker levels and keep the words; content and "
             "channel ops should keep the voice."]
    for text, qc in runs:
        lines += ["", f"{text} Scored {qc['n_scored']} clips: {qc['n_accepted']} accepted, "
                  f"{qc['n_rejected']} rejected ({qc['n_unscorable']} not scorable); sample fraction "
                  f"{qc['validity']['thresholds']['fraction']}.", "",
                  validity_markdown(qc["validity"]).rstrip()]
    return lines


def read_qc_summary(directory: Location, plan_hash: str | None) -> dict | None:
    """Return DIR/qc_summary.json when it was scored on shards of `plan_hash`, else None."""
    try:
        summary = json.loads(storage.read_bytes(storage.join(directory, QC_SUMMARY_FILE)))
    except (OSError, ValueError):
        return None
    # a summary of an earlier plan's shards would describe clips that are no longer there
    return summary if plan_hash is not None and summary.get("plan_hash") == plan_hash else None


def write_card(out_dir: Location) -> Location:
    """Write DIR/dataset_card.md from DIR/index.json (+ DIR/qc_summary.json of this plan); return its path."""
    path = storage.join(out_dir, CARD_FILE)
    index = read_index(out_dir)
    card = render_card(index, read_qc_summary(out_dir, index.get("plan_hash")), read_speakers(out_dir))
    atomic_write_bytes(path, card.encode("utf-8"))
    return path
