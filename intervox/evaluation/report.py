"""A self-contained HTML report of a run dir's results.json: tables, plots and audio examples.

Everything is inlined (CSS in the template, plots as base64 PNG, audio as base64 WAV data
URIs: FLAC is converted to 16-bit WAV because not every browser plays FLAC), so the file
can be mailed or archived without its run dir and makes no network request.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import soundfile as sf

from intervox.errors import IntervoxError, ShardError
from intervox.evaluation.data import audio_shard_dir
from intervox.evaluation.summary import Table, summary_tables
from intervox.shards.read import decode_sample, iter_tar_samples, list_shards

log = logging.getLogger(__name__)

AUDIO_SPLIT_ORDER = ("validation", "test_ood", "train", "keywords")


def _e(v: object) -> str:
    return html.escape(str(v))


def table_html(table: Table) -> str:
    """Return a table as HTML (numbers right-aligned)."""
    head = "".join(f"<th>{_e(h)}</th>" for h in table.header)
    rows = []
    for r in table.rows:
        cells = "".join(f'<td class="num">{_e(c)}</td>' if _is_num(c) else f"<td>{_e(c)}</td>" for c in r)
        rows.append(f"<tr>{cells}</tr>")
    return (f"<h3>{_e(table.title)}</h3>\n<table class=\"results\">\n<thead><tr>{head}</tr></thead>\n"
            f"<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>")


def _is_num(s: str) -> bool:
    return bool(s) and (s[0].isdigit() or s == "n/a")


def gender_tables(results: dict) -> list[Table]:
    """Return per SV split a table of miss/false-alarm rates per gender pair (whole-set EER threshold)."""
    tables = []
    for split in results.get("trials", {}):
        rows = []
        for name, entry in results.get("systems", {}).items():
            first = next(iter(entry.get("seeds", {}).values()), {})
            for emb, r in (first.get("sv", {}).get(split) or {}).items():
                for pair, g in (r.get("gender_pairs") or {}).items():
                    rows.append([name, emb, pair, str(g["n_target"]), str(g["n_nontarget"]),
                                 _num(g.get("miss")), _num(g.get("false_alarm")), _num(g.get("eer"))])
        if rows:
            tables.append(Table(f"Gender pairs, {split} (first seed; rates at the whole-set EER threshold)",
                                ["system", "embedding", "pair", "target", "non-target", "miss", "false alarm",
                                 "pair EER"], rows))
    return tables


def real_tables(results: dict) -> list[Table]:
    """Return one real-speech table per panel of results["real"] (systems with 95% CIs over speakers)."""
    from intervox.evaluation.real import panel_views, real_table, real_targets_table

    tables = []
    for panel_name, panel_section in (results.get("real") or {}).items():
        for name, section in panel_views(panel_name, panel_section):
            tables.append(real_table(name, section))
            if section.get("paired_vs_best_layer"):
                tables.append(real_targets_table(name, section))
    return tables


def real_plots(results: dict) -> dict[str, str]:
    """Return {plot name: run-dir path} of the real panels' CI bar charts."""
    return {f"real_{name}": s["plot"] for name, s in (results.get("real") or {}).items() if s.get("plot")}


def _num(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, (int, float)) and v == v else "n/a"


def plots_html(run_dir: Path, plots: dict[str, str]) -> str:
    """Return <figure> elements with every plot PNG inlined as base64."""
    out = []
    for name, rel in plots.items():
        p = run_dir / rel
        if not p.is_file():
            log.warning("plot %s is missing; left out of the report", p)
            continue
        data = base64.b64encode(p.read_bytes()).decode("ascii")
        out.append(f'<figure><img alt="{_e(name)}" src="data:image/png;base64,{data}">'
                   f"<figcaption>{_e(name)}</figcaption></figure>")
    return "\n".join(out) or '<p class="note">no plots</p>'


def wav_data_uri(audio: np.ndarray, sr: int) -> str:
    """Return a `data:audio/wav;base64,...` URI of 16-bit PCM WAV audio."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(audio, -1, 1), sr, format="WAV", subtype="PCM_16")
    return "data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def pick_audio_pairs(audio_dir: Path, n_pairs: int) -> list[tuple[dict, dict]]:
    """Return up to `n_pairs` decoded (anchor, intervened) samples linked by source_key, one op at a time.

    Shards are scanned split by split (validation first) and only until enough pairs are
    found; ops are taken round-robin so that the sample shows every kind of intervention.
    """
    shards = list_shards(audio_dir)
    rank = {s: i for i, s in enumerate(AUDIO_SPLIT_ORDER)}
    shards.sort(key=lambda p: (rank.get(p.name.rsplit("-", 1)[0], len(rank)), p.name))
    by_op: dict[str, list[tuple[dict, dict]]] = {}
    for shard in shards:
        try:
            raw = {s["__key__"]: s for s in iter_tar_samples(shard)}
        except ShardError as exc:
            log.warning("skipping audio shard %s: %s", shard, exc)
            continue
        for s in raw.values():
            if "json" not in s:
                continue
            meta = json.loads(s["json"])
            src = meta.get("source_key")
            audio_ext = next((e for e in ("flac", "wav") if e in s), None)
            if not meta.get("op") or src not in raw or audio_ext is None:
                continue
            name = str(meta["op"].get("name", "?"))
            if len(by_op.setdefault(name, [])) < n_pairs:
                by_op[name].append((raw[src], s))
        if sum(len(v) for v in by_op.values()) >= 4 * n_pairs:
            break
    chosen: list[tuple[dict, dict]] = []
    while len(chosen) < n_pairs and any(by_op.values()):
        for name in sorted(by_op):
            if by_op[name] and len(chosen) < n_pairs:
                chosen.append(by_op[name].pop(0))
    return [(decode_sample(a), decode_sample(b)) for a, b in chosen]


def audio_html(audio_dir: Path | None, n_pairs: int) -> str:
    """Return the audio section: one block per pair with two <audio controls> players."""
    if audio_dir is None:
        return '<p class="note">no audio shard dir found (pass --audio-shards)</p>'
    pairs = pick_audio_pairs(audio_dir, n_pairs)
    if not pairs:
        return f'<p class="note">no source/intervened pairs found in {_e(audio_dir)}</p>'
    out = [f'<p class="note">{len(pairs)} pairs from {_e(audio_dir)}</p>']
    for anchor, edited in pairs:
        op = edited["json"].get("op") or {}
        params = json.dumps(op.get("params", {}), sort_keys=True)
        rows = []
        for label, s in (("source", anchor), ("intervened", edited)):
            audio, sr = s.get("flac") or s.get("wav")
            m = s["json"]
            rows.append(f'<div><span class="label">{label}</span><audio controls preload="none" '
                        f'src="{wav_data_uri(audio, sr)}"></audio> <span class="note">'
                        f'{_e(m.get("speaker"))} | {_e(m.get("content"))} | '
                        f'{_e(m.get("text", ""))}</span></div>')
        out.append(f'<div class="pair"><b>{_e(op.get("name", "?"))}</b> (target {_e(op.get("target", "?"))}) '
                   f'<span class="note">{_e(params)}</span>\n' + "\n".join(rows) + "</div>")
    return "\n".join(out)


def write_report(run_dir: str | Path, audio_shards: str | Path | None = None, n_pairs: int = 6) -> Path:
    """Write run_dir/report.html from run_dir/results.json and return its path.

    Audio examples come from `audio_shards`, else from the audio shard dir recorded in the
    feature dir's index.json. Raises IntervoxError when results.json is missing.
    """
    run_dir = Path(run_dir)
    res_path = run_dir / "results.json"
    if not res_path.is_file():
        raise IntervoxError(f"{res_path}: no results (run `intervox eval {run_dir}` first)")
    try:
        results = json.loads(res_path.read_text())
    except ValueError as exc:
        raise IntervoxError(f"{res_path}: not valid JSON ({exc})") from exc
    audio_dir = Path(audio_shards) if audio_shards is not None else None
    if audio_dir is not None and not audio_dir.is_dir():
        raise IntervoxError(f"{audio_dir}: audio shard dir does not exist")
    if audio_dir is None and results.get("features"):
        audio_dir = audio_shard_dir(Path(results["features"]))
    tables = summary_tables(results) + gender_tables(results) + real_tables(results)
    seeds = ", ".join(results.get("layers", {}).get("seeds", [])) or "-"
    meta = (f"run {_e(run_dir)} &middot; features {_e(results.get('features', '?'))} "
            f"&middot; seeds {_e(seeds)}"
            f" &middot; clips {_e(json.dumps(results.get('splits', {})))}"
            + (f" &middot; trials: {_e(results['trials_rule'])}" if results.get("trials_rule") else ""))
    template = Template(resources.files("intervox.evaluation").joinpath("report_template.html").read_text())
    page = template.substitute(
        title=_e(f"intervox report: {run_dir.name}"), meta=meta,
        tables="\n".join(table_html(t) for t in tables),
        plots=plots_html(run_dir, {**results.get("plots", {}), **real_plots(results)}),
        audio=audio_html(audio_dir, n_pairs))
    out = run_dir / "report.html"
    out.write_text(page)
    return out
