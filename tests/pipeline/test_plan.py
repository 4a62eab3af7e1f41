"""The shard plan: dense blocks, positives, seeded params, packing, hashes (no audio touched)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from intervox.config import load_config
from intervox.corpora.manifest import Utterance
from intervox.errors import ConfigError
from intervox.pipeline.config import BlockConfig, InterventionConfig, ShardsConfig, SourceConfig
from intervox.pipeline.plan import build_plan, plan_summary


def grid(n_speakers: int, n_contents: int, split: str = "train") -> list[Utterance]:
    return [
        Utterance(
            id=f"{split}-{s}-{c}",
            audio=f"{s}_{c}.wav",
            speaker=f"espeak:v{s}",
            text=f"sentence {c}",
            language="en",
            corpus="t",
            content_id=f"c{c:02d}",
            split=split,
        )
        for s in range(n_speakers)
        for c in range(n_contents)
    ]


def config(*ops: dict, **kw: object) -> ShardsConfig:
    ivs = tuple(InterventionConfig(op=o) for o in ops)
    return ShardsConfig(source=SourceConfig(kind="manifest", path="unused"), interventions=ivs, **kw)


def test_dense_grid_gives_full_sub_grids_with_both_positives() -> None:
    plan = build_plan(config({"name": "world_vc"}, {"name": "noise"}), grid(8, 16) + grid(4, 8, "validation"))
    train = [b for b in plan.blocks if b.split == "train"]
    assert len(train) == 4 and all(b.dense and len(b.speakers) == 4 and len(b.contents) == 8 for b in train)
    by_block = defaultdict(list)
    for shard in plan.shards:
        for it in shard.items:
            by_block[(it.split, it.block)].append(it)
    assert len(by_block) == 5
    for items in by_block.values():
        assert len(items) == 32 * 3  # 4 x 8 anchors, each as source + 2 op copies
        for it in items:
            assert any(o.speaker == it.speaker and o.content != it.content for o in items), it.key
            assert any(o.content == it.content and o.speaker != it.speaker for o in items), it.key
        # every slot is itself the s x t sub-grid
        for slot in {it.slot for it in items}:
            cells = {(it.speaker, it.content) for it in items if it.slot == slot}
            assert len(cells) == 32 and len({s for s, _ in cells}) == 4 and len({c for _, c in cells}) == 8


def test_derived_identity_keeps_params_and_label_across_blocks_and_shards() -> None:
    # 4 speakers x 32 sentences: 4 blocks of 4 x 8, one block per shard
    plan = build_plan(config({"name": "world_vc"}, shard_size=64), grid(4, 32))
    derived = defaultdict(list)
    for shard in plan.shards:
        for it in shard.items:
            if it.op:
                derived[it.speaker].append(it)
    assert sorted(derived) == [f"espeak:v{s}~world_vc1" for s in range(4)]  # one identity per base and slot
    for speaker, items in derived.items():
        assert len({str(it.op["params"]) for it in items}) == 1, speaker
        assert len({it.op["seed"][-1] for it in items}) == 1  # one attempt stands for the identity
        assert len({it.content for it in items}) == 32  # says every sentence its base says
        assert len({it.block for it in items}) == 4 and len({it.shard for it in items}) == 4
    assert len({str(v[0].op["params"]) for v in derived.values()}) == 4  # distinct per base
    # the identity's params do not depend on which other speakers the manifest holds
    alone = build_plan(config({"name": "world_vc"}), [u for u in grid(4, 32) if u.speaker == "espeak:v2"])
    params = {str(it.op["params"]) for s in alone.shards for it in s.items if it.op}
    assert params == {str(derived["espeak:v2~world_vc1"][0].op["params"])}


def test_voice_swap_clip_carries_its_target_identity() -> None:
    from intervox.voices.catalog import get_voice

    voices = ["espeak:en-us:m3", "espeak:en-us:f2", "espeak:en-gb"]
    plan = build_plan(config({"name": "voice_swap", "voices": voices}), grid(4, 16))
    items = [it for s in plan.shards for it in s.items]
    swaps = [it for it in items if it.op]
    assert swaps
    for it in swaps:
        target = get_voice(it.op["params"]["voice"])
        assert it.speaker == target.speaker_key and it.speaker != plan.utterances[it.anchor].speaker
        assert it.op["params"]["target_gender"] == target.gender  # the clip's gender is the target's
        assert it.op["params"]["text"] == plan.utterances[it.anchor].text  # the text follows the clip
        assert "clip_seed" in it.op  # params that are not the voice are drawn per clip
    by_base = defaultdict(set)
    for it in swaps:
        by_base[plan.utterances[it.anchor].speaker].add(it.op["params"]["voice"])
    assert all(len(v) == 1 for v in by_base.values())  # one target voice per (base, slot)
    rows = {(e.split, e.id): e for e in plan.identities.rows()}
    assert all(rows[("train", it.speaker)].kind == "engine voice" for it in swaps)


def test_channel_and_content_ops_set_their_labels() -> None:
    plan = build_plan(
        config({"name": "noise"}, {"name": "respeak", "texts": ["one two three", "four five"]}), grid(2, 2)
    )
    items = [it for s in plan.shards for it in s.items]
    src = {it.anchor: it for it in items if it.slot == 0}
    for it in items:
        if it.op and it.op["name"] == "noise":
            assert (it.speaker, it.content, it.channel) == (
                src[it.anchor].speaker,
                src[it.anchor].content,
                "noise1",
            )
            assert it.op["seed"] == [0, 0, it.shard, it.item]
        if it.op and it.op["name"] == "respeak":
            assert it.speaker == src[it.anchor].speaker and it.channel == "clean"
            assert it.content.startswith("t-") and it.text in ("one two three", "four five")
            assert it.source_key == src[it.anchor].key


def test_plan_is_deterministic_and_hash_tracks_config_and_manifest() -> None:
    utts = grid(4, 8)
    a, b = build_plan(config({"name": "noise"}), utts), build_plan(config({"name": "noise"}), utts)
    assert a.plan_hash == b.plan_hash and a.shards == b.shards
    assert build_plan(config({"name": "noise"}, seed=1), utts).plan_hash != a.plan_hash
    assert build_plan(config({"name": "noise"}), utts[:-1]).plan_hash != a.plan_hash
    speaker = config({"name": "world_vc"}, {"name": "voice_swap"})
    c, d = build_plan(speaker, utts), build_plan(speaker, utts)
    assert c.plan_hash == d.plan_hash and c.shards == d.shards
    assert c.identities.decision_hash() == d.identities.decision_hash()
    keys = [it.key for s in a.shards for it in s.items]
    assert len(set(keys)) == len(keys) and all("." not in k for k in keys)
    assert keys[0] == "train-000000-000000"


def test_blocks_are_packed_whole_into_shards() -> None:
    plan = build_plan(config({"name": "noise"}, shard_size=100), grid(8, 16))
    seen = {}
    for shard in plan.shards:
        for it in shard.items:
            assert seen.setdefault(it.block, shard.name) == shard.name  # no block straddles two shards
    assert [len(s.items) for s in plan.shards] == [64, 64, 64, 64]  # 64 + 64 > 100: one block each


def test_sparse_source_forms_speaker_only_blocks() -> None:
    utts = [
        Utterance(
            id=f"u{s}{k}",
            audio="x.wav",
            speaker=f"spk{s}",
            text=f"unique text {s} {k}",
            language="en",
            corpus="t",
            split="train",
        )
        for s in range(5)
        for k in range(10)
    ]
    plan = build_plan(config(block=BlockConfig(speakers=4, contents=8)), utts)
    assert not any(b.dense for b in plan.blocks)
    assert sum(len(b.anchors) for b in plan.blocks) == 50
    assert max(len(b.speakers) for b in plan.blocks) == 4
    assert plan_summary(plan)["train"]["speaker_only_blocks"] == len(plan.blocks)


def test_partly_shared_contents_group_speakers_that_share() -> None:
    # speakers a, b share 4 sentences; c shares nothing: one dense 2x4 block + c alone
    utts = [
        Utterance(
            id=f"{s}{c}",
            audio="x.wav",
            speaker=s,
            text=f"t{c}",
            language="en",
            corpus="t",
            content_id=f"c{c}",
        )
        for s in "ab"
        for c in range(4)
    ]
    utts += [
        Utterance(id=f"c{k}", audio="x.wav", speaker="c", text=f"other {k}", language="en", corpus="t")
        for k in range(3)
    ]
    plan = build_plan(config(block=BlockConfig(speakers=4, contents=8)), utts)
    dense = [b for b in plan.blocks if b.dense]
    assert [(b.speakers, len(b.contents)) for b in dense] == [(("a", "b"), 4)]


def test_unknown_config_key_names_key_and_file(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "bad.yaml"
    path.write_text("shard_size: 8\nblock: {speakers: 2, contnets: 4}\n")
    with pytest.raises(ConfigError, match=r"contnets") as err:
        load_config(path, ShardsConfig)
    assert str(path) in str(err.value)


def test_shipped_configs_load_and_bn_equals_the_lang_override() -> None:
    from intervox.pipeline.run import load_shards_config

    root = Path(__file__).resolve().parents[2] / "configs" / "shards"
    default = load_shards_config(root / "default.yaml")
    # every train voice says every one of >= 32 sentences: dense 16 x 32 batches (tests/corpora/test_synth.py)
    assert default.source.kind == "grid" and default.source.train_speakers == "all"
    assert default.source.train_sentences >= 32
    assert {iv.op["name"] for iv in default.interventions} >= {"praat_gender"}
    assert load_shards_config(root / "bn.yaml") == load_shards_config(
        root / "default.yaml", ["source.lang=bn"]
    )
    ls = load_config(root / "librispeech.yaml", ShardsConfig)
    assert ls.source.kind == "manifest"
