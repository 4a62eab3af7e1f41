"""`intervox finetune` / `merge`: frozen phase, front end, exact resume, merge endpoints, `finetuned:`."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from intervox.config import load_config
from intervox.errors import ConfigError, TrainingError, UpstreamError
from intervox.features.finetuned import frontend_prefixes, upstream_module
from intervox.features.registry import get_upstream
from intervox.training.finetune import FINETUNED_FILE, finetune
from intervox.training.finetune_config import FinetuneConfig, FinetuneOptimConfig
from intervox.training.merge import merge_run

REPO = Path(__file__).resolve().parents[2]
SPEAKERS, CONTENTS, SR = 8, 4, 16000


def tiny_wav2vec2(directory: Path) -> Path:
    """Save a randomly initialised 2-layer, 32-d wav2vec 2.0 with its feature extractor."""
    import transformers as tf

    torch.manual_seed(0)  # test set-up only: deterministic random weights
    config = tf.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64,
                               conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2),
                               num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10,
                               feat_extract_norm="group")
    tf.Wav2Vec2Model(config).save_pretrained(directory)
    tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=False).save_pretrained(directory)
    return directory


def voice(speaker: int, content: int) -> np.ndarray:
    """Return 0.4 s of a 'voice' (harmonics of a speaker's f0) saying 'content' (its amplitude pattern)."""
    t = np.arange(int(0.4 * SR)) / SR
    f0 = 90.0 + 25.0 * speaker
    tone = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 5))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * (1.5 + content) * t)
    noise = np.random.default_rng([speaker, content]).normal(0, 0.02, len(t))
    return (0.2 * tone * envelope + noise).astype(np.float32)


def write_audio_shards(directory: Path, n_shards: int = 2) -> Path:
    """Write `n_shards` train shards, each its own speakers x every content (whole blocks per shard)."""
    from intervox.audio import encode_flac
    from intervox.shards.write import write_shard

    per = SPEAKERS // n_shards
    for s in range(n_shards):
        samples = []
        for spk in range(s * per, (s + 1) * per):
            for c in range(CONTENTS):
                key = f"train-{s:06d}-{len(samples):06d}"
                meta = {"key": key, "speaker": f"v{spk}", "content": f"c{c}", "split": "train", "sr": SR,
                        "block": s}
                samples.append({"__key__": key, "flac": encode_flac(voice(spk, c), SR), "json": meta})
        write_shard(directory / f"train-{s:06d}.tar", samples, plan_hash="test")
    return directory


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_wav2vec2(tmp_path_factory.mktemp("w2v") / "tiny")


@pytest.fixture(scope="module")
def audio_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_audio_shards(tmp_path_factory.mktemp("audio") / "shards")


def overrides(model: Path | str, shards: Path, run_dir: Path, *extra: str) -> list[str]:
    upstream = model if isinstance(model, str) else f"hf:{model}"
    return [f"upstream={upstream}", f"data.shards={shards}", f"run_dir={run_dir}",
            "data.speakers_per_batch=4", "data.contents_per_batch=4", "model.hidden_dims=[16]",
            "model.speaker_dim=8", "model.content_dim=8",
            "model.layer=1", "model.subspace_layers={speaker: 1, content: 2}", "optim.steps=10",
            "optim.upstream_lr=1e-3", "checkpoint_every=1", "keep_checkpoints=0", "device=cpu",
            "loss.frame_content_weight=0", *extra]  # the fixture's shards have no copies; frame tests set it


def config(*items: str) -> FinetuneConfig:
    return load_config(REPO / "configs/finetune/default.yaml", FinetuneConfig, list(items))


def upstream_weights(path: Path) -> dict[str, torch.Tensor]:
    """Return the upstream tensors of a checkpoint (trainable ones) or a safetensors file (all)."""
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)["upstream"]
    return load_file(str(path))


def test_schedule_is_speech_ft_stable_finetuning() -> None:
    opt = FinetuneOptimConfig(steps=100)
    assert opt.freeze_steps() == 10
    factors = [opt.lr_factor(s) for s in (0, 5, 10, 49, 50, 75, 99)]
    assert factors == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.02])


def test_frozen_phase_keeps_upstream_bit_identical_then_trains_all_but_frontend(
        tiny_model: Path, audio_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = finetune(config(*overrides(tiny_model, audio_shards, run, "optim.freeze_fraction=0.3")))
    assert summary["completed"] and summary["freeze_steps"] == 3
    base = upstream_module(get_upstream(f"hf:{tiny_model}")).state_dict()
    for step in (1, 2, 3):  # heads only: every upstream tensor still the pre-trained one, bit for bit
        for name, t in upstream_weights(run / "checkpoints" / f"step-{step:06d}.pt").items():
            assert torch.equal(t, base[name]), (step, name)
    tuned = upstream_weights(run / FINETUNED_FILE)
    assert set(tuned) == set(base)
    front = frontend_prefixes(get_upstream(f"hf:{tiny_model}"))
    changed = {n for n in base if not torch.equal(tuned[n], base[n])}
    assert not {n for n in changed if n.startswith(front)}  # the conv front end never trains
    assert any(n.startswith("encoder.layers.0.") for n in changed)
    assert any(n.startswith("encoder.layers.1.") for n in changed)
    step4 = upstream_weights(run / "checkpoints" / "step-000004.pt")
    assert any(not torch.equal(t, base[n]) for n, t in step4.items())  # the first unfrozen step moves it


def test_a_raw_speaker_subspace_trains_the_upstreams_own_layer(tiny_model: Path, audio_shards: Path,
                                                               tmp_path: Path) -> None:
    run = tmp_path / "run"  # the speaker loss alone, on pooled layer 1 itself: no head between them
    summary = finetune(config(*overrides(tiny_model, audio_shards, run, "model.raw_subspaces=[speaker]",
                                         "loss.content_weight=0", "loss.orthogonality=none",
                                         "optim.weight_decay=0")))
    assert summary["completed"]
    with safe_open(str(run / "heads.safetensors"), "pt") as f:
        meta = json.loads(f.metadata()["intervox"])
        assert f.get_tensor("net.2.weight").shape[0] == 8  # the content head's rows only
    assert meta["subspaces"] == {"speaker": int(get_upstream(f"hf:{tiny_model}").identity["hidden"]),
                                 "content": 8}
    base = upstream_module(get_upstream(f"hf:{tiny_model}")).state_dict()
    tuned = upstream_weights(run / FINETUNED_FILE)
    changed = {n for n in base if not torch.equal(tuned[n], base[n])}
    assert any(n.startswith("encoder.layers.0.") for n in changed)  # layer 1's states come from it
    assert not any(n.startswith("encoder.layers.1.") for n in changed)  # above the speaker layer


def test_whisper_ct2_frontend_never_trains(audio_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "whisper"
    finetune(config(*overrides("whisper-tiny.en", audio_shards, run, "optim.steps=3",
                               "optim.freeze_fraction=0.34",
                               "model.subspace_layers={speaker: 1, content: 4}")))
    base = upstream_module(get_upstream("whisper-tiny.en")).state_dict()
    tuned = upstream_weights(run / FINETUNED_FILE)
    for name in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias", "positions"):
        assert torch.equal(tuned[name], base[name]), name
    assert not torch.equal(tuned["layers.3.fc1.weight"], base["layers.3.fc1.weight"])


@pytest.mark.slow
def test_kill_after_checkpoint_and_resume_gives_the_same_weights(tiny_model: Path, audio_shards: Path,
                                                                  tmp_path: Path) -> None:
    corpus = write_cohort(tmp_path / "cohort", {s: 3 for s in range(10, 14)})
    # killed after step 4: 2 frozen + 2 trained steps, with real cohort draws and the drift held on them
    items = ("optim.steps=6", "optim.freeze_fraction=0.34", f"data.cohort={corpus}",
             "loss.cohort_speaker_weight=1", "data.cohort_speakers=3", "data.cohort_clips_per_speaker=2",
             "preserve.weight=1", "preserve.layers=[2]", "preserve.clips=cohort")
    straight = tmp_path / "straight"
    finetune(config(*overrides(tiny_model, audio_shards, straight, *items)))
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "intervox", "finetune", "--config",
           str(REPO / "configs/finetune/default.yaml"),
           *overrides(tiny_model, audio_shards, killed, *items)]
    # the killed run's threads are this process's: the straight run and the resume run here, and a
    # float sum split over other thread counts rounds differently (OMP_NUM_THREADS=2 failed with "1")
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads, "INTERVOX_FAULT": "finetune.after_checkpoint:4"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == -9, proc.stderr[-2000:]  # SIGKILLed right after checkpoint 4
    assert not (killed / FINETUNED_FILE).exists()
    summary = finetune(config(*overrides(tiny_model, audio_shards, killed, *items)))
    assert summary["resumed_from"] == 4 and summary["completed"]
    a, b = load_file(str(straight / FINETUNED_FILE)), load_file(str(killed / FINETUNED_FILE))
    assert all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = load_file(str(straight / "heads.safetensors")), load_file(str(killed / "heads.safetensors"))
    assert all(torch.equal(ha[k], hb[k]) for k in ha)


def test_merge_endpoints_are_the_two_models_bit_for_bit(tiny_model: Path, audio_shards: Path,
                                                        tmp_path: Path) -> None:
    run = tmp_path / "run"
    finetune(config(*overrides(tiny_model, audio_shards, run, "optim.steps=4")))
    paths = merge_run(run, [0.0, 0.5, 1.0])
    assert [p.name for p in paths] == ["alpha-0.safetensors", "alpha-0.5.safetensors", "alpha-1.safetensors"]
    base = upstream_module(get_upstream(f"hf:{tiny_model}")).state_dict()
    tuned = load_file(str(run / FINETUNED_FILE))
    m0, half, m1 = (load_file(str(p)) for p in paths)
    for k in base:
        assert m0[k].numpy().tobytes() == base[k].numpy().tobytes(), k
        assert m1[k].numpy().tobytes() == tuned[k].numpy().tobytes(), k
        expect = (base[k].double() + 0.5 * (tuned[k].double() - base[k].double())).float()
        assert torch.equal(half[k], expect), k
    moved = [k for k in base if not torch.equal(base[k], tuned[k])]
    assert moved and all(not torch.equal(half[k], base[k]) for k in moved)


def test_merged_model_is_an_upstream_whose_features_differ(tiny_model: Path, audio_shards: Path,
                                                           tmp_path: Path) -> None:
    run = tmp_path / "run"
    finetune(config(*overrides(tiny_model, audio_shards, run, "optim.steps=4")))
    merge_run(run, [0.0, 1.0])
    clip = voice(1, 2)
    base = get_upstream(f"hf:{tiny_model}").forward([clip])[0]
    merged0 = get_upstream(f"finetuned:{run}@0")
    assert merged0.identity["alpha"] == 0.0 and merged0.identity["name"] == f"finetuned:{run}@0"
    assert torch.equal(merged0.forward([clip])[0], base)
    merged1 = get_upstream(f"finetuned:{run}@1.0")  # the alpha is read as a number: 1.0 names alpha-1
    out = merged1.forward([clip])[0]
    assert out.shape == base.shape
    assert not torch.allclose(out[1:], base[1:])  # the fine-tuned layers' states differ
    assert merged1.identity["weights_sha256"] != merged0.identity["weights_sha256"]
    direct = get_upstream(f"finetuned:{run / 'merged' / 'alpha-1.safetensors'}")
    assert torch.equal(direct.forward([clip])[0], out)
    with pytest.raises(UpstreamError, match=r"intervox merge .* --alpha 0.25"):
        get_upstream(f"finetuned:{run}@0.25")


@pytest.mark.slow
def test_merged_upstream_extracts_feature_shards(tiny_model: Path, audio_shards: Path,
                                                 tmp_path: Path) -> None:
    run = tmp_path / "run"
    finetune(config(*overrides(tiny_model, audio_shards, run, "optim.steps=2")))
    merge_run(run, [0.5])
    out = tmp_path / "features"
    proc = subprocess.run([sys.executable, "-m", "intervox", "features", str(audio_shards), "--upstream",
                           f"finetuned:{run}@0.5", "--out", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    index = json.loads((out / "index.json").read_text())
    assert index["upstream"]["name"] == f"finetuned:{run}@0.5"
    assert index["upstream"]["alpha"] == 0.5


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tiny_model: Path, audio_shards: Path,
                                                                   tmp_path: Path) -> None:

    run = tmp_path / "nan"
    with pytest.raises(TrainingError, match=r"step 3: non-finite loss"):
        finetune(config(*overrides(tiny_model, audio_shards, run, "debug.nan_at_step=3")))
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-000001.pt", "step-000002.pt"]
    assert not (run / FINETUNED_FILE).exists()


def test_config_errors_name_the_key(capsys: pytest.CaptureFixture) -> None:
    from intervox.cli import main

    with pytest.raises(ConfigError, match=r"loss.frame_content_weight: .* needs model.input: layer"):
        config("loss.frame_content_weight=1", "model.input=weighted_sum", "model.subspace_layers=null",
               "model.subspace_layer_ranges={speaker: [0, 1], content: [3, 4]}")
    with pytest.raises(ConfigError, match="loss.frame_layer"):
        config("loss.frame_layer=0")
    with pytest.raises(ConfigError, match="loss.cohort_weight: must be 0: fine-tuning's cohort term is"):
        config("loss.cohort_weight=1", "data.cohort=shards/ktuberling")
    with pytest.raises(ConfigError, match="loss.cohort_speaker_weight: needs data.cohort"):
        config("loss.cohort_speaker_weight=1")
    with pytest.raises(ConfigError, match="data.cohort_clips_per_speaker"):
        config("data.cohort_clips_per_speaker=1")
    with pytest.raises(ConfigError, match="preserve.layers: must name at least one layer"):
        config("preserve.weight=1")
    with pytest.raises(ConfigError, match="preserve.clips: cohort needs data.cohort"):
        config("preserve.weight=1", "preserve.layers=[2]", "preserve.clips=cohort")
    with pytest.raises(ConfigError, match="hold_fraction"):
        config("optim.hold_fraction=0.95")
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--config", str(REPO / "configs/finetune/default.yaml"), "optim.nosuch=1"])
    assert exit_info.value.code == 2 and "optim.nosuch" in capsys.readouterr().err


def _gathered_supcon_grad(rank: int, world: int, init_file: str, out_dir: str) -> None:
    """One rank of the gather test: SupCon over every rank's rows; save the averaged weight gradient."""
    import torch.distributed as dist

    from intervox.training import ddp
    from intervox.training.finetune import average_gradients, gather_rows
    from intervox.training.losses import supcon_loss

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    info = ddp.DistInfo(rank, world, rank, torch.device("cpu"))
    x, labels, layer = gather_inputs()
    rows = [slice(0, 3), slice(3, 8)][rank]  # unequal row counts: the padding must not leak in
    z = gather_rows(layer(x[rows]), info)
    supcon_loss(z, gather_rows(labels[rows], info), 0.1).loss.backward()
    average_gradients(list(layer.parameters()), info)
    torch.save({"z": z.detach(), "grad": layer.weight.grad}, f"{out_dir}/rank-{rank}.pt")
    dist.destroy_process_group()


def gather_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear]:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(8, 6, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    layer = torch.nn.Linear(6, 4)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(4, 6, generator=gen))
        layer.bias.zero_()
    return x, labels, layer


@pytest.mark.slow
def test_gathered_supcon_gradient_equals_the_whole_batch_gradient(tmp_path: Path) -> None:
    from intervox.training.losses import supcon_loss

    torch.multiprocessing.spawn(_gathered_supcon_grad, args=(2, str(tmp_path / "init"), str(tmp_path)),
                                nprocs=2, join=True)
    x, labels, layer = gather_inputs()
    z = layer(x)
    supcon_loss(z, labels, 0.1).loss.backward()
    for rank in (0, 1):
        got = torch.load(tmp_path / f"rank-{rank}.pt", weights_only=True)
        torch.testing.assert_close(got["z"], z.detach())  # every rank sees all 8 rows, in rank order
        torch.testing.assert_close(got["grad"], layer.weight.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_torchrun_two_ranks_train_on_disjoint_shards_with_gathered_negatives(
        tiny_model: Path, audio_shards: Path, tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    corpus = write_cohort(tmp_path / "cohort", {s: 3 for s in range(10, 14)})
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "intervox", "finetune", "--config", str(REPO / "configs/finetune/default.yaml"),
           *overrides(tiny_model, audio_shards, run, "optim.steps=3", "debug.log_keys=true",
                      f"data.cohort={corpus}", "loss.cohort_speaker_weight=1", "data.cohort_speakers=3",
                      "data.cohort_clips_per_speaker=2")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    import csv
    import json

    summary = json.loads((run / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["completed"]
    seen = {}
    for rank in (0, 1):
        lines = [ln.split("\t") for ln in (run / "debug" / f"rank-{rank}.txt").read_text().splitlines()]
        seen[rank] = ({v for k, _, v in lines if k == "K"}, {v for k, _, v in lines if k == "S"})
    assert seen[0][0] and seen[1][0] and not seen[0][0] & seen[1][0]  # disjoint clips
    assert len(seen[0][1]) == len(seen[1][1]) == 1 and seen[0][1] != seen[1][1]  # one shard each
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert len(rows) == 3
    for r in rows:  # SupCon saw both ranks' clips: twice rank 0's batch (both ranks draw 4 x 4)
        assert int(r["global_batch"]) == 2 * int(r["batch"]) == 32
        assert int(r["cohort_batch"]) == 2 * 3 * 2 and float(r["cohort_speaker"]) > 0  # both ranks
    base = upstream_module(get_upstream(f"hf:{tiny_model}")).state_dict()
    tuned = load_file(str(run / FINETUNED_FILE))
    assert any(not torch.equal(tuned[k], base[k]) for k in base)


@pytest.mark.parametrize("model", ["hf", pytest.param("whisper-tiny.en", marks=pytest.mark.slow)])
def test_gradient_checkpointing_gives_the_same_training(model: str, tiny_model: Path, audio_shards: Path,
                                                        tmp_path: Path) -> None:
    upstream = tiny_model if model == "hf" else model
    layers = "model.subspace_layers={speaker: 1, content: 2}"
    weights = {}
    for flag in ("false", "true"):
        run = tmp_path / flag
        finetune(config(*overrides(upstream, audio_shards, run, "optim.steps=3", "optim.freeze_fraction=0.34",
                                   f"gradient_checkpointing={flag}", layers)))
        weights[flag] = load_file(str(run / FINETUNED_FILE))
    base = upstream_module(get_upstream(f"hf:{upstream}" if model == "hf" else model)).state_dict()
    for k, t in weights["false"].items():  # recomputing the layers' activations changes no number
        torch.testing.assert_close(weights["true"][k], t, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(weights["true"][k], base[k]) for k in base)


def write_copy_shards(directory: Path) -> Path:
    """Write 2 train shards in which every anchor has a timing-preserving copy, as praat_gender makes:
    another voice (other harmonics) saying the same content (the same envelope, the same length)."""
    from intervox.audio import encode_flac
    from intervox.shards.write import write_shard

    per = SPEAKERS // 2
    op = {"name": "praat_gender", "target": "speaker", "keeps_timing": True}
    for s in range(2):
        samples, anchors = [], {}
        for spk in range(s * per, (s + 1) * per):
            for c in range(CONTENTS):
                key = f"train-{s:06d}-{len(samples):06d}"
                anchors[spk, c] = key
                meta = {"key": key, "speaker": f"v{spk}", "content": f"c{c}", "split": "train", "sr": SR,
                        "block": s, "slot": 0}
                samples.append({"__key__": key, "flac": encode_flac(voice(spk, c), SR), "json": meta})
        for spk in range(s * per, (s + 1) * per):
            for c in range(CONTENTS):
                key = f"train-{s:06d}-{len(samples):06d}"
                meta = {"key": key, "speaker": f"v{spk}~praat_gender1", "content": f"c{c}", "split": "train",
                        "sr": SR, "block": s, "slot": 1, "op": op, "source_key": anchors[spk, c]}
                audio = encode_flac(voice(spk + SPEAKERS, c), SR)
                samples.append({"__key__": key, "flac": audio, "json": meta})
        write_shard(directory / f"train-{s:06d}.tar", samples, plan_hash="test")
    return directory


def test_frame_loss_trains_the_upstream_on_timing_preserving_pairs_and_resumes_exactly(
        tiny_model: Path, tmp_path: Path) -> None:
    """The frame loss pairs frame t of an anchor with frame t of its copy through the upstream itself."""
    import csv

    shards = write_copy_shards(tmp_path / "shards")
    items = ("optim.steps=6", "optim.freeze_fraction=0.34", "loss.frame_content_weight=1",
             "loss.frame_pairs=4", "loss.frames_per_pair=3")
    straight = tmp_path / "straight"
    summary = finetune(config(*overrides(tiny_model, shards, straight, *items)))
    assert summary["data_rank0"]["frame_pairs"] == SPEAKERS * CONTENTS  # every copy found its anchor
    with open(straight / "train_log.csv", newline="") as f:
        logged = [float(r["frame_content"]) for r in csv.DictReader(f)]
    assert len(logged) == 6 and all(v > 0 for v in logged)
    plain = tmp_path / "plain"
    finetune(config(*overrides(tiny_model, shards, plain, *items[:2])))
    a, b = load_file(str(straight / FINETUNED_FILE)), load_file(str(plain / FINETUNED_FILE))
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the frame loss reached the upstream's weights
    stopped = tmp_path / "stopped"  # stopped after a trained step, then resumed: the same pairs and frames
    finetune(config(*overrides(tiny_model, shards, stopped, *items, "max_steps=4")))
    assert finetune(config(*overrides(tiny_model, shards, stopped, *items)))["resumed_from"] == 4
    c = load_file(str(stopped / FINETUNED_FILE))
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_frame_loss_without_copies_is_refused(tiny_model: Path, audio_shards: Path, tmp_path: Path) -> None:

    with pytest.raises(TrainingError, match=r"no 'train' clip of rank 0's shards has a timing-preserving"):
        finetune(config(*overrides(tiny_model, audio_shards, tmp_path / "run",
                                   "loss.frame_content_weight=1")))


@pytest.mark.slow
def test_torchrun_two_ranks_frame_loss_on_their_own_pairs(tiny_model: Path, tmp_path: Path) -> None:
    """Under DDP each rank pairs its own anchors and copies (a copy's block is in its anchor's shard)."""
    import csv

    shards = write_copy_shards(tmp_path / "shards")
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "intervox", "finetune", "--config", str(REPO / "configs/finetune/default.yaml"),
           *overrides(tiny_model, shards, run, "optim.steps=3", "optim.freeze_fraction=0.34",
                      "loss.frame_content_weight=1", "loss.frame_pairs=4", "loss.frames_per_pair=3")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(run / "train_log.csv")))
    assert len(rows) == 3 and all(float(r["frame_content"]) > 0 for r in rows)
    assert all(int(r["global_batch"]) == 32 for r in rows)


def write_cohort(directory: Path, clips: dict[int, int]) -> Path:
    """Write a folder corpus (split `cohort`) of `voice` clips: clips[speaker] of each speaker's."""
    directory.mkdir(parents=True)
    rows = ["path\tspeaker\ttext\tsplit"]
    for spk, n in clips.items():
        for c in range(n):
            sf.write(str(directory / f"r{spk}-{c}.wav"), voice(spk, c + 7), SR)
            rows.append(f"r{spk}-{c}.wav\treal{spk}\tword{c}\tcohort")
    (directory / "table.tsv").write_text("\n".join(rows) + "\n")
    return directory


def test_cohort_draws_real_speakers_with_positives_by_seed_rank_and_step(tmp_path: Path) -> None:
    from intervox.training.finetune_cohort import CohortAudio
    from intervox.training.finetune_data import label_id

    corpus = write_cohort(tmp_path / "cohort", {10: 3, 11: 5, 12: 2, 13: 4, 14: 1})
    data = config(f"data.cohort={corpus}", "data.cohort_speakers=3", "data.cohort_clips_per_speaker=3").data
    cohort = CohortAudio(data, SR, 0, 0, tmp_path / "work")
    assert cohort.describe()["speakers"] == 4  # real14's one clip has no positive: left out
    audio, speaker = cohort.draw(5)
    counts = {int(s): int((speaker == s).sum()) for s in speaker.unique()}
    assert len(counts) == 3 and all(n == (2 if s == label_id("real12") else 3) for s, n in counts.items())
    assert label_id("real14") not in counts and len(audio) == len(speaker)
    again, _ = cohort.draw(5)  # a resumed run redraws step 5 as it was
    assert all(np.array_equal(a, b) for a, b in zip(audio, again, strict=True))
    other = CohortAudio(data, SR, 0, 1, tmp_path / "work")  # rank 1 draws its own clips
    assert any(not np.array_equal(a, b) for a, b in zip(audio, other.draw(5)[0], strict=False))
    lone = write_cohort(tmp_path / "lone", {10: 3, 11: 1})
    with pytest.raises(TrainingError, match=f"data.cohort {lone}: .*2\\+ speakers with 2\\+ clips each"):
        CohortAudio(config(f"data.cohort={lone}").data, SR, 0, 0, tmp_path / "work2")


def _speaker_gap(model: Path | str, corpus: Path, layer: int) -> float:
    """Return the mean cosine of the cohort's same-speaker pairs minus other-speaker pairs in `layer`."""
    from intervox.features.finetuned import hidden_states, pool_frames

    wavs = sorted(corpus.glob("*.wav"))
    upstream = get_upstream(str(model))
    with torch.no_grad():
        states, frames = hidden_states(upstream, [sf.read(str(w), dtype="float32")[0] for w in wavs])
        x = torch.nn.functional.layer_norm(pool_frames(states.float(), frames)[:, layer], (states.shape[-1],))
    x = torch.nn.functional.normalize(x, dim=1)
    cos = x @ x.T
    speaker = [w.name.split("-")[0] for w in wavs]
    same = torch.tensor([[a == b for b in speaker] for a in speaker])
    same &= ~torch.eye(len(wavs), dtype=torch.bool)
    other = torch.tensor([[a != b for b in speaker] for a in speaker])
    return float(cos[same].mean() - cos[other].mean())


def test_the_cohort_speaker_term_teaches_the_upstreams_layer_real_voices(tiny_model: Path, audio_shards: Path,
                                                                         tmp_path: Path) -> None:
    corpus = write_cohort(tmp_path / "cohort", {s: 4 for s in range(10, 16)})
    runs = {}
    for weight in (0, 1):  # the grid's own speaker and content terms off: only the cohort term differs
        runs[weight] = tmp_path / f"w{weight}"
        summary = finetune(config(*overrides(
            tiny_model, audio_shards, runs[weight], "model.raw_subspaces=[speaker]", "loss.speaker_weight=0",
            "loss.content_weight=0", "loss.orthogonality=none", f"data.cohort={corpus}",
            f"loss.cohort_speaker_weight={weight}", "data.cohort_speakers=4",
            "data.cohort_clips_per_speaker=2")))
        assert summary["completed"]
    assert summary["data_rank0"]["cohort"]["speakers"] == 6
    with open(runs[1] / "train_log.csv") as f:
        terms = [float(r["cohort_speaker"]) for r in csv.DictReader(f)]
    assert all(t > 0 for t in terms) and terms[-1] < terms[0]
    gaps = {}
    for weight, run in runs.items():
        merged = merge_run(run, [1.0])[0]
        gaps[weight] = _speaker_gap(f"finetuned:{merged}", corpus, 1)
    base = _speaker_gap(f"hf:{tiny_model}", corpus, 1)
    assert gaps[1] > base + 0.1 and gaps[1] > gaps[0] + 0.1, (base, gaps)  # measured: 0.011 -> 0.19


def _pooled_layer(model: str, wavs: list[Path], layer: int) -> torch.Tensor:
    """Return the clips' layer-normed pooled `layer` under upstream `model` [N, H]."""
    from intervox.features.finetuned import hidden_states, pool_frames

    audio = [sf.read(str(w), dtype="float32")[0] for w in wavs]
    with torch.no_grad():
        states, frames = hidden_states(get_upstream(model), audio)
        pooled = pool_frames(states.float(), frames)[:, layer]
    return torch.nn.functional.layer_norm(pooled, (states.shape[-1],))


def test_preserve_holds_the_named_layer_to_the_pretrained_model(tiny_model: Path, audio_shards: Path,
                                                               tmp_path: Path) -> None:
    wavs = sorted(write_cohort(tmp_path / "clips", {s: 2 for s in range(10, 14)}).glob("*.wav"))
    base = _pooled_layer(f"hf:{tiny_model}", wavs, 2)
    drift = {}
    for weight in (0, 10):  # the speaker loss reshapes layer 1 (raw); layer 2 sits above it
        run = tmp_path / f"p{weight}"
        finetune(config(*overrides(tiny_model, audio_shards, run, "model.raw_subspaces=[speaker]",
                                   "loss.content_weight=0", "loss.orthogonality=none",
                                   f"preserve.weight={weight}", "preserve.layers=[2]")))
        merged = merge_run(run, [1.0])[0]
        drift[weight] = float(((_pooled_layer(f"finetuned:{merged}", wavs, 2) - base) ** 2).mean())
    assert drift[10] < 0.5 * drift[0], drift
    with open(tmp_path / "p10" / "train_log.csv") as f:
        rows = list(csv.DictReader(f))
    # step 1 is frozen; step 2 is the first to train, still from the pre-trained weights: drift 0
    assert [int(r["upstream_trained"]) for r in rows[:2]] == [0, 1]
    assert [float(r["drift"]) for r in rows[:2]] == [0, 0] and all(float(r["drift"]) > 0 for r in rows[2:])
    with pytest.raises(TrainingError, match=r"preserve.layers \[3\]: .* hidden states 0-2"):
        finetune(config(*overrides(tiny_model, audio_shards, tmp_path / "bad", "preserve.weight=1",
                                   "preserve.layers=[3]")))


def test_preserve_on_the_cohort_holds_the_drift_on_real_clips(tiny_model: Path, audio_shards: Path,
                                                             tmp_path: Path) -> None:
    corpus = write_cohort(tmp_path / "cohort", {s: 2 for s in range(10, 14)})
    wavs = sorted(corpus.glob("*.wav"))
    base = _pooled_layer(f"hf:{tiny_model}", wavs, 2)
    drift = {}
    for clips in ("batch", "cohort"):  # the grid's speaker loss reshapes layer 1 (raw) in both
        run = tmp_path / clips
        finetune(config(*overrides(tiny_model, audio_shards, run, "model.raw_subspaces=[speaker]",
                                   "loss.content_weight=0", "loss.orthogonality=none",
                                   f"data.cohort={corpus}", "preserve.weight=10", "preserve.layers=[2]",
                                   f"preserve.clips={clips}",
                                   "data.cohort_speakers=4", "data.cohort_clips_per_speaker=2")))
        merged = merge_run(run, [1.0])[0]
        drift[clips] = float(((_pooled_layer(f"finetuned:{merged}", wavs, 2) - base) ** 2).mean())
        with open(run / "train_log.csv") as f:
            rows = list(csv.DictReader(f))
        assert all(float(r["drift"]) > 0 for r in rows[2:])
        assert {float(r["cohort_speaker"]) for r in rows} == {0}  # the cohort only preserves here
    # the cohort's clips are voices the grid never has (f0 above every grid speaker's)
    assert drift["cohort"] < 0.5 * drift["batch"], drift  # measured: 0.027 -> 0.0014
