"""Trial lists: VoxCeleb1 veri_test2 parsing and seeded, balanced, text-independent generation."""

from __future__ import annotations

import pytest

from intervox.errors import IntervoxError
from intervox.evaluation.trials import Trial, make_trials, parse_trials, write_trials

VERI_TEST2 = """1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav
0 id10270/x6uYqmx31kE/00001.wav id10300/ize_eiCFEg0/00003.wav

1 id10270/x6uYqmx31kE/00001.wav id10270/GWXujl-xAVM/00017.wav
"""


def test_parse_veri_test2_lines(tmp_path):
    p = tmp_path / "veri_test2.txt"
    p.write_text(VERI_TEST2)
    trials = parse_trials(p)
    assert trials == [
        Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/8jEAjG6SegY/00008.wav"),
        Trial(0, "id10270/x6uYqmx31kE/00001.wav", "id10300/ize_eiCFEg0/00003.wav"),
        Trial(1, "id10270/x6uYqmx31kE/00001.wav", "id10270/GWXujl-xAVM/00017.wav"),
    ]
    assert parse_trials(write_trials(trials, tmp_path / "out.txt")) == trials


def test_malformed_trial_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.txt"
    p.write_text("1 a b\n2 a c\n")
    with pytest.raises(IntervoxError, match=r"bad.txt:2"):
        parse_trials(p)
    with pytest.raises(IntervoxError, match="does not exist"):
        parse_trials(tmp_path / "missing.txt")


def grid(n_spk=5, n_con=4):
    keys, spk, con = [], [], []
    for s in range(n_spk):
        for c in range(n_con):
            keys.append(f"k{s}-{c}")
            spk.append(f"s{s}")
            con.append(f"c{c}")
    return keys, spk, con


def test_make_trials_balanced_deterministic_text_independent():
    keys, spk, con = grid()
    speaker = dict(zip(keys, spk, strict=True))
    content = dict(zip(keys, con, strict=True))
    trials = make_trials(keys, spk, n_per_class=20, seed=3, contents=con, salt="validation")
    labels = [t.label for t in trials]
    assert labels.count(1) == labels.count(0) == 20
    for t in trials:
        assert (speaker[t.enroll] == speaker[t.test]) == bool(t.label)
        assert content[t.enroll] != content[t.test]
        assert t.enroll != t.test
    assert len({(t.enroll, t.test) for t in trials}) == len(trials)
    # Same seed, shuffled input order: same list. Other seed: another list.
    order = list(reversed(range(len(keys))))
    again = make_trials([keys[i] for i in order], [spk[i] for i in order], n_per_class=20, seed=3,
                        contents=[con[i] for i in order], salt="validation")
    assert again == trials
    assert make_trials(keys, spk, n_per_class=20, seed=4, contents=con, salt="validation") != trials


def test_make_trials_caps_at_available_target_pairs_and_refuses_impossible_sets():
    keys, spk, con = grid(n_spk=3, n_con=2)  # 3 speakers x 1 pair each of different content
    trials = make_trials(keys, spk, n_per_class=100, seed=0, contents=con)
    assert sum(t.label for t in trials) == 3 and len(trials) == 6
    with pytest.raises(IntervoxError, match="2 speakers"):
        make_trials(["a", "b"], ["s", "s"], n_per_class=5, seed=0)


def test_identities_the_judge_cannot_tell_apart_are_never_non_target(tmp_path):
    import json

    from intervox.evaluation.trials import identity_trial_rule

    keys, spk, con = grid(n_spk=4, n_con=6)
    close = {"s0": ["s1"], "s1": ["s0"]}  # the judge cannot tell s0 from s1
    rows = [{"id": f"s{i}", "indistinct_from": close.get(f"s{i}", [])} for i in range(4)]
    (tmp_path / "speakers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = {"identities": {"judge": "resemblyzer", "judge_label": "Resemblyzer", "max_similarity": 0.85}}
    (tmp_path / "index.json").write_text(json.dumps(index))
    rule = identity_trial_rule(tmp_path)
    assert rule.indistinct == {frozenset(("s0", "s1"))}
    assert rule.text.startswith("non-target pairs exclude identities closer than 0.85 (Resemblyzer")
    speaker = dict(zip(keys, spk, strict=True))
    free = make_trials(keys, spk, n_per_class=60, seed=0, contents=con)
    assert any({speaker[t.enroll], speaker[t.test]} == {"s0", "s1"} for t in free if t.label == 0)
    ruled = make_trials(keys, spk, n_per_class=60, seed=0, contents=con, indistinct=rule.indistinct)
    non = [t for t in ruled if t.label == 0]
    assert len(non) == 60 and not any({speaker[t.enroll], speaker[t.test]} == {"s0", "s1"} for t in non)
    assert identity_trial_rule(tmp_path / "no-table").text.endswith("(no speaker table)")
    (tmp_path / "speakers.jsonl").write_text('{"id": "s0"}\nnot json\n')
    with pytest.raises(IntervoxError, match=r"speakers.jsonl:2"):
        identity_trial_rule(tmp_path)


def test_evaluation_builds_trials_by_the_speaker_table_and_says_so(tmp_path):
    import json

    from evalfixtures import World, grid_split, write_feature_dir

    from intervox.evaluation.config import EvalConfig
    from intervox.evaluation.data import audio_shard_dir, load_split
    from intervox.evaluation.run import System, evaluate_systems, layer_system
    from intervox.evaluation.trials import identity_trial_rule

    speakers = [("vm1", "m"), ("vm2", "m"), ("vf1", "f")]
    clips = grid_split("validation", speakers, [f"s{i}" for i in range(5)])
    features = write_feature_dir(tmp_path / "features", World(0), {"validation": clips})
    audio = tmp_path / "audio"
    audio.mkdir()
    (features / "index.json").write_text(json.dumps({"features": {"source_dir": str(audio)}}))
    # the judge heard vm1 and its op copy vm1~p1 as one voice
    rows = [{"id": "vm1", "indistinct_from": ["vm1~p1"]}, {"id": "vm1~p1", "indistinct_from": ["vm1"]}]
    (audio / "speakers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (audio / "index.json").write_text(json.dumps({"identities": {
        "judge": "resemblyzer", "judge_label": "Resemblyzer", "max_similarity": 0.85}}))
    rule = identity_trial_rule(audio_shard_dir(features))
    fs = load_split(features, "validation")
    cfg = EvalConfig(sv_splits=("validation",), sv_trials_per_class=150, kws_split=None, probe_epochs=1,
                     embed_points=50, layer_baselines=False)
    results = evaluate_systems([System("layer1", layer_system(1))], {"validation": fs}, None, cfg, tmp_path,
                               rule)
    assert results["trials_rule"] == rule.text and "closer than 0.85 (Resemblyzer" in rule.text
    speaker = dict(zip(fs.keys, fs.values("speaker"), strict=True))
    trials = parse_trials(tmp_path / "trials_validation.txt")
    assert sum(1 - t.label for t in trials) == 150
    assert not any({speaker[t.enroll], speaker[t.test]} == {"vm1", "vm1~p1"} for t in trials if t.label == 0)
