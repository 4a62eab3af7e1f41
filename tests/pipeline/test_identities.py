"""Speaker identities: one fixed recipe per (base, speaker-op slot), kept only when a judge tells it apart."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import soundfile as sf

from intervox.corpora.manifest import Utterance, write_manifest
from intervox.errors import ConfigError
from intervox.interventions.base import Factor, Intervention
from intervox.interventions.registry import register
from intervox.pipeline.config import IdentitiesConfig, InterventionConfig, ShardsConfig, SourceConfig
from intervox.pipeline.identities import derive_identities
from intervox.pipeline.plan import build_plan

SR = 16000
THRESHOLD = 0.85


@dataclass(frozen=True)
class ToyVoice(Intervention):
    """Test-only speaker op: the output is a tone at a drawn peak level (the toy judge hears the level)."""

    name: ClassVar[str] = "test_toy_voice"
    target: ClassVar[Factor] = Factor.SPEAKER
    keeps_timing: ClassVar[bool] = True

    def sample_params(self, rng: np.random.Generator, utt: Utterance) -> dict:
        return {"level": float(rng.uniform(0.05, 0.95))}

    def apply(self, audio: np.ndarray, sr: int, *, level: float) -> np.ndarray:
        return (level * np.sin(2 * np.pi * 200 * np.arange(audio.size) / sr)).astype(np.float32)


@dataclass(frozen=True)
class LevelJudge:
    """A deterministic judge: the embedding's angle is pi x the clip's peak level."""

    name: ClassVar[str] = "level"
    label: ClassVar[str] = "level judge"

    def embed(self, audio: np.ndarray, sr: int) -> np.ndarray:
        theta = np.pi * float(np.max(np.abs(audio)))
        return np.array([np.cos(theta), np.sin(theta)], dtype=np.float32)


@pytest.fixture
def toy_op() -> Iterator[None]:
    """Register the toy op and the level judge for one test, then remove them."""
    from intervox.interventions import registry
    from intervox.pipeline.identities import SPEAKER_JUDGES

    register(ToyVoice)
    SPEAKER_JUDGES["level"] = LevelJudge
    yield
    registry._REGISTRY.pop(ToyVoice.name, None)
    SPEAKER_JUDGES.pop("level", None)


def tone_manifest(root: Path, levels: dict[str, float], sentences: int = 3) -> Path:
    """Write one tone clip per (speaker, sentence), the speaker's peak level fixed; return the manifest."""
    utts = []
    for speaker, level in levels.items():
        for j in range(sentences):
            path = root / f"{speaker}-{j}.wav"
            t = np.arange(SR) / SR
            sf.write(path, (level * np.sin(2 * np.pi * (150 + 50 * j) * t)).astype(np.float32), SR)
            utts.append(Utterance(id=path.stem, audio=path.name, speaker=speaker, text=f"sentence {j}",
                                  language="en", corpus="t", content_id=f"s{j}", split="train"))
    write_manifest(utts, root / "manifest.jsonl")
    return root / "manifest.jsonl"


def toy_config(manifest: Path, **identities: object) -> ShardsConfig:
    return ShardsConfig(source=SourceConfig(kind="manifest", path=str(manifest)),
                        interventions=(InterventionConfig(op={"name": "test_toy_voice"}),),
                        identities=IdentitiesConfig(**{"judge": "level", **identities}))


def test_identities_are_redrawn_until_the_judge_tells_them_apart(tmp_path, toy_op) -> None:  # noqa: ANN001
    from intervox.corpora.manifest import read_manifest

    manifest = tone_manifest(tmp_path, {"a": 0.1, "b": 0.5, "c": 0.9})
    cfg = toy_config(manifest, max_attempts=12)
    utts = read_manifest(manifest)
    table = derive_identities(cfg, utts, LevelJudge(), audio_root=tmp_path)
    derived = [e for e in table.entries if e.slot is not None]
    assert [e.id for e in derived] == ["a~test_toy_voice1", "b~test_toy_voice1", "c~test_toy_voice1"]
    assert sum(len(e.tries) for e in derived) > 0  # the toy levels leave ~10% of draws acceptable
    kept = [e for e in derived if e.status == "kept"]
    assert kept
    # what the judge hears, recomputed from the params: every kept identity is farther than the
    # threshold from every base and every other kept identity
    theta = {"a": 0.1 * np.pi, "b": 0.5 * np.pi, "c": 0.9 * np.pi}
    theta.update({e.id: e.params["level"] * np.pi for e in kept})
    for e in kept:
        assert e.attempt == len(e.tries)
        assert max(np.cos(theta[e.id] - theta[o]) for o in theta if o != e.id) < THRESHOLD
        assert e.similarity_to_base == pytest.approx(np.cos(theta[e.id] - theta[e.base]), abs=1e-4)
    for e in derived:
        for t in e.tries:  # each rejected draw was too close to its base or to another identity
            assert max(t["similarity_to_base"], t["similarity_to_nearest"]) >= THRESHOLD, t
    for e in table.dropped():
        assert len(e.tries) == 12 and e.attempt == 11
    again = derive_identities(cfg, utts, LevelJudge(), audio_root=tmp_path)
    assert again.decision_hash() == table.decision_hash() and again.entries == table.entries

    plan = build_plan(cfg, utts, table)
    clips = defaultdict(set)
    for shard in plan.shards:
        for it in shard.items:
            if it.op:
                clips[it.speaker].add(json.dumps(it.op["params"]))
                assert it.op["seed"][-1] == table.recipe("train", it.anchor.split("-")[0], 1).attempt
    assert sorted(clips) == sorted(e.id for e in kept)  # a dropped identity has no clips
    assert all(len(v) == 1 for v in clips.values())
    assert plan.plan_hash != build_plan(cfg, utts).plan_hash  # the unmeasured table decides otherwise
    with pytest.raises(ConfigError, match="another config or manifest"):
        build_plan(toy_config(manifest, max_attempts=3), utts, table)


def test_a_threshold_nothing_passes_drops_every_identity_with_its_distances(tmp_path, toy_op) -> None:  # noqa: ANN001
    from intervox.corpora.manifest import read_manifest

    manifest = tone_manifest(tmp_path, {"a": 0.1, "b": 0.6})
    cfg = toy_config(manifest, max_similarity=-1.0, max_attempts=2)
    utts = read_manifest(manifest)
    table = derive_identities(cfg, utts, LevelJudge(), audio_root=tmp_path)
    assert [e.status for e in table.entries if e.slot] == ["dropped", "dropped"]
    for e in table.dropped():
        assert [t["attempt"] for t in e.tries] == [0, 1]
        assert all(t["similarity_to_base"] is not None and "to its base" in t["reason"] for t in e.tries)
    plan = build_plan(cfg, utts, table)
    assert not [it for s in plan.shards for it in s.items if it.op]


def test_judge_none_accepts_the_first_draw_unmeasured(tmp_path, toy_op) -> None:  # noqa: ANN001
    from intervox.corpora.manifest import read_manifest

    manifest = tone_manifest(tmp_path, {"a": 0.1, "b": 0.6})
    utts = read_manifest(manifest)
    table = derive_identities(toy_config(manifest, judge="none"), utts, None)
    assert table.judge == "none" and not table.dropped()
    assert all(e.attempt == 0 and e.similarity_to_base is None for e in table.entries if e.slot)


def test_unknown_judge_is_a_config_error(tmp_path) -> None:  # noqa: ANN001
    from intervox.pipeline.config import validate_config

    cfg = ShardsConfig(identities=IdentitiesConfig(judge="ecapa"))
    with pytest.raises(ConfigError, match="identities.judge 'ecapa'"):
        validate_config(cfg, "x.yaml")


def test_coqui_vc_labels_the_reference_speaker() -> None:
    from intervox.interventions.ops.coqui_vc import CoquiVC

    op = CoquiVC(model="knnvc")
    assert op.output_speaker({"reference": "p225/p225_001.wav"}) == "ref:p225"
    assert op.output_speaker({"reference": "anna.flac"}) == "ref:anna"


def shard_clips(directory: Path) -> list[dict]:
    from intervox.shards.read import decode_sample, iter_tar_samples, list_shards

    return [decode_sample(s) for tar in list_shards(directory) for s in iter_tar_samples(tar)]


@pytest.mark.slow
def test_real_build_identities_resemblyzer_speaker_table(source, write_config, tmp_path) -> None:  # noqa: ANN001
    from intervox.judges.speaker import cosine, embed
    from intervox.pipeline.run import build_shards, load_shards_config
    from intervox.voices.catalog import get_voice

    swap_voices = ["espeak:en-us:Annie", "espeak:en-us:boris"]
    config = write_config(tmp_path / "c.yaml", source, interventions=[
        {"op": {"name": "praat_gender", "formant_ratio": [0.8, 1.22], "min_shift": 0.15}},
        {"op": {"name": "voice_swap", "voices": swap_voices}}],
        identities={"judge": "resemblyzer", "probe_sentences": 2, "max_attempts": 8})
    cfg = load_shards_config(config)
    build_shards(cfg, tmp_path / "out", scheduler="sync", progress=False)
    clips = shard_clips(tmp_path / "out")
    rows = [json.loads(line) for line in (tmp_path / "out" / "speakers.jsonl").read_text().splitlines()]
    # speakers.jsonl rows match the clips in the shards, one row per identity
    per_speaker = defaultdict(list)
    for c in clips:
        per_speaker[(c["json"]["split"], c["json"]["speaker"])].append(c)
    assert {(r["split"], r["id"]): r["clips"] for r in rows} == {k: len(v) for k, v in per_speaker.items()}
    table = json.loads((tmp_path / "out" / "identities.json").read_text())
    derived = [r for r in rows if r["kind"] == "derived voice"]
    assert derived and all(r["judge"] == "resemblyzer" for r in rows)
    for r in derived:  # one recipe, one label, across blocks and shards
        mine = per_speaker[(r["split"], r["id"])]
        assert {json.dumps(c["json"]["op"]["params"], sort_keys=True) for c in mine} == {
            json.dumps(r["recipe"]["params"], sort_keys=True)}
        assert r["similarity_to_base"] < THRESHOLD and r["similarity_to_nearest"] < THRESHOLD
    for c in clips:  # a voice_swap clip carries its target's identity
        op = c["json"]["op"]
        if op and op["name"] == "voice_swap":
            target = get_voice(op["params"]["voice"])
            assert (c["json"]["speaker"], c["json"]["gender"]) == (target.speaker_key, target.gender)
    # the judge, measured again on the written clips (mean embedding per identity), agrees with the table
    mean = {}
    for k, v in per_speaker.items():
        e = np.mean([embed(c["flac"][0], c["flac"][1]) for c in v], axis=0)
        mean[k] = e / np.linalg.norm(e)
    for r in derived:
        sim = cosine(mean[(r["split"], r["id"])], mean[(r["split"], r["base"])])
        assert sim == pytest.approx(r["similarity_to_base"], abs=0.02) and sim < THRESHOLD
    # two identities of one base (its praat_gender copy and its swap target) are apart too
    entries = [e for e in table["entries"] if e["slot"] is not None and e["status"] == "kept"]
    siblings = [(a, b) for a in entries for b in entries if a["base"] == b["base"] and a["slot"] < b["slot"]]
    assert siblings
    for a, b in siblings:
        sim = cosine(mean[("train", a["id"])], mean[("train", b["id"])])
        assert sim < THRESHOLD + 0.02, (a["id"], b["id"], sim)
    dropped = [e for e in table["entries"] if e["status"] == "dropped"]
    card = (tmp_path / "out" / "dataset_card.md").read_text()
    assert "## Speaker identities" in card and all(f"| `{r['id']}` | {r['split']} |" in card for r in rows)
    assert not dropped or f"Dropped after every attempt ({len(dropped)})" in card
    # two judge processes give the same table as one
    from intervox.corpora.manifest import read_manifest
    from intervox.pipeline.identities import IdentityTable, load_judge

    parallel = derive_identities(cfg, read_manifest(source), load_judge("resemblyzer"),
                                 audio_root=source.parent, workers=2)
    assert parallel == IdentityTable.from_dict(table)
    # a second build of the same config: same plan hash, same bytes
    build_shards(cfg, tmp_path / "again", scheduler="sync", progress=False)
    for name in ["speakers.jsonl", *(p.name for p in (tmp_path / "out").glob("*.tar"))]:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "out" / name).read_bytes(), name
    first = json.loads((tmp_path / "out" / "index.json").read_text())
    assert first["plan_hash"] == json.loads((tmp_path / "again" / "index.json").read_text())["plan_hash"]


def test_a_judge_whose_model_is_missing_is_a_config_error(monkeypatch) -> None:  # noqa: ANN001
    from intervox.errors import UpstreamError
    from intervox.judges import models
    from intervox.pipeline.config import validate_config

    def missing() -> Path:
        raise UpstreamError("resemblyzer: pretrained.pt not found")

    monkeypatch.setattr(models, "resemblyzer_weights", missing)
    with pytest.raises(ConfigError, match=r"x.yaml: identities.judge 'resemblyzer' is not usable here.*"
                                          r"pretrained.pt.*identities.judge: none"):
        validate_config(ShardsConfig(), "x.yaml")
    validate_config(ShardsConfig(identities=IdentitiesConfig(judge="none")), "x.yaml")


def test_close_source_voices_stay_different_speakers(tmp_path, toy_op) -> None:  # noqa: ANN001
    from intervox.corpora.manifest import read_manifest

    manifest = tone_manifest(tmp_path, {"a": 0.1, "b": 0.15, "c": 0.9})  # the judge hears a ~ b (0.99)
    utts = read_manifest(manifest)
    table = derive_identities(toy_config(manifest, max_attempts=12), utts, LevelJudge(), audio_root=tmp_path)
    rows = {e.id: e for e in table.rows()}
    assert rows["a"].nearest == "b" and rows["a"].similarity_to_nearest >= THRESHOLD
    # the manifest says a and b are two speakers: they remain a non-target pair; only op copies are excluded
    assert rows["a"].indistinct_from == () and rows["b"].indistinct_from == ()
    assert table.indistinct_pairs() == set()
