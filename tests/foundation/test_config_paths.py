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


def test_default_frame_loss_reads_what_make_writes():
    from intervox.pipeline.run import load_shards_config

    cfg = train_config("default.yaml")
    lo, hi = cfg.model.subspace_layer_ranges["content"]
    # the frame loss reads the frames of every row the content view sums: those make features stores
    assert cfg.loss.frame_content_weight > 0
    assert make_var("FRAMES_ARGS") == f"--frames-layers {','.join(map(str, range(lo, hi + 1)))}"
    assert make_var("TRAIN_ARGS") == ""
    # every train anchor gets a timing-preserving speaker copy: the frame loss's pairs
    plan = load_shards_config(ROOT / "configs/shards/default.yaml")
    ops = {spec.op["name"]: spec.splits for spec in plan.interventions}
    assert "train" in ops["praat_gender"]
    # paper.yaml on these shards trains on the reference's plain grid: every train op's copies left out
    assert {name for name, splits in ops.items() if "train" in splits} <= set(
        train_config("paper.yaml").data.exclude_ops)


def test_paper_size_has_no_train_copies_and_trains_without_the_frame_loss():
    from intervox.pipeline.run import load_shards_config

    plan = load_shards_config(ROOT / "configs/shards/paper.yaml")
    assert not [spec for spec in plan.interventions if "train" in spec.splits]
    assert make_var("FRAMES_ARGS", size="paper") == ""
    assert make_var("TRAIN_ARGS", size="paper") == "loss.frame_content_weight=0"


@pytest.mark.parametrize("size", ["default", "paper"])
def test_make_finetune_uses_the_frame_loss_only_on_shards_with_copies(size):
    from intervox.config import load_config
    from intervox.training.finetune_config import FinetuneConfig

    dry = subprocess.run(["make", "-n", "-s", "finetune", f"size={size}"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    line = next(ln for ln in dry.splitlines() if " finetune --config " in ln)
    words = shlex.split(line)
    overrides = [w for w in words[words.index("--config") + 2:] if "=" in w]
    cfg = load_config(ROOT / words[words.index("--config") + 1], FinetuneConfig, overrides)
    # default shards give every train anchor a praat_gender copy; the paper's grid has none in train
    assert (cfg.loss.frame_content_weight > 0) == (size == "default")
    # the content head always learns from something: the frame loss, else the content SupCon
    assert cfg.loss.frame_content_weight > 0 or cfg.loss.content_weight > 0
    assert cfg.data.cohort == "shards/ktuberling" and cfg.loss.cohort_speaker_weight > 0
