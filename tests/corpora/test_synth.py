"""The dense synthetic grid: splits, manifests, quarantine, resumability, English and Bengali."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from intervox.corpora.manifest import read_manifest, validate_manifest
from intervox.corpora.synth import GridItem, GridSpec, plan_grid, render_plan, synth_grid
from intervox.errors import ConfigError
from intervox.voices import get_voice

TINY = dict(
    train_speakers=4,
    train_sentences=6,
    val_speakers=2,
    val_sentences=2,
    ood_voices=2,
    keyword_voices=2,
    keyword_repeats=1,
    seed=1,
)
N_KEYWORDS = 16  # 10 commands + 6 auxiliary words


def _keys(voices: list[str]) -> set[str]:
    return {get_voice(v).speaker_key for v in voices} | {
        get_voice(v.split("~")[0]).speaker_key for v in voices
    }


@pytest.mark.parametrize("lang", ["en", "bn"])
def test_plan_holds_speakers_sentences_and_engines_out(lang: str) -> None:
    plan = plan_grid(GridSpec(lang=lang, **TINY))
    assert plan == plan_grid(GridSpec(lang=lang, **TINY))
    sp, se = plan.speakers, plan.sentences
    assert (len(sp["train"]), len(sp["validation"]), len(sp["test_ood"])) == (4, 2, 2)
    assert len(plan.items) == 4 * 6 + 2 * 2 + 2 * 2 + 2 * N_KEYWORDS
    train_keys = _keys(sp["train"])
    for held in ("validation", "test_ood", "keywords"):
        assert not train_keys & _keys(sp[held]), held  # no held-out person (nor its base) trains
    assert not set(se["train"]) & set(se["validation"]) and se["test_ood"] == se["validation"]
    assert not set(se["train"].values()) & set(se["validation"].values())
    train_engines = {get_voice(v).engine for v in sp["train"]}
    ood_engines = {get_voice(v).engine for v in sp["test_ood"]}
    if lang == "en":
        assert train_engines == {"espeak", "flite"} and not ood_engines & train_engines
    else:
        from intervox.voices.engines.espeak import klatt_variants

        assert {get_voice(v).variant for v in sp["test_ood"]} <= klatt_variants()
        assert not {get_voice(v.split("~")[0]).variant for v in sp["train"]} & klatt_variants()
    assert all("." not in it.id for it in plan.items) and len({it.id for it in plan.items}) == len(plan.items)


ROOT = Path(__file__).resolve().parents[2]


def _default_spec(lang: str = "en", config: str = "default.yaml") -> GridSpec:
    """The GridSpec `intervox shards build` makes of configs/shards/<config> (as pipeline/run.py does)."""
    from intervox.config import to_plain
    from intervox.pipeline.run import load_shards_config

    cfg = load_shards_config(ROOT / "configs/shards" / config, [f"source.lang={lang}"])
    names = {f.name for f in dataclasses.fields(GridSpec)}
    return GridSpec(**{k: v for k, v in to_plain(cfg.source).items() if k in names})


def test_default_plan_uses_every_voice_in_speaker_disjoint_splits() -> None:
    from intervox.corpora.synth import ESPEAK_SKIP
    from intervox.voices import list_voices

    plan = plan_grid(_default_spec("en"))
    sp = plan.speakers
    assert not any("~" in v for s in ("train", "validation", "test_ood") for v in sp[s])  # base voices only
    keys = {s: {get_voice(v).speaker_key for v in sp[s]} for s in ("train", "validation", "test_ood")}
    assert len(keys["train"]) == len(sp["train"]) and not keys["train"] & keys["validation"]
    assert not (keys["train"] | keys["validation"]) & keys["test_ood"]
    # Every distinct English voice is used, except the whispered and noise variants.
    unusable = {v.speaker_key for v in list_voices("en") if v.engine == "espeak" and v.variant in ESPEAK_SKIP}
    assert set().union(*keys.values()) == {v.speaker_key for v in list_voices("en")} - unusable
    engines = {s: {get_voice(v).engine for v in sp[s]} for s in sp}
    assert engines["train"] == {"espeak", "flite"} and engines["validation"] <= engines["train"]
    assert engines["test_ood"] >= {"festival", "piper", "hibari", "kokoro"}
    assert not engines["test_ood"] & engines["train"]
    for split in ("validation", "test_ood"):
        genders = [get_voice(v).gender for v in sp[split]]
        assert len(sp[split]) >= 8 and genders.count("f") >= 2 and genders.count("m") >= 2, split
    assert {get_voice(v).gender for v in sp["keywords"]} == {"f", "m"}
    # Dense train grid: every train voice says every one of >= 32 train sentences.
    train = {(it.voice, it.content_id) for it in plan.items if it.split == "train"}
    assert len(plan.sentences["train"]) >= 32
    assert len(train) == len(sp["train"]) * len(plan.sentences["train"]) and len(sp["train"]) >= 40


def test_sentences_per_voice_gives_each_voice_one_group_of_the_train_sentences() -> None:
    grouped = {**TINY, "train_speakers": 5, "train_sentences": 6, "sentences_per_voice": 2}
    plan = plan_grid(GridSpec(**grouped))
    train = [it for it in plan.items if it.split == "train"]
    said = {v: {it.content_id for it in train if it.voice == v} for v in plan.speakers["train"]}
    groups = sorted({tuple(sorted(s)) for s in said.values()})
    assert len(plan.sentences["train"]) == 6 and all(len(s) == 2 for s in said.values())
    # 3 disjoint groups covering every sentence; voices 0 and 3 share group 0, 1 and 4 group 1
    assert len(groups) == 3 and sorted(c for g in groups for c in g) == sorted(plan.sentences["train"])
    order = plan.speakers["train"]
    assert said[order[0]] == said[order[3]] and said[order[1]] == said[order[4]]
    assert said[order[0]] != said[order[1]]
    # held-out splits stay dense: every validation voice says every held-out sentence
    val = {(it.voice, it.content_id) for it in plan.items if it.split == "validation"}
    assert len(val) == len(plan.speakers["validation"]) * len(plan.sentences["validation"])
    dense = plan_grid(GridSpec(**{**TINY, "train_speakers": 5, "train_sentences": 6}))
    assert len([it for it in dense.items if it.split == "train"]) == 30


@pytest.mark.parametrize("per_voice", [4, 0, 7])
def test_sentences_per_voice_must_divide_the_train_sentences(per_voice: int) -> None:
    from intervox.pipeline.run import load_shards_config

    with pytest.raises(ConfigError, match="sentences_per_voice"):
        plan_grid(GridSpec(**{**TINY, "sentences_per_voice": per_voice}))
    with pytest.raises(ConfigError, match="source.sentences_per_voice: must divide train_sentences"):
        load_shards_config(ROOT / "configs/shards/default.yaml",
                           ["source.train_sentences=6", f"source.sentences_per_voice={per_voice}"])


def test_paper_size_is_one_make_variable_away() -> None:
    import subprocess

    plan = plan_grid(_default_spec("en", "paper.yaml"))
    train = {(it.voice, it.content_id) for it in plan.items if it.split == "train"}
    assert len(plan.speakers["train"]) == 32 and len(plan.sentences["train"]) == 256
    assert len(train) == len(set(plan.sentences["train"].values())) * 32 == 8192  # dense, distinct texts
    assert plan.speakers["train"] == plan_grid(_default_spec("en")).speakers["train"][:32]
    make = ["make", "-s", "--no-print-directory", "--eval", "print-%: ; @echo $($*)"]
    out = subprocess.run([*make, "print-SHARDS_CFG", "print-SHARDS_DIR", "size=paper"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["configs/shards/paper.yaml source.lang=en", "shards/en-paper"]


def test_default_plan_adapts_to_a_language_without_other_engines() -> None:
    from intervox.voices.engines.espeak import klatt_variants

    plan = plan_grid(_default_spec("bn"))
    sp = plan.speakers
    assert {get_voice(v).engine for s in sp for v in sp[s]} == {"espeak"}
    assert {get_voice(v).variant for v in sp["test_ood"]} <= klatt_variants()
    assert not {get_voice(v).variant for v in sp["train"] + sp["validation"]} & klatt_variants()
    keys = [{get_voice(v).speaker_key for v in sp[s]} for s in ("train", "validation", "test_ood")]
    assert sum(map(len, keys)) == len(set().union(*keys)) and len(keys[0]) >= 32
    assert {get_voice(v).gender for v in sp["validation"]} == {"f", "m"}


def test_numbers_pad_with_pseudo_speakers_and_all_takes_the_pool() -> None:
    spec = GridSpec(lang="en", train_speakers="all", train_sentences=2, val_speakers=2, val_sentences=1,
                    ood_voices="all", keyword_voices=2, seed=1)
    every = plan_grid(spec).speakers
    few = plan_grid(dataclasses.replace(spec, train_speakers=5, ood_voices=3)).speakers
    assert few["train"] == every["train"][:5] and few["test_ood"] == every["test_ood"][:3]
    many = plan_grid(dataclasses.replace(spec, ood_voices=len(every["test_ood"]) + 2)).speakers["test_ood"]
    assert many[: len(every["test_ood"])] == every["test_ood"] and all("~" in v for v in many[-2:])
    with pytest.raises(ConfigError, match="train_speakers must be a number or 'all'"):
        plan_grid(dataclasses.replace(spec, train_speakers="most"))


@pytest.mark.slow
@pytest.mark.parametrize("lang", ["en", "bn"])
def test_tiny_grid_renders_and_validates(lang: str, tmp_path: Path) -> None:
    spec = GridSpec(lang=lang, **TINY)
    manifest = synth_grid(spec, tmp_path, workers=2)
    assert validate_manifest(manifest) == []
    utts = read_manifest(manifest)
    grid = json.loads((tmp_path / "grid.json").read_text(encoding="utf-8"))
    c = grid["counts"]
    assert c["planned"] == c["written"] + c["quarantined"] == len(plan_grid(spec).items)
    assert c["written"] == len(utts) and c["quarantined"] == 0, (tmp_path / "quarantine.jsonl").read_text()
    assert {u.split for u in utts} == {"train", "validation", "test_ood", "keywords"}
    for u in utts:
        assert u.corpus == "intervox-grid" and u.language == lang and u.sample_rate == 16000
        assert u.duration > 0.1 and u.gender in ("m", "f") and "." not in u.id
        assert (u.content_id.startswith("kw-")) == (u.split == "keywords")
    assert {u.content_id for u in utts if u.split == "keywords"} >= {"kw-yes", "kw-stop", "kw-go"}
    import soundfile as sf

    info = sf.info(str(tmp_path / utts[0].audio))
    assert info.samplerate == 16000 and info.channels == 1 and info.format == "FLAC"
    # Resumable: a second run renders nothing and writes the same manifest.
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").iterdir()}
    before = manifest.read_text(encoding="utf-8")
    synth_grid(spec, tmp_path, workers=1)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "audio").iterdir()} == mtimes
    assert manifest.read_text(encoding="utf-8") == before


def test_failed_synthesis_is_quarantined_and_counts_reconcile(tmp_path: Path) -> None:
    plan = plan_grid(GridSpec(lang="en", **TINY))
    items = tuple(it for it in plan.items if it.split == "train" and it.voice.startswith("espeak"))[:3]
    bad = GridItem("train-v999-en-s0000", "espeak:no-such-voice", items[0].text, items[0].content_id, "train")
    manifest = render_plan(dataclasses.replace(plan, items=items + (bad,)), tmp_path, workers=1)
    q = [json.loads(line) for line in (tmp_path / "quarantine.jsonl").read_text().splitlines()]
    assert [e["item"] for e in q] == [bad.id]
    assert (
        q[0]["stage"] == "synth"
        and "espeak:no-such-voice" in q[0]["reason"]
        and "no such voice" in q[0]["reason"]
    )
    assert len(read_manifest(manifest)) == 3 and validate_manifest(manifest) == []
    assert json.loads((tmp_path / "grid.json").read_text())["counts"] == {
        "planned": 4,
        "written": 3,
        "quarantined": 1,
    }


@pytest.mark.slow
def test_cli_synth_with_text_file_and_validate(tmp_path: Path) -> None:
    from intervox.cli import cli

    text = tmp_path / "mine.txt"
    text.write_text(
        "\n".join(f"Sentence number {w} is short and plain." for w in ["one", "two", "three", "four", "five"])
        + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "grid"
    runner = CliRunner()
    args = [
        "corpus",
        "synth",
        "--lang",
        "en",
        "--voices",
        "1",
        "--sentences",
        "3",
        "--out",
        str(out),
        "--text",
        str(text),
        "--workers",
        "1",
    ]
    too_few = runner.invoke(cli, args[:-4] + ["--text", str(text), "--sentences", "4", "--workers", "1"])
    assert isinstance(too_few.exception, Exception) and "grid needs 6" in str(too_few.exception)
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "0 quarantined" in result.output
    texts = {u.text for u in read_manifest(out / "manifest.jsonl") if u.split == "train"}
    assert texts == {f"Sentence number {w} is short and plain." for w in ["one", "two", "three"]}
    ok = runner.invoke(cli, ["corpus", "validate", str(out / "manifest.jsonl")])
    assert ok.exit_code == 0 and "ok," in ok.output
    (out / "audio" / read_manifest(out / "manifest.jsonl")[0].audio.split("/")[-1]).unlink()
    broken = runner.invoke(cli, ["corpus", "validate", str(out / "manifest.jsonl")])
    assert broken.exit_code != 0 and "does not exist" in broken.output


def test_keyword_voices_all_takes_held_out_and_ood_voices():
    """`keyword_voices: all`: every held-out base and every test_ood voice says the keywords."""
    spec = GridSpec(lang="en", train_speakers=4, train_sentences=2, val_speakers=2, val_sentences=2,
                    ood_voices="all", keyword_voices="all", seed=0)
    plan = plan_grid(spec)
    kw = plan.speakers["keywords"]
    assert set(plan.speakers["test_ood"]) <= set(kw)
    assert set(plan.speakers["validation"]) <= set(kw)
    assert not set(kw) & set(plan.speakers["train"])
    assert all("~" not in v for v in kw)  # distinct people, no pseudo-speaker of another voice
    n_words = len(plan.sentences["keywords"])
    assert sum(1 for it in plan.items if it.split == "keywords") == len(kw) * n_words
