"""The alpha sweep: every merged model's raw layers on a real-style panel, alpha 0 = the base upstream."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from intervox.evaluation.alpha_sweep import (
    choose_alpha,
    format_sweep,
    layer_figures,
    paired_cis,
    sweep,
    versus_base,
)
from intervox.evaluation.real import RealConfig, evaluate_panel
from intervox.training.finetune import finetune
from intervox.training.merge import merge_run

SR = 16000


def tiny_hubert(directory: Path) -> Path:
    """Save a randomly initialised 2-layer, 32-d HuBERT with its feature extractor."""
    import transformers as tf

    torch.manual_seed(0)  # test set-up only: deterministic random weights
    config = tf.HubertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                             conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10)
    tf.HubertModel(config).save_pretrained(directory)
    tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(directory)
    return directory


def clip(speaker: int, content: int) -> np.ndarray:
    t = np.arange(int(0.4 * SR)) / SR
    tone = sum(np.sin(2 * np.pi * (90.0 + 25.0 * speaker) * h * t) / h for h in range(1, 5))
    noise = np.random.default_rng([speaker, content]).normal(0, 0.02, len(t))
    return (0.2 * tone * (0.5 + 0.5 * np.sin(2 * np.pi * (1.5 + content) * t)) + noise).astype(np.float32)


def write_panel(root: Path) -> Path:
    """A folder panel: 4 dev and 4 test speakers, each saying the same 4 words."""
    (root / "audio").mkdir(parents=True)
    rows = ["path\tspeaker\ttext\tlanguage\tsplit"]
    for spk in range(8):
        for c in range(4):
            rel = f"audio/s{spk}_w{c}.wav"
            sf.write(root / rel, clip(spk, c), SR)
            rows.append(f"{rel}\tspk{spk}\tword{c}\ten\t{'dev' if spk < 4 else 'test'}")
    (root / "panel.tsv").write_text("\n".join(rows) + "\n")
    return root


def write_shards(directory: Path) -> Path:
    from intervox.audio import encode_flac
    from intervox.shards.write import write_shard

    samples = []
    for spk in range(4):
        for c in range(4):
            key = f"train-000000-{len(samples):06d}"
            samples.append({"__key__": key, "flac": encode_flac(clip(spk + 10, c), SR),
                            "json": {"key": key, "speaker": f"v{spk}", "content": f"c{c}", "split": "train"}})
    write_shard(directory / "train-000000.tar", samples, plan_hash="test")
    return directory


@pytest.mark.slow
def test_sweep_scores_each_alpha_and_alpha_0_is_the_base_model(tmp_path: Path) -> None:
    from intervox.config import load_config
    from intervox.training.finetune_config import FinetuneConfig

    model, panel, run = tiny_hubert(tmp_path / "hubert"), write_panel(tmp_path / "panel"), tmp_path / "run"
    cfg = load_config(None, FinetuneConfig, [
        f"upstream=hf:{model}", f"data.shards={write_shards(tmp_path / 'shards')}", f"run_dir={run}",
        "data.speakers_per_batch=4", "data.contents_per_batch=4", "model.hidden_dims=[16]",
        "model.speaker_dim=8", "model.content_dim=8", "model.layer=1", "model.subspace_layers={speaker: 1}",
        "optim.steps=3", "optim.upstream_lr=1e-2", "device=cpu"])
    finetune(cfg)
    merge_run(run, [0.0, 1.0])
    real_cfg = RealConfig(ceilings=(), bootstrap=5)
    result = sweep(run, [0.0, 1.0], [panel], real_cfg)
    assert json.loads((run / "alpha_sweep.json").read_text()) == result
    rows = {r["alpha"]: r["panels"]["panel"] for r in result["sweep"]}
    base = layer_figures(evaluate_panel(panel, tmp_path / "base", upstream=f"hf:{model}", cfg=real_cfg))
    assert rows[0.0]["layers"] == {str(k): v for k, v in base.items()}  # alpha 0 scores as the base upstream
    assert set(rows[1.0]["layers"]) == {"0", "1", "2"} and rows[1.0]["layers"] != rows[0.0]["layers"]
    assert rows[0.0]["best"]["speaker_layer"] in (0, 1, 2) and rows[0.0]["report_split"] == "test"
    unchanged = {"speaker_eer_ratio": 1.0, "content_top1_points": 0.0, "keyword_points": 0.0}
    versus = result["versus_alpha_0"]["panel"]
    assert {k: versus["0"]["best"][k] for k in unchanged} == unchanged
    assert versus["0"]["layers"] == {k: unchanged for k in "012"}
    # paired CIs: alpha 0 against itself is the same model on every resample
    assert versus["0"]["best"]["speaker_eer_ratio_ci"] in ([1.0, 1.0], None)  # None: an EER of 0
    assert versus["0"]["best"]["content_top1_points_ci"] == versus["0"]["best"]["keyword_points_ci"] == [0, 0]
    lo, hi = versus["1"]["best"]["content_top1_points_ci"]
    assert lo <= hi
    eer1, eer0 = rows[1.0]["layers"]["2"]["test"]["eer"], rows[0.0]["layers"]["2"]["test"]["eer"]
    assert versus["1"]["layers"]["2"]["speaker_eer_ratio"] == pytest.approx(eer1 / eer0, abs=1e-4)
    # 3 tables: a title, a header and 2 rows; a title, a header and 2 x 3 rows; the chosen alpha's row
    table = format_sweep(result)
    assert "alpha sweep on panel" in table and len(table.splitlines()) == 4 + 8 + 3
    assert result["chosen_alpha"]["panel"]["alpha"] in (0.0, 1.0) and "alpha chosen on panel's dev" in table
    page = (run / "report.html").read_text()  # the plot against alpha, inlined, and the table
    assert "data:image/png;base64," in page and "alpha sweep on panel" in page
    assert (run / "plots" / "alpha_sweep.png").stat().st_size > 1000


def _row(alpha: float, dev_eer: float, dev_top1: float, test_eer: float, test_top1: float) -> dict:
    """A sweep row whose dev-chosen layers are speaker 1 and content 2 (layer 0: frozen, never chosen)."""
    layers = {"0": {s: {"eer": 0.3, "top1": 0.0, "keyword": 0.1} for s in ("dev", "test")},
              "1": {"dev": {"eer": dev_eer, "top1": 0.0, "keyword": None},
                    "test": {"eer": test_eer, "top1": 0.0, "keyword": 0.1}},
              "2": {"dev": {"eer": 0.4, "top1": dev_top1, "keyword": None},
                    "test": {"eer": 0.4, "top1": test_top1, "keyword": 0.2 + alpha / 10}}}
    best = {"speaker_layer": 1, "speaker_eer": test_eer, "content_layer": 2, "content_top1": test_top1,
            "keyword_accuracy": 0.2 + alpha / 10}
    return {"alpha": alpha, "panels": {"p": {"report_split": "test", "layers": layers, "best": best,
                                             "best_layer": {"speaker": 1, "content": 2, "chosen_on": "dev"}}}}


def test_the_chosen_alpha_has_the_best_dev_speakers_within_2_points_of_dev_content() -> None:
    rows = [_row(0.0, 0.20, 0.30, 0.30, 0.30), _row(0.25, 0.19, 0.29, 0.28, 0.31),
            _row(0.5, 0.17, 0.285, 0.25, 0.20),  # content 1.5 points down on dev: allowed (test: -10)
            _row(1.0, 0.10, 0.27, 0.20, 0.30)]  # the best speakers, but 3 points of dev content lost
    chosen = choose_alpha(rows, versus_base(rows), "p")
    assert chosen["alpha"] == 0.5  # chosen on dev alone: its test content loss does not move the choice
    assert chosen["choosing"] == {"speaker_eer_ratio": 0.85, "content_top1_points": -1.5}
    assert chosen["report"] == {"speaker_eer_ratio": pytest.approx(0.25 / 0.30, abs=1e-4),
                                "content_top1_points": -10.0, "keyword_points": 5.0}
    assert choose_alpha([_row(0.0, 0.2, 0.3, 0.3, 0.3), _row(1.0, 0.2, 0.3, 0.3, 0.3)],
                        versus_base(rows), "p")["alpha"] == 0.0  # a tie keeps the less changed model
    assert choose_alpha(rows[1:], {}, "p") is None  # no alpha 0 to compare with


def testpaired_cis_of_the_best_layers_come_from_the_same_resamples() -> None:
    rng = np.random.default_rng(0)
    eer0, top0, kw0 = rng.uniform(0.2, 0.3, 50), rng.uniform(0.2, 0.4, 50), rng.uniform(0.1, 0.3, 50)
    base = {1: {"eer": eer0, "top1": None, "keyword": None}, 2: {"eer": eer0, "top1": top0, "keyword": kw0}}
    # the merged model: speaker layer 1 at 0.8x of the base's layer 1 on every resample, content +5 points
    now = {1: {"eer": 0.8 * eer0, "top1": None, "keyword": None},
           3: {"eer": eer0, "top1": top0 + 0.05, "keyword": kw0 - 0.01}}
    cis = paired_cis(now, base, {"speaker_layer": 1, "content_layer": 3},
                      {"speaker_layer": 1, "content_layer": 2})
    assert cis == {"speaker_eer_ratio_ci": [0.8, 0.8], "content_top1_points_ci": [5.0, 5.0],
                   "keyword_points_ci": [-1.0, -1.0]}  # each resample's difference is the same here
    # alone, each model's figures spread widely over the resamples: pairing is what narrows the CI
    assert np.percentile(top0, 97.5) - np.percentile(top0, 2.5) > 0.1
    assert paired_cis(now, base, {"speaker_layer": None, "content_layer": 3},
                       {"speaker_layer": 1, "content_layer": 2})["speaker_eer_ratio_ci"] is None
