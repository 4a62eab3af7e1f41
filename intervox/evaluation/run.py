"""Evaluate a run dir: every seed's projector and the layer baselines, on SV, KWS and disentanglement.

A *system* maps pooled features [N, layers + 1, hidden] to named embeddings
(`{"speaker": .., "content": ..}` for the projector, `{"pooled": ..}` for a baseline).
`evaluate_systems` works on any such callables, so it is testable with hand-made
embeddings; `evaluate` loads a run dir's seeds with `intervox.training.api.load_trained`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from intervox.config import load_config, to_plain
from intervox.errors import IntervoxError
from intervox.evaluation import disentangle, plots
from intervox.evaluation.config import EvalConfig
from intervox.evaluation.data import FeatureSet, audio_shard_dir, layer_norm, load_split
from intervox.evaluation.kws import probe_keywords
from intervox.evaluation.probes import ProbeConfig
from intervox.evaluation.summary import format_summary  # noqa: F401  (re-exported: run.format_summary)
from intervox.evaluation.sv import compute_eer, cosine_scores, verify
from intervox.evaluation.trials import Trial, TrialRule, identity_trial_rule, make_trials, write_trials
from intervox.shards import storage
from intervox.shards.mirror import local_shard_dir

log = logging.getLogger(__name__)

Project = Callable[[np.ndarray], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class System:
    """One representation under evaluation; `seed` is None for seed-independent baselines."""

    name: str
    project: Project
    seed: int | None = None
    note: str = ""


def layer_system(layer: int, normalize: bool = False) -> Project:
    """Return a system that takes pooled row `layer` (layer-normed when `normalize`) as its one embedding."""
    if normalize:
        return lambda pooled: {"pooled": layer_norm(pooled[:, layer])}
    return lambda pooled: {"pooled": pooled[:, layer]}


def weighted_system(weights: Mapping[str, np.ndarray], normalize: bool = False) -> Project:
    """Return a system whose embedding `name` is the sum of layers weighted by `weights[name]`.

    With `normalize` each layer is layer-normed first, as the projector's input is.
    """
    def project(pooled: np.ndarray) -> dict[str, np.ndarray]:
        x = layer_norm(pooled) if normalize else pooled
        return {n: np.tensordot(x, np.asarray(w, np.float32), axes=([1], [0])) for n, w in weights.items()}
    return project


def project_all(project: Project, pooled: np.ndarray, chunk: int = 1024) -> dict[str, np.ndarray]:
    """Return the system's embeddings of every clip, projecting float32 chunks of `chunk` clips."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(pooled), chunk):
        out = project(np.asarray(pooled[start:start + chunk], dtype=np.float32))
        for name, emb in out.items():
            parts.setdefault(name, []).append(np.asarray(emb, dtype=np.float32))
    return {name: np.concatenate(v) for name, v in parts.items()}


def make_split_trials(fs: FeatureSet, cfg: EvalConfig, rule: TrialRule | None = None) -> list[Trial]:
    """Return the seeded, balanced, text-independent trial list of one split (non-targets per `rule`)."""
    return make_trials(fs.keys, [str(s) for s in fs.values("speaker")], n_per_class=cfg.sv_trials_per_class,
                       seed=cfg.seed, contents=[str(c) for c in fs.values("content")], salt=fs.split,
                       indistinct=(rule or TrialRule()).indistinct)


def best_layer(fs: FeatureSet, trials: Sequence[Trial], normalize: bool = False) -> tuple[int, list[float]]:
    """Return (layer with the lowest SV EER on `fs`, EER of every layer), layer-normed when `normalize`."""
    labels = np.array([t.label for t in trials])
    index = fs.index()
    eers = [compute_eer(cosine_scores(np.asarray(layer_system(k, normalize)(fs.pooled)["pooled"], np.float32),
                                      index, trials),
                        labels)[0] for k in range(fs.pooled.shape[1])]
    return int(np.nanargmin(eers)), eers


def evaluate_system(system: System, sv_sets: Mapping[str, FeatureSet], trials: Mapping[str, list[Trial]],
                    kws_set: FeatureSet | None, cfg: EvalConfig) -> tuple[dict, dict[str, np.ndarray] | None]:
    """Return (metrics of one system, its embeddings of the first SV split for plots)."""
    probe_cfg = ProbeConfig(epochs=cfg.probe_epochs, lr=cfg.probe_lr, batch_size=cfg.probe_batch_size,
                            seed=cfg.seed)
    metrics: dict = {"sv": {}, "note": system.note}
    first_emb = None
    for split, fs in sv_sets.items():
        emb = project_all(system.project, fs.pooled)
        metrics["sv"][split] = {name: verify(e, fs.index(), trials[split], fs.genders())
                                for name, e in emb.items()}
        if first_emb is None:
            first_emb = emb
            pairs = disentangle.intervention_pairs(fs.keys, fs.metas)
            dis = {"split": split, "n_pairs": len(pairs),
                   "probes": disentangle.cross_probes(emb, fs.metas, probe_cfg, cfg.probe_test_fraction),
                   "invariance": disentangle.invariance(emb, pairs, fs.metas)}
            if "speaker" in emb and "content" in emb:
                dis["cka_speaker_content"] = disentangle.linear_cka(emb["speaker"], emb["content"])
            metrics["disentangle"] = dis
    if kws_set is not None:
        emb = project_all(system.project, kws_set.pooled)
        metrics["kws"] = {name: probe_keywords(e, kws_set.metas, probe_cfg, cfg.probe_folds).to_dict()
                          for name, e in emb.items()}
    return metrics, first_emb


def evaluate_systems(systems: Sequence[System], sv_sets: Mapping[str, FeatureSet], kws_set: FeatureSet | None,
                     cfg: EvalConfig, out_dir: Path, trial_rule: TrialRule | None = None) -> dict:
    """Evaluate every system, write trial lists and plots under `out_dir`; return the results dict.

    Systems sharing a name (one per seed) are aggregated: `results["systems"][name]` holds
    `seeds` (per-seed metrics), `mean` and `std` (of every number, over seeds).
    """
    out_dir = Path(out_dir)
    trial_rule = trial_rule or TrialRule()
    trials = {split: make_split_trials(fs, cfg, trial_rule) for split, fs in sv_sets.items()}
    for split, t in trials.items():
        write_trials(t, out_dir / f"trials_{split}.txt")
    results: dict = {"splits": {s: len(fs) for s, fs in sv_sets.items()},
                     "trials": {s: f"trials_{s}.txt" for s in trials}, "trials_rule": trial_rule.text,
                     "systems": {}, "plots": {}}
    if kws_set is not None:
        results["splits"]["kws:" + kws_set.split] = len(kws_set)
    first_emb: dict[str, dict[str, np.ndarray]] = {}
    for system in systems:
        log.info("evaluating %s (seed %s)", system.name, system.seed)
        metrics, emb = evaluate_system(system, sv_sets, trials, kws_set, cfg)
        entry = results["systems"].setdefault(system.name, {"seeds": {}, "note": system.note})
        entry["seeds"][str(system.seed if system.seed is not None else "-")] = metrics
        if emb is not None:
            first_emb.setdefault(system.name, emb)
    for entry in results["systems"].values():
        entry["mean"], entry["std"] = aggregate(list(entry["seeds"].values()))
    results["plots"] = make_plots(results, first_emb, sv_sets, out_dir / "plots", cfg)
    return results


def aggregate(runs: Sequence[dict]) -> tuple[dict, dict]:
    """Return (mean, std) of every number over per-seed metric dicts; non-numbers come from the first."""
    first = runs[0]
    mean: dict = {}
    std: dict = {}
    for key, value in first.items():
        values = [r.get(key) for r in runs]
        if isinstance(value, dict):
            sub = [v for v in values if isinstance(v, dict)]
            mean[key], std[key] = aggregate(sub)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if all(isinstance(v, int) and v == value for v in values):
                mean[key], std[key] = value, 0  # counts equal over seeds stay integers
                continue
            nums = np.array([v if isinstance(v, (int, float)) else np.nan for v in values], dtype=np.float64)
            mean[key] = float(np.nanmean(nums)) if np.isfinite(nums).any() else float("nan")
            std[key] = float(np.nanstd(nums)) if np.isfinite(nums).sum() > 1 else 0.0
        else:
            mean[key] = value
    return mean, std


def make_plots(results: dict, first_emb: Mapping[str, Mapping[str, np.ndarray]],
               sv_sets: Mapping[str, FeatureSet], plot_dir: Path, cfg: EvalConfig) -> dict[str, str]:
    """Write DET, confusion, 2-D embedding and invariance PNGs; return {plot name: path in run dir}."""
    out: dict[str, str] = {}
    systems = results["systems"]
    for split in sv_sets:
        curves = {}
        for name, entry in systems.items():
            first = next(iter(entry["seeds"].values()))
            for emb, r in first["sv"][split].items():
                curves[f"{name}.{emb} ({r['eer']:.3f})" if r["eer"] == r["eer"] else f"{name}.{emb}"] = (
                    r["det"]["fpr"], r["det"]["fnr"])
        out[f"det_{split}"] = plots.det_plot(curves, plot_dir / f"det_{split}.png",
                                             f"DET, {split} (EER)").name
    for name, entry in systems.items():
        first = next(iter(entry["seeds"].values()))
        for emb, r in first.get("kws", {}).items():
            if "confusion" in r and len(r["classes"]) <= 60:
                p = plots.confusion_plot(np.array(r["confusion"]), r["classes"],
                                         plot_dir / f"kws_{name}_{emb}.png",
                                         f"KWS {name}.{emb}: acc {r['accuracy']:.3f}")
                out[f"kws_{name}_{emb}"] = p.name
        inv = first.get("disentangle", {}).get("invariance", {}).get("by_op")
        if inv:
            subs = list(first["sv"][next(iter(sv_sets))])
            out[f"invariance_{name}"] = plots.invariance_plot(inv, subs, plot_dir / f"invariance_{name}.png",
                                                              f"cosine change per op: {name}").name
    if "projector" in first_emb and sv_sets:
        fs = next(iter(sv_sets.values()))
        rng = np.random.default_rng([cfg.seed, 2])
        rows = np.sort(rng.permutation(len(fs))[: cfg.embed_points])
        for emb_name, emb in first_emb["projector"].items():
            coords = disentangle.pca_2d(emb[rows])
            for factor in ("speaker", "content"):
                labels = [str(fs.metas[i].get(factor)) for i in rows]
                key = f"pca_{emb_name}_by_{factor}"
                out[key] = plots.scatter_2d(coords, labels, plot_dir / f"{key}.png",
                                            f"{emb_name} subspace, PCA, coloured by {factor}").name
    return {k: f"plots/{v}" for k, v in out.items()}


def read_run_config(run_dir: Path) -> dict:
    """Return the run's resolved TrainConfig as a plain dict (empty when config.yaml is missing)."""
    p = run_dir / "config.yaml"
    if not p.is_file():
        return {}
    try:
        return yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise IntervoxError(f"{p}: not valid YAML ({exc})") from exc


def features_from_config(run_cfg: dict, run_dir: Path) -> Path:
    """Return the (first) feature dir a run was trained on, from `data.features` of its config."""
    feats = (run_cfg.get("data") or {}).get("features") or run_cfg.get("features")
    if isinstance(feats, (list, tuple)):
        if len(feats) > 1:
            log.warning("run %s fuses %d feature dirs; evaluating with the first", run_dir, len(feats))
        feats = feats[0] if feats else None
    if not feats:
        raise IntervoxError(f"{run_dir}/config.yaml: no data.features; pass the feature dir explicitly")
    if storage.is_url(str(feats)):
        return local_shard_dir(str(feats))
    p = Path(feats)
    return p if p.is_dir() or p.is_absolute() else (run_dir / p if (run_dir / p).is_dir() else p)


def seed_dirs(run_dir: Path) -> list[Path]:
    """Return the run's seed-K dirs that hold a projector, sorted by K."""
    dirs = [d for d in run_dir.glob("seed-*") if (d / "projector.safetensors").is_file()]
    def number(d: Path) -> int:
        tail = d.name.split("-", 1)[1]
        return int(tail) if tail.isdigit() else 0

    return sorted(dirs, key=number)


def learned_layer_weights(model: object) -> dict[str, np.ndarray] | None:
    """Return {subspace: softmax layer weights} of a trained model with weighted-sum input, else None."""
    for obj in (model, getattr(model, "model", None), getattr(model, "projector", None)):
        fn = getattr(obj, "layer_weights", None)
        if fn is None:
            continue
        weights = fn() if callable(fn) else fn
        if isinstance(weights, dict) and weights:
            first = next(iter(weights.values()))  # first upstream
            if isinstance(first, dict) and first:
                return {k: np.asarray(v, dtype=np.float32) for k, v in first.items()}
    return None


def run_systems(run_dir: Path, run_cfg: dict, val_set: FeatureSet | None, trials: Sequence[Trial] | None,
                cfg: EvalConfig) -> tuple[list[System], dict]:
    """Return the systems of a run dir (projector + learned sum per seed, layer baselines) and layer info."""
    from intervox.training.api import load_trained

    systems: list[System] = []
    seeds = seed_dirs(run_dir)
    # baselines are built exactly like the projector's input: layer-normed when it is
    normalize = bool((run_cfg.get("model") or {}).get("normalize_layers", False))
    # training writes seed-K for K in range(len(seeds)); a killed run leaves the last ones unfinished
    configured = [f"seed-{k}" for k in range(len(run_cfg.get("seeds") or ()))]
    missing = [name for name in configured if not (run_dir / name / "projector.safetensors").is_file()]
    if not seeds:
        raise IntervoxError(f"{run_dir}: no seed-K/projector.safetensors found (train first)")
    if missing:
        log.warning("%s: %d of the %d configured seeds did not finish (no projector.safetensors): %s; "
                    "evaluating %s only (rerun `intervox train` with the same config to finish them)",
                    run_dir, len(missing), len(configured), ", ".join(missing),
                    ", ".join(d.name for d in seeds))
    for d in seeds:
        model = load_trained(d)
        seed = int(d.name.split("-", 1)[1])
        cohort = f"; through its cohort backend ({model.cohort.source})" if model.cohort else ""
        note = f"post-trained speaker/content subspaces{cohort}"
        systems.append(System("projector", model.project, seed, note))
        weights = learned_layer_weights(model)
        if weights and cfg.layer_baselines:
            systems.append(System("learned_sum", weighted_system(weights, normalize), seed,
                                  "the projector's learned layer weights, without the projector"))
    info: dict = {"seeds": [d.name for d in seeds], "seeds_missing": missing, "normalize_layers": normalize}
    norm_note = "layer-normed " if normalize else ""
    if cfg.layer_baselines and val_set is not None and trials is not None:
        model_cfg = run_cfg.get("model") or {}
        n_layers = val_set.pooled.shape[1]
        if model_cfg.get("input", "layer") == "layer" and "layer" in model_cfg:
            # per-subspace layers: one baseline per distinct input layer, named by its subspaces
            per = {**{"speaker": model_cfg["layer"], "content": model_cfg["layer"]},
                   **(model_cfg.get("subspace_layers") or {})}
            info["input_layer"] = per if len(set(per.values())) > 1 else int(model_cfg["layer"])
            for layer in sorted({int(v) for v in per.values()}):
                names = "/".join(k for k, v in per.items() if int(v) == layer)
                name = "input_layer" if len(set(per.values())) == 1 else f"input_layer_{names}"
                systems.append(System(name, layer_system(layer, normalize), None,
                                      f"{norm_note}pooled layer {layer} (projector input of {names})"))
        best, eers = best_layer(val_set, trials, normalize)
        info["best_layer"] = best
        info["layer_eer_validation"] = eers
        systems.append(System("best_layer", layer_system(best, normalize), None,
                              f"{norm_note}pooled layer {best} (lowest {val_set.split} SV EER)"))
        uniform = {"pooled": np.full(n_layers, 1.0 / n_layers)}
        systems.append(System("uniform_sum", weighted_system(uniform, normalize), None,
                              f"uniform mean of all {norm_note}layers"))
    return systems, info


def evaluate(run_dir: str | Path, features: str | Path | None = None,
             config: EvalConfig | str | Path | None = None) -> dict:
    """Evaluate a run dir; write run_dir/results.json, trials_{split}.txt and plots/; return the results."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise IntervoxError(f"{run_dir}: run dir does not exist")
    cfg = config if isinstance(config, EvalConfig) else load_config(config, EvalConfig)
    run_cfg = read_run_config(run_dir)
    features = local_shard_dir(features) if features is not None else features_from_config(run_cfg, run_dir)
    sv_sets = {}
    for split in cfg.sv_splits:
        fs = _optional_split(features, split, cfg)
        if fs is not None:
            sv_sets[split] = fs
    if not sv_sets:
        raise IntervoxError(f"{features}: none of the SV splits {list(cfg.sv_splits)} has shards")
    kws_set = None
    if cfg.kws_features:
        kws_set = load_split(local_shard_dir(cfg.kws_features), None)
    elif cfg.kws_split:
        kws_set = _optional_split(features, cfg.kws_split, cfg)
    first = next(iter(sv_sets.values()))
    rule = identity_trial_rule(audio_shard_dir(features))  # the dataset's speaker table, if it has one
    systems, info = run_systems(run_dir, run_cfg, first, make_split_trials(first, cfg, rule), cfg)
    results = evaluate_systems(systems, sv_sets, kws_set, cfg, run_dir, rule)
    results.update({"run_dir": str(run_dir), "features": str(features), "layers": info,
                    "eval_config": to_plain(cfg)})
    write_results(results, run_dir / "results.json")
    return results


def _optional_split(features: Path, split: str, cfg: EvalConfig) -> FeatureSet | None:
    """Return a split's clips, or None (with a warning) when the feature dir has no shards for it."""
    from intervox.evaluation.data import split_shards

    if not split_shards(features, split):
        log.warning("%s: no %s shards; skipping what needs them", features, split)
        return None
    return load_split(features, split, max_clips=cfg.max_clips_per_split, seed=cfg.seed)


def write_results(results: dict, path: Path) -> Path:
    """Write results as strict JSON (NaN -> null) and return the path."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    path.write_text(json.dumps(clean(results), indent=1, allow_nan=False))
    return path
