"""The shipped configs run as documented: their default paths are the ones `make` writes."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from intervox.config import load_config
from intervox.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
WAVLM = "hf:microsoft/wavlm-base-plus"


def make_var(name: str, **make_args: str) -> str:
    """Return a Makefile variable's value for the given `make` arguments (e.g. upstream=...)."""
    args = [f"{k}={v}" for k, v in make_args.items()]
    out = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-%: ; @echo $($*)",
                          f"print-{name}", *args], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def train_config(name: str) -> TrainConfig:
    return load_config(ROOT / "configs/train" / name, TrainConfig)


def test_default_configs_read_what_make_features_writes():
    whisper = make_var("FEATURES_DIR")
    wavlm = make_var("FEATURES_DIR", upstream=WAVLM)
    assert (whisper, wavlm) == ("shards/en-features-whisper-base", "shards/en-features-wavlm-base-plus")
    default = train_config("default.yaml")
    assert default.data.features == (whisper,) and default.run_dir == make_var("RUN_DIR")
    assert train_config("weighted_sum.yaml").data.features == (whisper,)
    assert train_config("fusion.yaml").data.features == (whisper, wavlm)
    assert train_config("paper.yaml").data.features == (wavlm,)


def test_paper_config_says_how_to_make_its_features():
    shards, features = make_var("SHARDS_DIR"), make_var("FEATURES_DIR", upstream=WAVLM)
    commands = [
        f"intervox shards build --config configs/shards/default.yaml --out {shards} --workers 2",
        f"intervox features {shards} --upstream {WAVLM} --out {features}",
        "intervox train --config configs/train/paper.yaml",
    ]
    header = "\n".join(line.lstrip("# ").strip() for line in
                       (ROOT / "configs/train/paper.yaml").read_text().splitlines() if line.startswith("#"))
    readme = (ROOT / "README.md").read_text()
    for command in commands:
        assert command in header, command
        assert command in readme, command


@pytest.mark.parametrize("target", ["features", "train"])
def test_make_runs_the_stages_on_those_paths(target):
    dry = subprocess.run(["make", "-n", "-s", target, "upstream=" + WAVLM], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    words = [w for line in dry.splitlines() for w in shlex.split(line)]
    if target == "features":
        assert "shards/en-features-wavlm-base-plus" in words and "shards/en" in words
    else:
        assert "data.features=[shards/en-features-wavlm-base-plus]" in words
        assert "run_dir=runs/en-wavlm-base-plus" in words


def test_frame_content_recipe_reads_what_its_documented_commands_write():
    from intervox.pipeline.run import load_shards_config

    header = [line.lstrip("# ").strip() for line in
              (ROOT / "configs/train/frame_content.yaml").read_text().splitlines() if line.startswith("#")]
    build = "intervox shards build --config configs/shards/frames.yaml --out shards/en-frames --workers 2"
    features = ("intervox features shards/en-frames --upstream whisper-base --out "
                "shards/en-frames-features-whisper-base --frames-layers 5,6")
    assert build in header and features in header
    assert "intervox train --config configs/train/frame_content.yaml" in header
    cfg = train_config("frame_content.yaml")
    # the frame loss reads the frames of every row the content view sums: those the command stores
    assert cfg.data.features == ("shards/en-frames-features-whisper-base",)
    assert tuple(cfg.model.subspace_layer_ranges["content"]) == (5, 6) and cfg.loss.frame_content_weight > 0
    # every train anchor gets a timing-preserving speaker copy: the frame loss's pairs
    plan = load_shards_config(ROOT / "configs/shards/frames.yaml")
    ops = {spec.op["name"]: spec.splits for spec in plan.interventions}
    assert "train" in ops["praat_gender"]
