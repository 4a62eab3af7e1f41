"""The alpha sweep of a fine-tuning run: every merged model's raw layers on real panels (issue 17).

For each alpha, the merged upstream `finetuned:RUN@A` is evaluated like any upstream by
`real.evaluate_panel` (no projector: the raw pooled layers): speaker EER, cross-speaker content
1-NN and the keyword probe per layer. The best speaker and content layers are chosen on the
panel's choosing split (dev) and reported on its report split (test), so alpha = 0 (the
pre-trained model) and alpha = 1 (plain fine-tuning) bracket the merges. Written to
RUN/alpha_sweep.json, plotted against alpha in RUN/plots/alpha_sweep.png and RUN/report.html;
features are cached per merged file's hash under RUN/sweep/.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from intervox.evaluation.real import RealConfig, ci, evaluate_panel
from intervox.features.base import cached_weights_sha256
from intervox.features.finetuned import alpha_tag, merged_path


def layer_figures(section: dict) -> dict[int, dict[str, dict]]:
    """Return {layer: {split: {"eer", "top1", "keyword"}}} of a panel section's raw layers."""
    out: dict[int, dict[str, dict]] = {}
    for name, system in section["systems"].items():
        if not name.startswith("layer "):
            continue
        per_split = system["embeddings"]["pooled"]
        out[int(name.split()[1])] = {
            split: {"eer": fig["speaker"]["all"]["eer"], "top1": fig["content"]["top1"],
                    "keyword": (fig.get("keyword_probe") or {}).get("accuracy")}
            for split, fig in per_split.items()}
    return out


def best_figures(layers: dict[int, dict[str, dict]], best: dict, report: str) -> dict:
    """Return the report-split figures of the layers chosen on the choosing split."""
    spk, con = best.get("speaker"), best.get("content")
    return {"speaker_layer": spk, "speaker_eer": layers[spk][report]["eer"] if spk is not None else None,
            "content_layer": con, "content_top1": layers[con][report]["top1"] if con is not None else None,
            "keyword_accuracy": layers[con][report]["keyword"] if con is not None else None}


def sweep(run_dir: str | Path, alphas: list[float], real_dirs: list[str | Path],
          cfg: RealConfig = RealConfig(ceilings=())) -> dict:
    """Evaluate finetuned:RUN@A for every alpha on every panel; write and return RUN/alpha_sweep.json."""
    run_dir = Path(run_dir)
    rows, draws = [], {}
    for alpha in alphas:
        name = f"finetuned:{run_dir}@{alpha_tag(alpha)}"
        digest = cached_weights_sha256([merged_path(name)])[:12]
        panels = {}
        for d in real_dirs:
            panel = Path(d).name
            section = evaluate_panel(d, run_dir / "sweep" / panel / f"alpha-{alpha_tag(alpha)}-{digest}",
                                     upstream=name, cfg=cfg)
            layers = layer_figures(section)
            draws[alpha, panel] = {int(system.split()[1]): drawn["pooled"][section["report_split"]]
                                   for system, drawn in section["draws"].items()
                                   if system.startswith("layer ")}
            panels[panel] = {"report_split": section["report_split"], "best_layer": section["best_layer"],
                             "best": best_figures(layers, section["best_layer"], section["report_split"]),
                             "layers": {str(k): v for k, v in sorted(layers.items())}}
        rows.append({"alpha": float(alpha), "upstream": name, "weights_sha256": digest, "panels": panels})
    versus = versus_base(rows, draws)
    chosen = {panel: choose_alpha(rows, versus, panel) for panel in sorted(rows[0]["panels"])} if rows else {}
    result = {"run_dir": str(run_dir), "sweep": rows, "versus_alpha_0": versus, "chosen_alpha": chosen}
    (run_dir / "alpha_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    write_sweep_report(run_dir, result)
    return result


def versus_base(rows: list[dict], draws: dict | None = None) -> dict:
    """Return per panel and alpha the change against alpha 0 (if swept): of the best layers, and per layer.

    "best": the dev-chosen layers of each model (issue 17's targets: speaker_eer_ratio <= 0.9,
    content and keyword drops of at most 2 points), with paired 95% CIs from `draws` ({(alpha,
    panel): {layer: report-split bootstrap draws}}: every model is scored on the same speaker
    resamples). "layers": each raw layer against the same layer of the pre-trained model, which
    a change of the dev choice (ties on a small dev split) cannot blur.
    """
    base = next((r for r in rows if r["alpha"] == 0), None)
    if base is None:
        return {}
    out: dict[str, dict] = {}
    for r in rows:
        for panel, p in r["panels"].items():
            ref = base["panels"][panel]
            b, m = ref["best"], p["best"]
            report = p["report_split"]
            best = _changes(m["speaker_eer"], b["speaker_eer"], m["content_top1"], b["content_top1"],
                            m["keyword_accuracy"], b["keyword_accuracy"])
            if draws:
                best.update(paired_cis(draws[r["alpha"], panel], draws[0.0, panel], m, b))
            out.setdefault(panel, {})[alpha_tag(r["alpha"])] = {
                "best": best,
                "layers": {k: _changes(v[report]["eer"], ref["layers"][k][report]["eer"], v[report]["top1"],
                                       ref["layers"][k][report]["top1"], v[report]["keyword"],
                                       ref["layers"][k][report]["keyword"])
                           for k, v in p["layers"].items() if k in ref["layers"]}}
    return out


def paired_cis(now: dict[int, dict], base: dict[int, dict], m: dict, b: dict) -> dict:
    """Return the 95% CIs of the best layers' changes (`_changes`' keys + "_ci") over paired resamples."""
    def paired(key: str, layer: str, change) -> list[float | None] | None:  # noqa: ANN001
        x, y = now.get(m[layer], {}).get(key), base.get(b[layer], {}).get(key)
        if x is None or y is None:
            return None
        with np.errstate(divide="ignore", invalid="ignore"):
            return [None if v is None else round(v, 4) for v in ci(change(np.asarray(x), np.asarray(y)))]

    return {"speaker_eer_ratio_ci": paired("eer", "speaker_layer", lambda x, y: x / y),
            "content_top1_points_ci": paired("top1", "content_layer", lambda x, y: 100 * (x - y)),
            "keyword_points_ci": paired("keyword", "content_layer", lambda x, y: 100 * (x - y))}


CONTENT_DROP_POINTS = 2.0  # issue 17: the merge may cost content retrieval at most 2 points


def choose_alpha(rows: list[dict], versus: dict, panel: str) -> dict | None:
    """Return the alpha chosen on `panel`'s choosing split, and its report-split changes against alpha 0.

    The rule: among the alphas whose content 1-NN on the choosing split (dev-chosen layer) is at most
    CONTENT_DROP_POINTS below alpha 0's, the one with the lowest speaker EER there (ties: the
    smaller alpha). None without alpha 0 in the sweep.
    """
    if not any(r["alpha"] == 0 for r in rows):
        return None
    figures = {r["alpha"]: _choosing_figures(r["panels"][panel]) for r in rows}
    eer0, top1_0 = figures[0.0]
    allowed = [a for a, (_, top1) in figures.items() if _points(top1, top1_0) >= -CONTENT_DROP_POINTS]
    alpha = min(allowed, key=lambda a: (figures[a][0], a))
    eer, top1 = figures[alpha]
    return {"alpha": alpha, "rule": f"lowest speaker EER with content 1-NN within {CONTENT_DROP_POINTS:g} "
            "points of alpha 0's, on the choosing split",
            "choosing": {"speaker_eer_ratio": _ratio(eer, eer0),
                         "content_top1_points": _points(top1, top1_0)},
            "report": versus[panel][alpha_tag(alpha)]["best"]}


def _choosing_figures(p: dict) -> tuple[float, float]:
    """Return (speaker EER, content 1-NN) of the dev-chosen layers on the choosing split."""
    layers, best = {int(k): v for k, v in p["layers"].items()}, p["best_layer"]
    fig = best_figures(layers, best, best["chosen_on"])
    return fig["speaker_eer"], fig["content_top1"]


def _changes(eer: float | None, eer0: float | None, top1: float | None, top1_0: float | None,
             keyword: float | None, keyword0: float | None) -> dict:
    return {"speaker_eer_ratio": _ratio(eer, eer0), "content_top1_points": _points(top1, top1_0),
            "keyword_points": _points(keyword, keyword0)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None


def _points(a: float | None, b: float | None) -> float | None:
    return round(100 * (a - b), 2) if a is not None and b is not None else None


HEADER = ["alpha", "spk layer", "spk EER", "content layer", "1-NN", "keyword"]


def sweep_rows(result: dict, panel: str) -> list[list[str]]:
    """Return one row of text cells per alpha (HEADER's columns) for `panel`."""
    rows = []
    for r in result["sweep"]:
        b = r["panels"][panel]["best"]
        keys = ("speaker_layer", "speaker_eer", "content_layer", "content_top1", "keyword_accuracy")
        rows.append([alpha_tag(r["alpha"])] + [_cell(b[k]) for k in keys])
    return rows


def panels_of(result: dict) -> list[str]:
    return sorted({p for r in result["sweep"] for p in r["panels"]})


LAYER_HEADER = ["alpha", "layer", "spk EER", "1-NN", "keyword"]


def layer_rows(result: dict, panel: str) -> list[list[str]]:
    """Return one row per alpha and raw layer (LAYER_HEADER's columns): report-split figures."""
    rows = []
    for r in result["sweep"]:
        p = r["panels"][panel]
        for k, v in p["layers"].items():
            fig = v[p["report_split"]]
            rows.append([alpha_tag(r["alpha"]), k] + [_cell(fig[f]) for f in ("eer", "top1", "keyword")])
    return rows


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """Return (title, header, rows) of the best-layer table and the per-layer table of every panel."""
    out = []
    for panel in panels_of(result):
        out.append((f"alpha sweep on {panel}: best raw layers chosen on dev, figures on the report split",
                    HEADER, sweep_rows(result, panel)))
        out.append((f"alpha sweep on {panel}: every raw layer, report split", LAYER_HEADER,
                    layer_rows(result, panel)))
        chosen = (result.get("chosen_alpha") or {}).get(panel)
        if chosen:
            out.append((f"alpha chosen on {panel}'s dev split ({chosen['rule']}); changes against alpha 0",
                        CHOSEN_HEADER, [chosen_row(chosen)]))
    return out


def chosen_row(chosen: dict) -> list[str]:
    """Return the chosen alpha's row of text cells (CHOSEN_HEADER's columns)."""
    c, r = chosen["choosing"], chosen["report"]
    return [alpha_tag(chosen["alpha"]), _cell(c["speaker_eer_ratio"]), _cell(c["content_top1_points"]),
            *(_cell_ci(r[k], r.get(f"{k}_ci")) for k in ("speaker_eer_ratio", "content_top1_points",
                                                          "keyword_points"))]


CHOSEN_HEADER = ["alpha", "dev spk EER ratio", "dev 1-NN points", "spk EER ratio [95% CI]",
                 "1-NN points [95% CI]", "keyword points [95% CI]"]


def format_sweep(result: dict) -> str:
    """Return the sweep as text tables per panel (best layers chosen on dev, then every layer)."""
    lines = []
    for title, header, rows in tables(result):
        lines.append(title)
        for row in [header, *rows]:
            lines.append(" ".join(f"{c:>{max(6, len(h))}}" for c, h in zip(row, header, strict=True)))
    return "\n".join(lines)


def _cell_ci(v: float | None, lohi: list | None) -> str:
    """Return a figure with its paired 95% CI, e.g. "0.721 [0.612, 0.845]"."""
    if not lohi or None in lohi:
        return _cell(v)
    return f"{_cell(v)} [{_cell(lohi[0])}, {_cell(lohi[1])}]"


def _cell(v: float | int | None) -> str:
    if v is None:
        return "-"
    return str(v) if isinstance(v, int) else f"{v:.3f}"


def sweep_plot(result: dict, path: Path) -> Path:
    """Plot both tasks against alpha (best dev-chosen layers, report split); return the PNG path."""
    from intervox.evaluation.plots import _plt, _save

    plt = _plt()
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.5))
    alphas = [r["alpha"] for r in result["sweep"]]
    for panel in panels_of(result):
        best = {k: [r["panels"][panel]["best"][k] for r in result["sweep"]]
                for k in ("speaker_eer", "content_top1", "keyword_accuracy")}
        best = {k: [float("nan") if v is None else v for v in vs] for k, vs in best.items()}
        left.plot(alphas, best["speaker_eer"], marker="o", label=panel)
        right.plot(alphas, best["content_top1"], marker="o", label=f"{panel} content 1-NN")
        right.plot(alphas, best["keyword_accuracy"], marker="s", ls="--", label=f"{panel} keyword probe")
    left.set_title("speaker EER (lower is better)", fontsize=9)
    right.set_title("content (higher is better)", fontsize=9)
    for ax in (left, right):
        ax.set_xlabel("alpha (0 = pre-trained, 1 = fine-tuned)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, plt, path)


def write_sweep_report(run_dir: Path, result: dict) -> Path:
    """Write RUN/report.html: the sweep tables and the plot against alpha, in the report's template."""
    from importlib import resources
    from string import Template

    from intervox.evaluation.report import _e, plots_html, table_html
    from intervox.evaluation.summary import Table

    sweep_plot(result, run_dir / "plots" / "alpha_sweep.png")
    html_tables = [Table(title, header, rows) for title, header, rows in tables(result)]
    template = Template(resources.files("intervox.evaluation").joinpath("report_template.html").read_text())
    page = template.substitute(
        title=_e(f"intervox fine-tuning: {run_dir.name}"),
        meta=f"run {_e(run_dir)} &middot; merged models finetuned:{_e(run_dir)}@ALPHA, raw layers",
        tables="\n".join(table_html(t) for t in html_tables),
        plots=plots_html(run_dir, {"alpha_sweep": "plots/alpha_sweep.png"}), audio="")
    out = run_dir / "report.html"
    out.write_text(page)
    return out
