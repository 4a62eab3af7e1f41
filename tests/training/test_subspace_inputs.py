"""Each subspace its own input: per-subspace layers, restricted layer sums, frames of the content layer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from intervox.config import load_config
from intervox.errors import ConfigError, TrainingError
from intervox.training.api import load_trained
from intervox.training.checkpoint import load_checkpoint
from intervox.training.config import ModelConfig, TrainConfig
from intervox.training.data import frame_slot, load_feature_table, sample_frame_pairs
from intervox.training.loop import train
from intervox.training.model import InputSpec, SubspaceProjector
from intervox.training.synthetic import write_synthetic_features

SPEC = InputSpec("whisper-like", 7, 16)  # embedding output + 6 layers
SMALL = ["model.hidden_dims=[64]", "model.speaker_dim=16", "model.content_dim=16",
         "data.speakers_per_batch=4", "data.contents_per_batch=8"]


def model_of(**kw) -> SubspaceProjector:
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_dims=(32,), speaker_dim=8, content_dim=8, **kw)
    return SubspaceProjector([SPEC], cfg).eval()


@pytest.mark.parametrize("normalize", [False, True])
def test_each_subspace_reads_only_its_layer(normalize: bool) -> None:
    model = model_of(subspace_layers={"speaker": 2, "content": 6}, residual_dim=4, normalize_layers=normalize)
    x = torch.randn(5, 7, 16, generator=torch.Generator().manual_seed(1))
    base = model([x])
    for layer, changed in ((6, {"content"}), (2, {"speaker", "residual"}), (4, set())):
        y = x.clone()
        y[:, layer] += torch.randn(5, 16, generator=torch.Generator().manual_seed(layer))
        out = model([y])
        moved = {k for k in out if not torch.equal(out[k], base[k])}
        assert moved == changed, layer  # the residual subspace reads model.layer (2)
    assert model.subspace_inputs() == {"speaker": "layer 2", "content": "layer 6", "residual": "layer 2"}


def test_one_layer_for_all_is_the_paper_model() -> None:
    shared, per = model_of(layer=3), model_of(subspace_layers={"speaker": 3, "content": 3})
    per.load_state_dict(shared.state_dict())  # same parameters: one MLP, no per-view weights
    x = torch.randn(4, 7, 16)
    a, b = shared([x]), per([x])
    assert all(torch.allclose(a[k], b[k]) for k in a)


def test_frames_go_through_the_content_view() -> None:
    model = model_of(subspace_layers={"speaker": 1, "content": 5}, normalize_layers=True)
    x = torch.randn(6, 7, 16)
    out = model([x], frames=x[:, 5])  # frames equal to each clip's content-layer vector
    assert torch.allclose(out["frame_content"], out["content"], atol=1e-6)


@pytest.mark.parametrize("raw", [("speaker",), ("content",), ("speaker", "content")])
def test_a_raw_subspace_is_its_layer_normed_view_and_the_others_keep_the_head(raw: tuple[str, ...]) -> None:
    headed = model_of(subspace_layers={"speaker": 1, "content": 5}, normalize_layers=True)
    model = model_of(subspace_layers={"speaker": 1, "content": 5}, normalize_layers=True, raw_subspaces=raw)
    x = torch.randn(6, 7, 16)
    out, ref = model([x], frames=x[:, 5]), headed([x], frames=x[:, 5])
    layer = {"speaker": 1, "content": 5}
    for name in ("speaker", "content"):
        if name in raw:
            assert torch.equal(out[name], torch.nn.functional.layer_norm(x[:, layer[name]], (16,)))
            assert model.subspaces[name] == 16
        else:  # the same output rows as the model with every head: the raw block is simply not there
            model.net.load_state_dict(_rows_of(headed, model, name))
            assert torch.allclose(model([x])[name], ref[name], atol=1e-6)
    assert torch.allclose(out["frame_content"], out["content"], atol=1e-6)  # frames: the content view
    assert model.net[-1].out_features == sum(8 for n in ("speaker", "content") if n not in raw)
    assert all(model.subspace_inputs()[n].endswith("no head") == (n in raw) for n in ("speaker", "content"))


def _rows_of(headed: SubspaceProjector, model: SubspaceProjector, name: str) -> dict[str, torch.Tensor]:
    """Return headed's network weights with the last layer cut to subspace `name`'s rows."""
    state = dict(headed.net.state_dict())
    last = str(len(headed.net) - 1)
    rows = slice(0, 8) if name == "speaker" else slice(8, 16)
    for part in ("weight", "bias"):
        state[f"{last}.{part}"] = state[f"{last}.{part}"][rows]
    return state


def test_a_raw_subspace_needs_one_upstream() -> None:
    cfg = ModelConfig(hidden_dims=(32,), subspace_layers={"speaker": 1}, raw_subspaces=("speaker",))
    with pytest.raises(TrainingError, match="raw_subspaces needs one upstream"):
        SubspaceProjector([SPEC, InputSpec("other", 7, 16)], cfg)


def test_layer_ranges_restrict_the_learned_sums() -> None:
    model = model_of(input="weighted_sum", subspace_layer_ranges={"speaker": [1, 3], "content": [4, 6]})
    with torch.no_grad():
        model.views[0].weights.normal_()
    weights = model.layer_weights()["whisper-like"]
    assert np.count_nonzero(weights["speaker"]) == 3 and sum(weights["speaker"][1:4]) == pytest.approx(1.0)
    assert np.count_nonzero(weights["content"][:4]) == 0
    x = torch.randn(3, 7, 16)
    y = x.clone()
    y[:, 5] += 1.0
    a, b = model([x]), model([y])
    assert torch.equal(a["speaker"], b["speaker"]) and not torch.equal(a["content"], b["content"])
    assert model.subspace_inputs() == {"speaker": "weighted sum of layers 1-3",
                                       "content": "weighted sum of layers 4-6"}


@pytest.mark.parametrize("projector", ["mlp", "linear"])
def test_subspace_init_scale_scales_only_that_subspaces_initial_rows(projector: str) -> None:
    plain = model_of(projector=projector, residual_dim=4)
    scaled = model_of(projector=projector, residual_dim=4, subspace_init_scale={"content": 0.25})
    a, b = dict(plain.named_parameters()), dict(scaled.named_parameters())
    last = "net.weight" if projector == "linear" else f"net.{len(plain.net) - 1}.weight"
    for name in a:  # same seed: equal everywhere but the content rows of the output layer
        if name not in (last, last.replace("weight", "bias")):
            assert torch.equal(a[name], b[name]), name
    rows = slice(8, 16)  # speaker 0-7, content 8-15, residual 16-19
    assert torch.equal(b[last][rows], 0.25 * a[last][rows])
    assert torch.equal(b[last][:8], a[last][:8]) and torch.equal(b[last][16:], a[last][16:])


@pytest.mark.parametrize("projector", ["mlp", "linear"])
def test_orthogonal_init_gives_each_subspace_orthonormal_rows_at_the_default_norm(projector: str) -> None:
    plain = model_of(projector=projector, residual_dim=4)
    ortho = model_of(projector=projector, residual_dim=4, init="orthogonal")
    last = plain.net if projector == "linear" else plain.net[-1]
    w = (ortho.net if projector == "linear" else ortho.net[-1]).weight.detach().double()
    for rows in (slice(0, 8), slice(8, 16), slice(16, 20)):  # speaker, content, residual
        block, gram = w[rows], w[rows] @ w[rows].T
        scale = gram.diagonal().mean()
        assert torch.allclose(gram, scale * torch.eye(gram.shape[0], dtype=gram.dtype), atol=1e-6)
        assert block.norm().item() == pytest.approx(last.weight[rows].norm().item(), rel=1e-5)
    singular = torch.linalg.svdvals(last.weight[:8].detach().double())
    assert singular.max() / singular.min() > 1.5  # PyTorch's uniform start is far from orthonormal
    with pytest.raises(ConfigError, match="model.init"):
        load_config(None, TrainConfig, ["model.init=xavier"])


@pytest.mark.parametrize(("overrides", "message"), [
    (["model.subspace_init_scale={voice: 0.5}"], "unknown subspace 'voice'"),
    (["model.subspace_input_pcs={content: 0}"], r"subspace_input_pcs.content must be an integer >= 1"),
    (["model.subspace_init_scale={content: 0}"], r"subspace_init_scale.content must be > 0"),
    (["model.input=weighted_sum", "model.subspace_layers={speaker: 1}"], "needs model.input: layer"),
    (["model.subspace_layers={voice: 1}"], "unknown subspace 'voice'"),
    (["model.subspace_layers={residual: 1}"], "unknown subspace 'residual'"),  # residual_dim is 0
    (["model.subspace_layer_ranges={speaker: [1, 3]}"], "needs model.input: weighted_sum"),
    (["model.input=weighted_sum", "model.subspace_layer_ranges={content: [5, 2]}"], "not a range"),
    (["model.raw_subspaces=[speaker]"], "raw_subspaces needs each subspace its own view"),
    (["model.raw_subspaces=[voice]", "model.subspace_layers={speaker: 1}"], "unknown subspace 'voice'"),
    (["model.raw_subspaces=[speaker]", "model.subspace_layers={speaker: 1}",
      "model.subspace_init_scale={speaker: 0.5}"], "subspace_init_scale.speaker: .* has no head"),
])
def test_bad_per_subspace_keys_are_config_errors(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, TrainConfig, overrides)


def test_a_layer_the_upstream_lacks_is_named() -> None:
    with pytest.raises(TrainingError, match=r"model.subspace_layers.content=9 but upstream whisper-like has "
                                            r"layers 0..6"):
        model_of(subspace_layers={"content": 9})


@pytest.fixture(scope="module")
def frame_features(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("frames") / "feats"
    write_synthetic_features(d, speakers=8, contents=16, layers=6, hidden=16, blocks_per_shard=2, frames=4)
    return d


def _record_frames_layers(feature_dir: Path, layers: list[int]) -> None:
    """Write the index.json record `intervox features --frames-layers` leaves in a feature dir."""
    (feature_dir / "index.json").write_text(json.dumps({"features": {"frames_layers": layers}}))


def _train(features: Path, run_dir: Path, *overrides: str) -> dict:
    cfg = load_config(None, TrainConfig, [f"data.features=[{features}]", f"run_dir={run_dir}", *SMALL,
                                          "model.subspace_layers={speaker: 2, content: 6}", *overrides])
    return train(cfg)[0]


def test_per_subspace_run_round_trips_and_reports_its_layers(frame_features: Path, tmp_path: Path) -> None:
    _record_frames_layers(frame_features, [6])
    summary = _train(frame_features, tmp_path / "run", "optim.steps=4", "loss.frame_content_weight=1.0",
                     "loss.frame_pairs=4", "loss.frames_per_pair=3")
    assert summary["subspace_inputs"] == {"speaker": "layer 2", "content": "layer 6"}
    assert summary["data"]["frame_layer"] == {"layer": 6, "slot": 0}
    assert summary["final"]["frame_content"] > 0
    seed_dir = tmp_path / "run" / "seed-0"
    saved = json.loads((seed_dir / "summary.json").read_text())
    assert saved["subspace_inputs"] == summary["subspace_inputs"]
    trained = load_trained(tmp_path / "run")
    assert "speaker: layer 2, content: layer 6" in trained.input_description
    # export and checkpoint hold the same model: a fresh projector from the checkpoint agrees
    fresh = SubspaceProjector(trained.inputs, trained.config.model).eval()
    fresh.load_state_dict(load_checkpoint(seed_dir / "checkpoints" / "step-000004.pt")["model"])
    pooled = load_feature_table([frame_features]).pooled[0][:6].astype(np.float32)
    got = trained.project(pooled, normalize=False)
    with torch.no_grad():
        want = fresh([torch.from_numpy(pooled)])
    assert all(np.allclose(got[k], want[k].numpy(), atol=1e-6) for k in got)
    changed = pooled.copy()
    changed[:, 6] += 1.0  # only the content subspace's layer
    moved = trained.project(changed, normalize=False)
    assert np.array_equal(moved["speaker"], got["speaker"])
    assert not np.allclose(moved["content"], got["content"])


def test_input_pcs_keep_only_the_directions_the_training_inputs_vary_in() -> None:
    model = model_of(subspace_layers={"speaker": 1, "content": 2}, subspace_input_pcs={"content": 3})
    g = torch.Generator().manual_seed(3)
    basis = torch.linalg.qr(torch.randn(16, 3, generator=g))[0]  # the content layer varies in 3 dims
    train = torch.randn(64, 7, 16, generator=g)
    train[:, 2] = 0.5 + torch.randn(64, 3, generator=g) @ basis.T
    with pytest.raises(TrainingError, match="not fitted"):
        model([train])
    clips, kept = model.fit_input_pcs([[train[:40]], [train[40:]]])  # in two batches
    assert clips == 64 and kept["content"] == pytest.approx(1.0)
    x = train[:5].clone()
    off = torch.randn(5, 16, generator=g)
    off -= off @ basis @ basis.T  # a change outside those 3 dims ...
    y = x.clone()
    y[:, 2] += off
    y[:, 1] += off  # ... and the same change in the speaker subspace's layer, which keeps every direction
    a, b = model([x]), model([y])
    assert torch.allclose(a["content"], b["content"], atol=1e-5)
    assert not torch.allclose(a["speaker"], b["speaker"])
    z = x.clone()
    z[:, 2] += torch.randn(5, 3, generator=g) @ basis.T  # inside them: content moves
    assert not torch.allclose(model([z])["content"], a["content"])


def test_a_run_with_input_pcs_stores_its_bases_and_resumes_to_the_same_model(frame_features: Path,
                                                                              tmp_path: Path) -> None:
    pcs = "model.subspace_input_pcs={content: 4}"
    whole = _train(frame_features, tmp_path / "whole", "optim.steps=6", pcs)
    _train(frame_features, tmp_path / "cut", "optim.steps=6", "max_steps=3", "checkpoint_every=3", pcs)
    resumed = _train(frame_features, tmp_path / "cut", "optim.steps=6", "checkpoint_every=3", pcs)
    assert resumed["resumed_from"] == 3 and resumed["final"]["loss"] == whole["final"]["loss"]
    assert whole["subspace_inputs"] == {"speaker": "layer 2", "content": "layer 6, its top 4 training PCs"}
    pooled = load_feature_table([frame_features]).pooled[0][:6].astype(np.float32)
    a, b = load_trained(tmp_path / "whole").project(pooled), load_trained(tmp_path / "cut").project(pooled)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    state = load_checkpoint(tmp_path / "whole" / "seed-0" / "checkpoints" / "step-000006.pt")["model"]
    assert bool(state["pcs_fitted"]) and state["pcs_content"].shape == (4, 16)


def test_frame_slot_is_the_content_layers_place_in_the_frames(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _record_frames_layers(tmp_path, [3, 6, 9])
    assert frame_slot(tmp_path, 6, None) == 1 and frame_slot(tmp_path, 9, 2) == 2
    bare = tmp_path / "no-index"  # a dir without the record: loss.frame_layer is trusted, with a warning
    bare.mkdir()
    assert frame_slot(bare, 6, 2) == 2 and frame_slot(bare, 6, None) == 0
    assert "does not say which layers" in caplog.text


def test_frames_without_the_content_layer_are_refused(frame_features: Path, tmp_path: Path) -> None:
    _record_frames_layers(frame_features, [3])
    with pytest.raises(TrainingError, match=r"needs frames of layer 6 .* holds frames of layers \[3\]; "
                                            r"re-run `intervox features ... --frames-layers 6`"):
        _train(frame_features, tmp_path / "a", "optim.steps=2", "loss.frame_content_weight=1.0")
    _record_frames_layers(frame_features, [6, 3])
    with pytest.raises(TrainingError, match=r"loss.frame_layer=1 selects frames of layer 3 .* reads layer 6: "
                                            r"set loss.frame_layer=0"):
        _train(frame_features, tmp_path / "b", "optim.steps=2", "loss.frame_content_weight=1.0",
               "loss.frame_layer=1")


def test_frames_go_through_a_weighted_sum_content_view_with_its_own_weights() -> None:
    model = model_of(input="weighted_sum", normalize_layers=True,
                     subspace_layer_ranges={"speaker": [0, 1], "content": [4, 6]})
    with torch.no_grad():
        model.views[0].weights.normal_(generator=torch.Generator().manual_seed(2))  # unequal rows
    x = torch.randn(6, 7, 16)
    model.set_frame_layers([3, 4, 5, 6])  # a superset of the content rows: row 3 weighs nothing
    out = model([x], frames=x[:, 3:7])  # frames equal to each clip's rows 3-6
    assert torch.allclose(out["frame_content"], out["content"], atol=1e-5)
    model.set_frame_layers([4, 5, 6])
    with pytest.raises(TrainingError, match=r"\[M, slots, hidden\]"):
        model([x], frames=x[:, 3:7])


def test_sampled_frame_pairs_keep_every_stored_layer_for_a_sum() -> None:
    frames = [np.arange(2 * 5 * 3, dtype=np.float16).reshape(2, 5, 3)] * 2
    one, _ = sample_frame_pairs(frames, frames, 4, 1, np.random.default_rng(0))
    every, _ = sample_frame_pairs(frames, frames, 4, None, np.random.default_rng(0))
    assert one.shape == (2, 4, 3) and every.shape == (2, 4, 2, 3)
    assert torch.equal(every[:, :, 1], one)  # same time positions, slot 1 of them


def test_a_weighted_sum_run_trains_the_frame_loss_on_its_content_rows(frame_features: Path,
                                                                      tmp_path: Path) -> None:
    overrides = ["model.input=weighted_sum", "model.subspace_layers=null",
                 "model.subspace_layer_ranges={speaker: [1, 2], content: [6, 6]}",
                 "loss.frame_content_weight=1.0", "loss.frame_pairs=4", "loss.frames_per_pair=3"]
    _record_frames_layers(frame_features, [6])
    summary = _train(frame_features, tmp_path / "run", "optim.steps=3", *overrides)
    assert summary["data"]["frame_layers"] == {"rows": [6], "stored": [6]}
    assert summary["final"]["frame_content"] > 0
    with pytest.raises(TrainingError, match=r"rows \[5, 6\] needs frames of every row, but the dir holds "
                                            r"frames of layers \[6\]; re-run `intervox features ... "
                                            r"--frames-layers 5,6`"):
        _train(frame_features, tmp_path / "b", "optim.steps=2", *overrides[:2],
               "model.subspace_layer_ranges={speaker: [1, 2], content: [5, 6]}", *overrides[3:])


def test_frame_loss_without_timing_preserving_copies_is_refused(tmp_path: Path) -> None:
    """Frames but no praat_gender-like copies in train: the loss would add nothing, so training stops."""
    from intervox.shards.read import iter_tar_samples
    from intervox.shards.write import write_shard

    feats = tmp_path / "feats"
    write_synthetic_features(feats, speakers=8, contents=16, layers=6, hidden=16, blocks_per_shard=2,
                             frames=4)
    _record_frames_layers(feats, [6])
    for tar in sorted(feats.glob("train-*.tar")):  # the same clips, none of them an op's copy
        samples = []
        for s in iter_tar_samples(tar):
            meta = {**json.loads(s["json"]), "op": None, "source_key": None}
            samples.append({"__key__": s["__key__"], "json": meta, "pooled.npy": s["pooled.npy"],
                            "frames.npy": s["frames.npy"]})
        write_shard(tar, samples, plan_hash="synthetic")
    with pytest.raises(TrainingError, match=r"loss.frame_content_weight > 0, but no 'train' clip has a "
                                            r"timing-preserving copy .* or set loss.frame_content_weight=0"):
        _train(feats, tmp_path / "run", "optim.steps=2", "loss.frame_content_weight=1.0")
    # streamed blocks see the data a shard at a time: the first shard's lack of copies stops them too
    with pytest.raises(TrainingError, match=r"no 'train' clip of its first shard \(.*train-000000.tar\) "
                                            r"has a timing-preserving copy"):
        _train(feats, tmp_path / "blocks", "optim.steps=2", "loss.frame_content_weight=1.0",
               "data.batching=blocks", "data.blocks_per_batch=2")
    summary = _train(feats, tmp_path / "plain", "optim.steps=2", "loss.frame_content_weight=0")
    assert summary["final"]["frame_content"] == 0
    blocks = _train(feats, tmp_path / "plain-blocks", "optim.steps=2", "loss.frame_content_weight=0",
                    "data.batching=blocks", "data.blocks_per_batch=2")
    assert blocks["final"]["frame_content"] == 0
