"""Out-of-range config values are ConfigErrors naming the key and where it was set (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from intervox.config import load_config
from intervox.errors import ConfigError
from intervox.evaluation.config import EvalConfig
from intervox.pipeline.config import ShardsConfig
from intervox.training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "configs/train/default.yaml"
SHARDS = ROOT / "configs/shards/default.yaml"

CASES = [
    (TrainConfig, "run_dir=", "run_dir", "empty"),
    (TrainConfig, "optim.max_lr=-1", "optim.max_lr", "> 0"),
    (TrainConfig, "optim.pct_start=2", "optim.pct_start", "< 1"),
    (TrainConfig, "optim.pct_start=0", "optim.pct_start", "> 0"),
    (TrainConfig, "model.hidden_dims=[768, -1]", "model.hidden_dims[1]", ">= 1"),
    (TrainConfig, "model.layer=-1", "model.layer", ">= 0"),
    (TrainConfig, "max_steps=-1", "max_steps", ">= 1"),
    (TrainConfig, "loss.orthogonality_weight=-1", "loss.orthogonality_weight", ">= 0"),
    (TrainConfig, "loss.temperature=0", "loss.temperature", "> 0"),
    (TrainConfig, "data.max_bad_shard_fraction=1.5", "data.max_bad_shard_fraction", "<= 1"),
    (TrainConfig, "data.speakers_per_batch=0", "data.speakers_per_batch", ">= 1"),
    (TrainConfig, "seeds=[0, -3]", "seeds[1]", ">= 0"),
    (ShardsConfig, "block.contents=0", "block.contents", ">= 1"),
    (ShardsConfig, "shard_size=0", "shard_size", ">= 1"),
    (ShardsConfig, "max_seconds=0.1", "max_seconds", "> 0.3"),
    (ShardsConfig, "sample_rate=8", "sample_rate", ">= 1000"),
    (ShardsConfig, "source.train_speakers=0", "source.train_speakers", ">= 1"),
    (ShardsConfig, "source.seed=-1", "source.seed", ">= 0"),
    (ShardsConfig, "interventions=[{op: {name: noise}, per_anchor: -1}]", "interventions[0].per_anchor",
     ">= 0"),
    (ShardsConfig, "max_quarantine_fraction=1.5", "max_quarantine_fraction", "<= 1"),
    (ShardsConfig, "source={kind: manifest}", "source.path", "required"),
    (EvalConfig, "probe_test_fraction=1", "probe_test_fraction", "< 1"),
    (EvalConfig, "probe_lr=0", "probe_lr", "> 0"),
    (EvalConfig, "max_clips_per_split=0", "max_clips_per_split", ">= 1"),
]
FILES = {TrainConfig: TRAIN, ShardsConfig: SHARDS, EvalConfig: ROOT / "configs/eval/default.yaml"}


@pytest.mark.parametrize(("cls", "override", "key", "bound"), CASES, ids=[c[1] for c in CASES])
def test_out_of_range_override_names_the_key_and_the_override(cls, override, key, bound):
    with pytest.raises(ConfigError) as err:
        load_config(FILES[cls], cls, [override])
    message = str(err.value)
    assert message.startswith(f"override {override}: {key}: "), message
    assert bound in message and "\n" not in message


def test_out_of_range_value_in_a_file_names_the_file(tmp_path):
    bad = tmp_path / "train.yaml"
    bad.write_text(f"base: {TRAIN}\noptim:\n  max_lr: -0.001\n")
    with pytest.raises(ConfigError, match=r"^\S*train\.yaml: optim\.max_lr: must be > 0, got -0\.001$"):
        load_config(bad, TrainConfig)


def test_shipped_configs_are_in_range():
    from intervox.training.finetune_config import FinetuneConfig

    for folder, cls in (("train", TrainConfig), ("shards", ShardsConfig), ("eval", EvalConfig),
                        ("finetune", FinetuneConfig)):
        for path in sorted((ROOT / "configs" / folder).glob("*.yaml")):
            load_config(path, cls)


@pytest.mark.parametrize(("argv", "override"), [
    (["train", "--config", str(TRAIN)], "run_dir="),
    (["train", "--config", str(TRAIN)], "optim.max_lr=-1"),
    (["shards", "build", "--config", str(SHARDS), "--out", "never-written"], "block.speakers=0"),
    (["eval", "no-such-run"], "probe_lr=-1"),
], ids=["train-run_dir", "train-max_lr", "shards-block", "eval-probe_lr"])
def test_cli_exits_2_with_one_line(argv, override, capsys, tmp_path, monkeypatch):
    from intervox.cli import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main([*argv, override])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and err.startswith(f"error: override {override}: "), err
    assert len(err.splitlines()) == 1 and not list(tmp_path.iterdir())  # nothing written
