"""End to end: a run dir with real exported projectors -> results.json, summary, CLI, report in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from evalfixtures import HIDDEN, LAYERS, World, default_splits, write_feature_dir

from intervox.audio import encode_flac
from intervox.config import dump_config
from intervox.errors import IntervoxError
from intervox.evaluation.commands import eval_cmd, report_cmd
from intervox.evaluation.config import EvalConfig
from intervox.evaluation.report import write_report
from intervox.evaluation.run import evaluate, learned_layer_weights, weighted_system
from intervox.evaluation.summary import format_summary
from intervox.evaluation.trials import parse_trials
from intervox.shards.write import write_shard
from intervox.training.checkpoint import export_projector
from intervox.training.config import DataConfig, ModelConfig, TrainConfig
from intervox.training.model import InputSpec, SubspaceProjector

# evaluate() on two seeds + baselines with plots takes ~30 s on a loaded 2-core machine.
pytestmark = pytest.mark.slow

FAST = EvalConfig(sv_trials_per_class=300, probe_epochs=5, embed_points=200)


def write_projector(seed_dir: Path, cfg: TrainConfig, seed: int) -> SubspaceProjector:
    spec = InputSpec(name="fake", layers=LAYERS, hidden=HIDDEN)
    with torch.random.fork_rng():  # test set-up only: weights from a fixed seed, global state restored
        torch.manual_seed(seed)
        model = SubspaceProjector([spec], cfg.model)
    seed_dir.mkdir(parents=True)
    dump_config(cfg, seed_dir / "config.yaml")
    export_projector(seed_dir / "projector.safetensors", model, {"inputs": [spec.to_dict()]})
    return model


def write_audio_shards(audio_dir: Path, clips: list[dict], speech) -> None:
    """Audio shards for the first anchors of the validation split and their intervened clips."""
    keep = clips[:9]  # three anchors, each with a speaker op and a content op clip
    samples = []
    for i, c in enumerate(keep):
        audio = speech.audio * (0.5 + 0.05 * i)
        if c["op"] and c["op"]["target"] == "content":
            audio = audio[::-1].copy()
        samples.append({"__key__": c["key"], "json": c, "flac": encode_flac(audio, speech.sr)})
    write_shard(audio_dir / "validation-000000.tar", samples, plan_hash="test")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, speech) -> Path:
    root = tmp_path_factory.mktemp("run")
    splits = default_splits()
    features = write_feature_dir(root / "features", World(0), splits)
    write_audio_shards(root / "audio", splits["validation"], speech)
    (features / "index.json").write_text(json.dumps({"features": {"source_dir": str(root / "audio")}}))
    cfg = TrainConfig(run_dir=str(root / "runs" / "r"), seeds=(0, 1),
                      data=DataConfig(features=(str(features),)),
                      model=ModelConfig(layer=1, hidden_dims=(16,), speaker_dim=4, content_dim=4))
    run = Path(cfg.run_dir)
    run.mkdir(parents=True)
    dump_config(cfg, run / "config.yaml")
    for seed in cfg.seeds:
        write_projector(run / f"seed-{seed}", cfg, seed)
    return run


@pytest.fixture(scope="module")
def results(run_dir) -> dict:
    return evaluate(run_dir, config=FAST)


def test_evaluate_writes_results_trials_and_plots(run_dir, results):
    on_disk = json.loads((run_dir / "results.json").read_text())  # strict JSON: NaN written as null
    assert set(on_disk["systems"]) == {"projector", "input_layer", "best_layer", "uniform_sum"}
    proj = on_disk["systems"]["projector"]
    assert set(proj["seeds"]) == {"0", "1"}
    assert set(proj["mean"]["sv"]["validation"]) == {"speaker", "content"}
    assert set(proj["mean"]["sv"]) == {"validation", "test_ood"}
    assert "accuracy" in proj["mean"]["kws"]["content"]
    assert "cka_speaker_content" in proj["mean"]["disentangle"]
    # Mean over the two seeds is the mean of the per-seed numbers.
    eers = [proj["seeds"][s]["sv"]["validation"]["speaker"]["eer"] for s in ("0", "1")]
    assert proj["mean"]["sv"]["validation"]["speaker"]["eer"] == pytest.approx(np.mean(eers))
    assert proj["std"]["sv"]["validation"]["speaker"]["eer"] == pytest.approx(np.std(eers))
    # Layer 1 carries the speaker factor by construction (see evalfixtures.World.pooled).
    assert on_disk["layers"]["input_layer"] == 1 and on_disk["layers"]["best_layer"] == 1
    best = on_disk["systems"]["best_layer"]["mean"]["sv"]["validation"]["pooled"]["eer"]
    assert best < 0.1 < on_disk["systems"]["uniform_sum"]["mean"]["sv"]["validation"]["pooled"]["eer"] + 0.2
    trials = parse_trials(run_dir / "trials_validation.txt")
    assert sum(t.label for t in trials) == len(trials) // 2 == FAST.sv_trials_per_class
    for rel in on_disk["plots"].values():
        assert (run_dir / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    wanted = {"det_validation", "det_test_ood", "pca_speaker_by_speaker", "invariance_projector"}
    assert wanted <= set(on_disk["plots"])
    # Same config, same numbers.
    again = evaluate(run_dir, config=FAST)
    for name in ("input_layer", "projector"):  # (compared as JSON text: NaN == NaN there)
        assert json.dumps(again["systems"][name], sort_keys=True) == json.dumps(results["systems"][name],
                                                                                sort_keys=True)


def test_summary_table_lists_systems_and_measures(results):
    text = format_summary(results)
    for word in ("projector", "input_layer", "best_layer", "uniform_sum", "EER validation", "EER test_ood",
                 "KWS acc", "speaker-ID acc on content subspace", "linear CKA", "± "):
        assert word in text, word


def test_cli_eval_and_report(run_dir, tmp_path):
    run_dir = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    runner = CliRunner()
    res = runner.invoke(eval_cmd, [str(run_dir), "sv_trials_per_class=200", "probe_epochs=2",
                                   "sv_splits=[validation]", "kws_split=null"])
    assert res.exit_code == 0, res.output
    assert "projector" in res.output and "EER validation" in res.output
    written = json.loads((run_dir / "results.json").read_text())
    assert "test_ood" not in written["systems"]["projector"]["mean"]["sv"]
    res = runner.invoke(eval_cmd, [str(tmp_path / "nope")])
    assert isinstance(res.exception, IntervoxError) and "does not exist" in str(res.exception)
    res = runner.invoke(report_cmd, [str(run_dir), "--pairs", "2"])
    assert res.exit_code == 0, res.output
    assert (run_dir / "report.html").is_file()


def test_learned_layer_weights_become_a_baseline():
    spec = InputSpec(name="fake", layers=LAYERS, hidden=HIDDEN)
    model = SubspaceProjector([spec], ModelConfig(input="weighted_sum", hidden_dims=(8,), speaker_dim=2,
                                                  content_dim=2))
    weights = learned_layer_weights(type("Trained", (), {"model": model})())
    assert set(weights) == {"speaker", "content"}
    assert np.allclose(weights["speaker"], 1 / LAYERS)  # softmax of zero logits
    pooled = np.random.default_rng(0).standard_normal((5, LAYERS, HIDDEN)).astype(np.float32)
    out = weighted_system(weights)(pooled)
    assert np.allclose(out["content"], pooled.mean(axis=1), atol=1e-6)
    assert learned_layer_weights(object()) is None


def chromium_dom(html_path: Path, tmp_path: Path) -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: the report test needs it "
                    "(make setup installs Debian chromium)")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--dump-dom", html_path.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_report_renders_in_chromium_with_tables_plots_and_audio(run_dir, results, tmp_path):
    path = write_report(run_dir, n_pairs=3)
    page = path.read_text()
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # self-contained: no external URLs
    dom = chromium_dom(path, tmp_path)
    assert dom.count("<table") >= 3  # SV/KWS table, disentanglement, layer EERs (+ gender pairs)
    assert "Disentanglement" in dom and "projector" in dom and "MF" in dom
    audio = re.findall(r"<audio[^>]*src=\"data:audio/wav;base64,([A-Za-z0-9+/=]+)\"", dom)
    assert len(audio) == 6  # three source / intervened pairs
    assert len(re.findall(r"<img[^>]*src=\"data:image/png;base64,", dom)) == len(results["plots"])
    assert "pitch_shift" in dom and "word_swap" in dom


def test_report_without_results_or_audio(tmp_path, run_dir):
    with pytest.raises(IntervoxError, match="intervox eval"):
        write_report(tmp_path)
    with pytest.raises(IntervoxError, match="does not exist"):
        write_report(run_dir, audio_shards=tmp_path / "missing")


def test_layer_baselines_are_layer_normed_like_the_projector_input(run_dir, tmp_path):
    """With model.normalize_layers the raw-layer baselines see the projector's layer-normed input."""
    from intervox.evaluation.data import load_split
    from intervox.evaluation.run import make_split_trials, read_run_config, run_systems

    cfg = read_run_config(run_dir)
    val = load_split(Path(cfg["data"]["features"][0]), "validation")
    trials = make_split_trials(val, FAST)
    pooled = np.asarray(val.pooled[:7], np.float32) * 3.0 + 1.0  # scale and offset per vector
    for normalize in (False, True):
        run_cfg = {**cfg, "model": {**cfg["model"], "normalize_layers": normalize}}
        systems, info = run_systems(run_dir, run_cfg, val, trials, FAST)
        by_name = {s.name: s for s in systems}
        best = by_name["best_layer"].project(pooled)["pooled"]
        raw = pooled[:, info["best_layer"]]
        assert info["normalize_layers"] is normalize
        if normalize:
            assert np.allclose(best.mean(axis=1), 0, atol=1e-5)
            assert np.allclose(best.std(axis=1), 1, atol=1e-3)
            assert "layer-normed" in by_name["best_layer"].note
        else:
            assert np.array_equal(best, raw)


def test_cli_eval_reads_the_features_at_an_s3_url_as_the_local_ones(run_dir, tmp_path, s3_bucket,
                                                                   monkeypatch):
    from intervox.evaluation.run import features_from_config, read_run_config
    from intervox.shards import storage

    monkeypatch.setenv("INTERVOX_CACHE", str(tmp_path / "cache"))  # where the local copy goes
    features = features_from_config(read_run_config(run_dir), run_dir)
    url = f"{s3_bucket}/features"
    storage.upload_tree(features, url)
    args = ["sv_trials_per_class=200", "probe_epochs=2", "sv_splits=[validation]", "kws_split=null"]
    systems = {}
    for name, feats in (("local", str(features)), ("s3", url)):
        copy = Path(shutil.copytree(run_dir, tmp_path / name))
        res = CliRunner().invoke(eval_cmd, [str(copy), "--features", feats, *args])
        assert res.exit_code == 0, res.output
        systems[name] = json.loads((copy / "results.json").read_text())["systems"]
    assert json.dumps(systems["s3"], sort_keys=True) == json.dumps(systems["local"], sort_keys=True)
    assert (tmp_path / "cache" / "remote").is_dir()
