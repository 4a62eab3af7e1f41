"""The reference experiment (Cox & Barker, Interspeech 2026) from a user's corpora to one table.

    python recipes/paper/run.py --config recipes/paper/config.yaml libritts=/data/LibriTTS/test-clean \
        voxceleb1=/data/VoxCeleb1 speechcommands=/data/speech_commands_v0.01 [key=value ...]

Steps, each a list of `intervox` commands (run with this Python, so `.venv-coqui/bin/python` runs
the coqui ops). A finished step writes `<work>/steps/<step>.done`, the commands it ran; a rerun
starts at the first step without a marker or whose commands the config has changed since.

    prepare   corpus prepare libritts / voxceleb1 (official trial list) / speechcommands
    clone     corpus clone: the cloned-voice grid, speakers x sentences from LibriTTS references
    shards    shards build of the grid and of Speech Commands
    features  features --upstream <upstream> of both (pooled layers; WavLM Base+ has 13)
    train     train each system (paper.yaml, default.yaml) with `seeds` seeds
    eval      eval each run: VoxCeleb1-O EER (--real), 12-class keyword probe (kws_features)
    table     <work>/table.md + table.json: the systems side by side, mean +- std over seeds

`--from STEP` reruns STEP and every later step, `--only STEP` just STEP; `--dry-run` prints the
commands of the steps it would run. The intervox commands resume on their own (finished clips,
shards, feature shards and checkpoints are kept), so a killed step is simply run again.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from intervox.config import dump_config, load_config
from intervox.errors import ConfigError, IntervoxError

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STEPS = ("prepare", "clone", "shards", "features", "train", "eval", "table")


@dataclass(frozen=True)
class SystemSpec:
    """One trained system: a training config and its overrides (besides paths and seeds)."""

    config: str
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class RecipeConfig:
    """Where the data lives, what clones the voices, and how big the experiment is."""

    libritts: str | None = None  # LibriTTS root or its test-clean folder
    voxceleb1: str | None = None  # VoxCeleb1 root: wav/idXXXXX/<video>/NNNNN.wav (+ veri_test2.txt)
    voxceleb1_trials: str | None = None  # the VoxCeleb1-O trial list, when not inside the root
    speechcommands: str | None = None  # Speech Commands v0.01 root (+ validation/testing_list.txt)
    upstream: str = "hf:microsoft/wavlm-base-plus"  # an HF cache id or a local model directory
    work: str = "work/paper"
    clone_op: dict[str, Any] = field(default_factory=lambda: {"name": "coqui_clone"})
    clone: tuple[str, ...] = ()  # more `corpus clone` overrides (source_voice=..., text_file=...)
    speakers: int = 32
    sentences: int = 256
    val_speakers: int = 7
    val_sentences: int = 32
    seeds: int = 5
    systems: dict[str, SystemSpec] = field(default_factory=lambda: {
        "paper": SystemSpec("configs/train/paper.yaml"),
        # without default.yaml's cohort terms (they read the KTuberling cohort, `make ktuberling`, which
        # the recipe does not build; give data.cohort=<path> and drop the override to add it) and its
        # frame loss (the recipe's grid has no timing-preserving copies, its features no frames)
        "extensions": SystemSpec("configs/train/default.yaml",
                                 ("loss.cohort_weight=0", "loss.cohort_speaker_weight=0",
                                  "loss.frame_content_weight=0"))})
    train: tuple[str, ...] = ()  # overrides for every system's training (e.g. optim.steps=...)
    eval: tuple[str, ...] = ()  # overrides for `intervox eval`
    workers: int = 1
    scheduler: str | None = None  # shards build: "sync" (in-process) or a Dask scheduler's address
    device: str = "auto"


class Recipe:
    """The commands of each step, from a resolved config."""

    def __init__(self, cfg: RecipeConfig) -> None:
        self.cfg, self.work = cfg, Path(cfg.work)
        self.data = self.work / "data"

    def require(self, *keys: str) -> None:
        missing = [k for k in keys if not getattr(self.cfg, k)]
        if missing:
            raise ConfigError(f"recipe: set {', '.join(f'{k}=PATH' for k in missing)} "
                              "(each corpus as released)")

    def prepare(self) -> list[list[str]]:
        self.require("libritts", "voxceleb1", "speechcommands")
        trials = [f"trials={self.cfg.voxceleb1_trials}"] if self.cfg.voxceleb1_trials else []
        return [["corpus", "prepare", "libritts", "--root", self.cfg.libritts, "--out",
                 str(self.data / "libritts")],
                ["corpus", "prepare", "voxceleb1", "--root", self.cfg.voxceleb1, "--out",
                 str(self.data / "voxceleb1"), *trials],
                ["corpus", "prepare", "speechcommands", "--root", self.cfg.speechcommands, "--out",
                 str(self.data / "speechcommands")]]

    def clone(self) -> list[list[str]]:
        c = self.cfg
        return [["corpus", "clone", "--refs", str(self.data / "libritts" / "manifest.jsonl"), "--out",
                 str(self.work / "grid"), f"op={json.dumps(c.clone_op)}", f"speakers={c.speakers}",
                 f"sentences={c.sentences}", f"val_speakers={c.val_speakers}",
                 f"val_sentences={c.val_sentences}", *c.clone]]

    def shards(self) -> list[list[str]]:
        c = self.cfg
        where = ["--scheduler", c.scheduler] if c.scheduler else ["--workers", str(c.workers)]
        return [["shards", "build", "--config", str(HERE / f"shards_{name}.yaml"), f"source.path={manifest}",
                 "--out", str(self.work / "shards" / name), "--no-progress", *where]
                for name, manifest in (("grid", self.work / "grid" / "manifest.jsonl"),
                                       ("speechcommands", self.data / "speechcommands" / "manifest.jsonl"))]

    def features(self) -> list[list[str]]:
        return [["features", str(self.work / "shards" / name), "--upstream", self.cfg.upstream, "--out",
                 str(self.work / "features" / name), "--workers", str(self.cfg.workers), "--device",
                 self.cfg.device] for name in ("grid", "speechcommands")]

    def train(self) -> list[list[str]]:
        seeds = json.dumps(list(range(self.cfg.seeds)))
        return [["train", "--config", str(resolve(s.config)), f"run_dir={self.work / 'runs' / name}",
                 f"data.features=[{self.work / 'features' / 'grid'}]", "data.split=train", f"seeds={seeds}",
                 *self.cfg.train, *s.overrides] for name, s in self.cfg.systems.items()]

    def eval(self) -> list[list[str]]:
        return [["eval", str(self.work / "runs" / name), "--real", str(self.data / "voxceleb1"),
                 "sv_splits=[validation]", f"kws_features={self.work / 'features' / 'speechcommands'}",
                 *self.cfg.eval] for name in self.cfg.systems]


def resolve(path: str) -> Path:
    """Return a config path as given when it exists from here, else relative to the repository."""
    p = Path(path)
    return p if p.is_absolute() or p.exists() else REPO / p


def run_intervox(args: list[str]) -> None:
    """Run one intervox command with this Python; IntervoxError names it when it fails."""
    print("+ intervox " + shlex.join(args), flush=True)
    code = subprocess.run([sys.executable, "-m", "intervox", *args]).returncode
    if code:
        raise IntervoxError(f"recipe: `intervox {shlex.join(args)}` exited with code {code}")


def commands_of(recipe: Recipe, step: str) -> list[list[str]]:
    """Return the intervox commands of one step (none for the table)."""
    return [] if step == "table" else getattr(recipe, step)()


def marker_text(commands: list[list[str]]) -> str:
    return "".join("intervox " + shlex.join(c) + "\n" for c in commands)


def run_step(recipe: Recipe, step: str, dry_run: bool) -> None:
    """Run one step's commands (or the table), then write its marker: the commands it ran."""
    commands = commands_of(recipe, step)
    if dry_run:
        print(marker_text(commands), end="")
        return
    for c in commands:
        run_intervox(c)
    if step == "table":
        print(write_table(recipe), flush=True)
    marker = recipe.work / "steps" / f"{step}.done"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(marker_text(commands), encoding="utf-8")


def steps_to_run(recipe: Recipe, start: str | None, only: str | None) -> list[str]:
    """Return the steps to run: `only`, else from `start` on, else from the first step not done.

    A step is done when its marker holds exactly the commands the config gives now: after a
    config change, the first step whose commands changed and every later step run again.
    """
    if only:
        return [only]
    if start:
        return list(STEPS[STEPS.index(start):])
    for i, step in enumerate(STEPS):
        marker = recipe.work / "steps" / f"{step}.done"
        now = marker_text(commands_of(recipe, step))
        if not marker.is_file() or marker.read_text(encoding="utf-8") != now:
            return list(STEPS[i:])
    return []


# --- the table ------------------------------------------------------------------------------------


def mean_std(values: list[float | None]) -> dict | None:
    """Return {mean, std, n} over the values that exist (std 0 for one value), None when none do."""
    v = [float(x) for x in values if x is not None]
    return {"mean": float(np.mean(v)), "std": float(np.std(v)), "n": len(v)} if v else None


def vox_eer(section: dict, system: str, embedding: str) -> float | None:
    """Return the VoxCeleb1-O EER of one system's embedding on the report split (None when absent)."""
    emb = section["systems"].get(system, {}).get("embeddings", {}).get(embedding, {})
    return emb.get(section["report_split"], {}).get("speaker", {}).get("all", {}).get("eer")


def kws_acc(system: dict, seed: str, embedding: str) -> float | None:
    """Return the 12-class keyword probe accuracy of one system's embedding (None when absent)."""
    return system.get("seeds", {}).get(seed, {}).get("kws", {}).get(embedding, {}).get("accuracy")


def system_rows(name: str, results: dict) -> dict:
    """Return a trained system's figures over its seeds: VoxCeleb1-O EER and keyword accuracy per subspace."""
    vox = results["real"]["voxceleb1"]
    seeds = sorted(results["systems"]["projector"]["seeds"])
    proj = results["systems"]["projector"]
    return {"system": name, "seeds": len(seeds),
            "vox_eer_speaker": mean_std([vox_eer(vox, f"subspaces seed-{s}", "speaker") for s in seeds]),
            "vox_eer_content": mean_std([vox_eer(vox, f"subspaces seed-{s}", "content") for s in seeds]),
            "kws_content": mean_std([kws_acc(proj, s, "content") for s in seeds]),
            "kws_speaker": mean_std([kws_acc(proj, s, "speaker") for s in seeds])}


def baseline_rows(results: dict) -> list[dict]:
    """Return the raw-layer and speaker-encoder rows of one run (the same features for every system)."""
    vox = results["real"]["voxceleb1"]
    systems = results["systems"]
    layer = results["layers"].get("input_layer")
    best = results["layers"].get("best_layer")
    rows = []
    for label, k, kws_system in ((f"raw layer {layer} (projector input)", layer, "input_layer"),
                                 (f"raw layer {best} (lowest validation EER)", best, "best_layer")):
        if isinstance(k, int):
            rows.append({"system": label, "seeds": 0,
                         "vox_eer_speaker": mean_std([vox_eer(vox, f"layer {k}", "pooled")]),
                         "kws_content": mean_std([kws_acc(systems.get(kws_system, {}), "-", "pooled")])})
    for judge in ("resemblyzer", "campplus"):
        eer = vox_eer(vox, judge, "pooled")
        if eer is not None:
            rows.append({"system": f"{judge} (speaker encoder, ceiling)", "seeds": 0,
                         "vox_eer_speaker": mean_std([eer])})
    return rows


def fmt(cell: dict | None) -> str:
    if cell is None:
        return "-"
    return f"{cell['mean']:.3f}" + (f" ± {cell['std']:.3f}" if cell["n"] > 1 else "")


def write_table(recipe: Recipe) -> str:
    """Write <work>/table.md and table.json from every run's results.json; return the markdown."""
    rows, baselines = [], []
    for name, spec in recipe.cfg.systems.items():
        path = recipe.work / "runs" / name / "results.json"
        if not path.is_file():
            raise IntervoxError(f"recipe: {path} is missing (run the eval step)")
        results = json.loads(path.read_text(encoding="utf-8"))
        rows.append({**system_rows(f"{name} ({spec.config})", results)})
        baselines = baselines or baseline_rows(results)
    cols = (("vox_eer_speaker", "VoxCeleb1-O EER, speaker subspace"),
            ("vox_eer_content", "VoxCeleb1-O EER, content subspace"),
            ("kws_content", "keywords 12-class acc, content subspace"),
            ("kws_speaker", "keywords 12-class acc, speaker subspace"))
    lines = ["| system | seeds | " + " | ".join(c[1] for c in cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for r in rows + baselines:
        cells = [r["system"], str(r["seeds"] or "-"), *(fmt(r.get(k)) for k, _ in cols)]
        lines.append("| " + " | ".join(cells) + " |")
    note = ("Mean ± std over seeds. EER on the official VoxCeleb1-O trials; keyword accuracy of a linear "
            "probe trained on Speech Commands v0.01 train, tested on test (12 classes). Raw layers: "
            "mean-pooled upstream layer, no projector.")
    text = "\n".join(lines) + "\n\n" + note + "\n"
    (recipe.work / "table.md").write_text(text, encoding="utf-8")
    (recipe.work / "table.json").write_text(json.dumps(rows + baselines, indent=1), encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(HERE / "config.yaml"), help="recipe config YAML")
    parser.add_argument("--from", dest="start", choices=STEPS, help="rerun this step and every later one")
    parser.add_argument("--only", choices=STEPS, help="run just this step")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the config")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, RecipeConfig, args.overrides)
        recipe = Recipe(cfg)
        if not args.dry_run:
            recipe.work.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, recipe.work / "recipe.yaml")
        steps = steps_to_run(recipe, args.start, args.only)
        if not steps:
            print(f"every step is done (markers in {recipe.work / 'steps'}); --from STEP reruns")
        for step in steps:
            print(f"== {step}", flush=True)
            run_step(recipe, step, args.dry_run)
    except IntervoxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
