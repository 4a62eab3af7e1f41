"""recipes/paper/run.py end to end: corpora laid out like the releases (espeak-ng speech), a tiny random
WavLM in place of WavLM Base+, world_vc in place of the cloning model; then resume and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "recipes" / "paper" / "run.py"
VOICES = [("en-us", 30), ("en-gb", 50), ("en-us", 70), ("en-gb", 90), ("en-us", 110)]
TEXTS = ["The old man walked slowly along the quiet river bank.",
         "She opened the window and looked at the morning sky.",
         "A small dog ran across the garden after the red ball.",
         "They painted the kitchen walls a pale shade of green.",
         "He found the letter hidden under a pile of old books.",
         "The children sang a song about the winter snow today.",
         "We waited an hour for the last train to the city.",
         "Her brother fixed the broken clock on the kitchen wall.",
         "The farmer sold fresh eggs and milk at the market.",
         "Rain fell softly on the roof all through the night.",
         "The teacher read a long story to the class after lunch.",
         "Our neighbours planted three apple trees near the fence.",
         "The ship sailed out of the harbour before the storm came.",
         "A bright light shone from the top of the tall tower.",
         "He wrote his name carefully at the bottom of the page."]


def libritts(root: Path, espeak) -> Path:
    """LibriTTS test-clean: 5 speakers x 3 clips, <spk>/<chapter>/<spk>_<chapter>_<n>.wav + .normalized.txt"""
    for i, (voice, pitch) in enumerate(VOICES):
        spk, chapter = str(1000 + i), str(200 + i)
        folder = root / "test-clean" / spk / chapter
        folder.mkdir(parents=True)
        for k in range(3):
            stem = f"{spk}_{chapter}_{k:06d}_{k:06d}"
            text = TEXTS[3 * i + k]
            espeak(text, folder / f"{stem}.wav", voice, pitch)
            (folder / f"{stem}.normalized.txt").write_text(text)
    return root / "test-clean"


def voxceleb1(root: Path, espeak) -> Path:
    """VoxCeleb1: 3 speakers x 2 videos, wav/idXXXXX/<video>/NNNNN.wav, and a veri_test2.txt trial list."""
    clips = []
    for i, (voice, pitch) in enumerate(VOICES[:3]):
        for v in range(2):
            rel = f"id1000{i}/vid{i}{v}/00001.wav"
            (root / "wav" / rel).parent.mkdir(parents=True)
            espeak(TEXTS[5 * v + i], root / "wav" / rel, voice, pitch)
            clips.append((i, rel))
    lines = [f"{int(a[0] == b[0])} {a[1]} {b[1]}" for n, a in enumerate(clips) for b in clips[n + 1:]]
    (root / "veri_test2.txt").write_text("\n".join(lines) + "\n")
    return root


def speechcommands(root: Path, espeak) -> Path:
    """Speech Commands v0.01: <word>/<hash>_nohash_<n>.wav, split lists, background noise."""
    hashes = ["0a0a0a0a", "1b1b1b1b", "2c2c2c2c", "3d3d3d3d", "4e4e4e4e"]
    for word in ("yes", "no", "up", "bed"):
        (root / word).mkdir(parents=True)
        for h, (voice, pitch) in zip(hashes, VOICES, strict=True):
            espeak(word, root / word / f"{h}_nohash_0.wav", voice, pitch)
    words = ("yes", "no", "up", "bed")
    (root / "validation_list.txt").write_text("".join(f"{w}/{hashes[3]}_nohash_0.wav\n" for w in words))
    (root / "testing_list.txt").write_text("".join(f"{w}/{hashes[4]}_nohash_0.wav\n" for w in words))
    (root / "_background_noise_").mkdir()
    sf.write(root / "_background_noise_" / "white_noise.wav",
             0.1 * np.random.default_rng([0]).standard_normal(10 * 16000), 16000)
    return root


def tiny_wavlm(directory: Path) -> Path:
    """A randomly initialised 12-layer WavLM (hidden 32) saved like an HF checkpoint: layer 12 exists.

    Its conv stack is WavLM Base+'s (stride 320: 50 frames a second); a shorter one makes attention
    over thousands of frames the slowest part of the test."""
    import torch
    import transformers as tf

    torch.manual_seed(0)  # test set-up only: deterministic random weights
    config = tf.WavLMConfig(hidden_size=32, num_hidden_layers=12, num_attention_heads=2, intermediate_size=64,
                            conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2),
                            conv_stride=(5, 2, 2, 2, 2, 2, 2),
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=10,
                            num_buckets=16, max_bucket_distance=50, feat_extract_norm="layer")
    tf.WavLMModel(config).save_pretrained(directory)
    tf.Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(directory)
    return directory


def recipe(config: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RUN), "--config", str(config), *args], capture_output=True,
                          text=True, cwd=config.parent, timeout=900)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, espeak):
    """Run the whole recipe once on the fixture corpora; return (config path, work dir, first run)."""
    d = tmp_path_factory.mktemp("paper")
    cfg = {
        "libritts": str(libritts(d / "LibriTTS", espeak)),
        "voxceleb1": str(voxceleb1(d / "VoxCeleb1", espeak)),
        "speechcommands": str(speechcommands(d / "speech_commands_v0.01", espeak)),
        "upstream": f"hf:{tiny_wavlm(d / 'wavlm')}", "work": str(d / "work"),
        "clone_op": {"name": "world_vc"},  # a cheap stand-in for the cloning model
        "speakers": 3, "sentences": 4, "val_speakers": 2, "val_sentences": 2,
        "clone": ["min_ref_seconds=1.0", "source_voice=espeak:en-us:m3"],
        "seeds": 2,
        "train": ["optim.steps=3", "checkpoint_every=2", "data.speakers_per_batch=3",
                  "data.contents_per_batch=4"],
        "eval": ["sv_trials_per_class=20", "probe_epochs=2", "embed_points=20"],
        "scheduler": "sync", "device": "cpu",
    }
    config = d / "recipe.yaml"
    config.write_text(yaml.safe_dump(cfg))
    first = recipe(config)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-5000:]
    return config, d / "work", first


@pytest.mark.slow
def test_recipe_ends_with_the_table(finished):
    _, work, first = finished
    rows = {r["system"].split()[0]: r for r in json.loads((work / "table.json").read_text())}
    for system in ("paper", "extensions"):
        r = rows[system]
        assert r["seeds"] == 2
        for key in ("vox_eer_speaker", "vox_eer_content", "kws_content", "kws_speaker"):
            assert r[key]["n"] == 2 and 0.0 <= r[key]["mean"] <= 1.0, (system, key, r[key])
    assert rows["raw"]["vox_eer_speaker"]["n"] == 1  # the projector's input layer beside the subspaces
    table = (work / "table.md").read_text()
    assert "| paper (configs/train/paper.yaml) | 2 |" in table and "±" in table
    assert table in first.stdout  # the run ends by printing it


@pytest.mark.slow
def test_recipe_builds_the_cloned_grid_and_the_paper_protocol(finished):
    _, work, _ = finished
    grid = [json.loads(x) for x in (work / "grid" / "manifest.jsonl").read_text().splitlines()]
    train = [u for u in grid if u["split"] == "train"]
    speakers = {u["speaker"] for u in train}
    # dense: every one of 3 LibriTTS speakers says every one of 4 sentences
    assert len(speakers) == 3 and speakers <= {str(1000 + i) for i in range(5)}
    assert {(u["speaker"], u["content_id"]) for u in train} == {(s, c) for s in speakers
                                                                 for c in {u["content_id"] for u in train}}
    assert len({u["content_id"] for u in train}) == 4
    assert len([u for u in grid if u["split"] == "validation"]) == 2 * 2
    results = json.loads((work / "runs" / "paper" / "results.json").read_text())
    vox = results["real"]["voxceleb1"]
    assert vox["official_trials"] and vox["report_split"] == "test"
    seed1 = vox["systems"]["subspaces seed-1"]["embeddings"]["speaker"]["test"]
    assert seed1["speaker"]["all"]["n_trials"] == 15  # every line of veri_test2.txt
    kws = results["systems"]["projector"]["seeds"]["0"]["kws"]["content"]
    assert kws["mode"] == "speech_commands_v0.01" and kws["n_test"] == 4 + 1  # 4 words + 1 silence slice
    assert kws["classes"][:3] == ["yes", "no", "up"] and len(kws["classes"]) == 12
    paper = yaml.safe_load((work / "runs" / "paper" / "config.yaml").read_text())
    assert paper["model"]["layer"] == 12 and paper["loss"]["orthogonality"] == "cross_covariance_ref"


@pytest.mark.slow
def test_rerun_skips_finished_steps_and_a_changed_config_reruns_from_there(finished):
    config, work, _ = finished
    again = recipe(config)
    assert again.returncode == 0 and "+ intervox" not in again.stdout  # every step has its marker
    assert "every step is done" in again.stdout
    table = recipe(config, "--from", "table")
    assert table.returncode == 0 and "+ intervox" not in table.stdout and "| paper" in table.stdout
    # a third seed changes the train commands: train and every later step are due, nothing before
    dry = recipe(config, "--dry-run", "seeds=3")
    steps = [line[3:] for line in dry.stdout.splitlines() if line.startswith("== ")]
    assert steps == ["train", "eval", "table"]
    assert dry.stdout.count("intervox train --config") == 2 and "'seeds=[0, 1, 2]'" in dry.stdout
    assert (work / "steps" / "train.done").read_text().count("'seeds=[0, 1]'") == 2  # dry: nothing written


def test_missing_corpus_path_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({"work": str(tmp_path / "work"), "libritts": "/nowhere"}))
    out = recipe(config, "--only", "prepare")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: recipe: set voxceleb1=PATH, speechcommands=PATH "
                                  "(each corpus as released)")
