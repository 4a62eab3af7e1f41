"""Summary tables of a results dict: one set of tables for the terminal and the HTML report."""

from __future__ import annotations

from dataclasses import dataclass

ORDER = ("projector", "learned_sum", "input_layer", "best_layer", "uniform_sum")


@dataclass(frozen=True)
class Table:
    """A titled table of strings."""

    title: str
    header: list[str]
    rows: list[list[str]]


def _get(d: dict | None, *path: str):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def fmt(mean, std=None, n: int = 1, digits: int = 3) -> str:
    """Return 'mean' or 'mean ± std' (several seeds); 'n/a' for missing or NaN."""
    if mean is None or not isinstance(mean, (int, float)) or mean != mean:
        return "n/a"
    if n > 1 and isinstance(std, (int, float)) and std == std:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


def _systems(results: dict) -> list[str]:
    names = list(results.get("systems", {}))
    return [n for n in ORDER if n in names] + [n for n in names if n not in ORDER]


def summary_tables(results: dict) -> list[Table]:
    """Return the SV/KWS table per system and embedding, and the disentanglement table."""
    systems = results.get("systems", {})
    splits = list(results.get("trials", {}))
    first = splits[0] if splits else None
    header = ["system", "embedding", "seeds"] + [f"EER {s}" for s in splits]
    header += [f"minDCF0.01 {first}"] if first else []
    header += ["KWS acc [95% CI over speakers]", "speaker-ID acc", "content-ID acc"]
    rows = []
    for name in _systems(results):
        e = systems[name]
        n = len(e.get("seeds", {}))
        mean, std = e.get("mean", {}), e.get("std", {})
        embs = list(_get(mean, "sv", first) or {}) if first else list(_get(mean, "kws") or {})
        for emb in embs:
            row = [name, emb, str(n)]
            row += [fmt(_get(mean, "sv", s, emb, "eer"), _get(std, "sv", s, emb, "eer"), n) for s in splits]
            if first:
                path = ("sv", first, emb, "min_dcf_0.01")
                row.append(fmt(_get(mean, *path), _get(std, *path), n))
            for path in (("kws", emb, "accuracy"), ("disentangle", "probes", "speaker_id", emb, "accuracy"),
                         ("disentangle", "probes", "content_id", emb, "accuracy")):
                row.append(fmt(_get(mean, *path), _get(std, *path), n))
            ci = _get(mean, "kws", emb, "accuracy_ci")  # the first seed's interval over speakers
            if isinstance(ci, list) and len(ci) == 2:
                row[-3] += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
            rows.append(row)
    tables = [Table("Speaker verification (EER, lower is better) and probes (accuracy)", header, rows)]

    dis_rows = []
    for name in _systems(results):
        e = systems[name]
        n = len(e.get("seeds", {}))
        mean, std = e.get("mean", {}), e.get("std", {})
        if _get(mean, "disentangle", "cka_speaker_content") is None:
            continue
        items = [
            ("speaker-ID acc on content subspace (lower = cleaner)",
             ("disentangle", "probes", "speaker_id", "content", "accuracy")),
            ("  chance", ("disentangle", "probes", "speaker_id", "content", "chance")),
            ("content-ID acc on speaker subspace (lower = cleaner)",
             ("disentangle", "probes", "content_id", "speaker", "accuracy")),
            ("  chance", ("disentangle", "probes", "content_id", "speaker", "chance")),
            (f"SV EER of content subspace, {first} (clean: near 0.5)", ("sv", first or "", "content", "eer")),
            ("linear CKA speaker vs content", ("disentangle", "cka_speaker_content")),
        ]
        for target in sorted(_get(mean, "disentangle", "invariance", "by_target") or {}):
            for sub in ("speaker", "content"):
                items.append((f"{target} ops: mean 1-cos of {sub} subspace",
                              ("disentangle", "invariance", "by_target", target, sub)))
        for label, path in items:
            dis_rows.append([name, label, fmt(_get(mean, *path), _get(std, *path), n)])
    if dis_rows:
        tables.append(Table("Disentanglement", ["system", "measure", "value"], dis_rows))
    layers = results.get("layers") or {}
    if layers.get("layer_eer_validation"):
        eers = layers["layer_eer_validation"]
        tables.append(Table(f"SV EER per pooled layer ({first})", ["layer", "EER"],
                            [[str(i), fmt(v)] for i, v in enumerate(eers)]))
    return tables


def format_table(table: Table) -> str:
    """Return a table as aligned plain text with its title."""
    widths = [max(len(str(r[i])) for r in [table.header, *table.rows]) for i in range(len(table.header))]
    line = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)).rstrip()  # noqa: E731
    out = [table.title, line(table.header), line(["-" * w for w in widths])]
    out += [line(r) for r in table.rows]
    return "\n".join(out)


def format_summary(results: dict) -> str:
    """Return the summary tables (EER, KWS accuracy, disentanglement per system) as plain text."""
    head = f"run: {results.get('run_dir', '?')}  features: {results.get('features', '?')}"
    return "\n\n".join([head, *(format_table(t) for t in summary_tables(results))]) + "\n"
