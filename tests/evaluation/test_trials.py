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
