"""Pseudo-speakers: ids resolve from the id alone, recipes spread, and the pitch moves as asked."""

from __future__ import annotations

import pytest

from intervox.dsp import median_f0
from intervox.errors import SynthesisError
from intervox.voices import derive_pseudo_speakers, get_voice, parse_pseudo_id, synthesize
from intervox.voices.pseudo import (
    FORMANT_RANGE,
    MIN_FORMANT_OFFSET,
    MIN_PITCH_OFFSET,
    PITCH_RANGE,
    PseudoRecipe,
    pseudo_gender,
)


def test_id_round_trip() -> None:
    r = PseudoRecipe("espeak:en-us:m3", 1.12, 0.87, 1.1)
    assert r.id == "espeak:en-us:m3~fr1.120~pm0.870~pr1.100"
    assert parse_pseudo_id(r.id) == r
    info = get_voice(r.id)
    assert info.speaker_key == r.id and info.engine == "espeak" and info.languages == ("en",)
    assert info.sample_rate == 22050
    for bad in ("espeak:en-us:m3~fr1.1", "espeak:en-us:m3~fr9.000~pm1.000~pr1.000", "x~pm1.000"):
        with pytest.raises(SynthesisError):
            parse_pseudo_id(bad)


def test_gender_rule() -> None:
    assert pseudo_gender("m", PseudoRecipe("b", 1.15, 1.35, 1.0)) == "f"
    assert pseudo_gender("m", PseudoRecipe("b", 1.15, 1.20, 1.0)) == "m"
    assert pseudo_gender("f", PseudoRecipe("b", 0.88, 0.72, 1.0)) == "m"
    assert pseudo_gender(None, PseudoRecipe("b", 1.2, 1.4, 1.0)) is None
    assert get_voice("flite:slt~fr0.870~pm0.700~pr1.000").gender == "m"


@pytest.mark.parametrize(
    "lang_bases",
    [("en", ["espeak:en-us:m3", "flite:awb", "espeak:en-gb:f1"]), ("bn", ["espeak:bn", "espeak:bn:f2"])],
)
@pytest.mark.parametrize("n", [32, 64])
def test_derive_grid_is_deterministic_distinct_and_spread(lang_bases: tuple, n: int) -> None:
    lang, bases = lang_bases
    ids = derive_pseudo_speakers(bases, n, seed=3)
    assert ids == derive_pseudo_speakers(bases, n, seed=3)
    assert ids != derive_pseudo_speakers(bases, n, seed=4)
    assert len(set(ids)) == n
    assert derive_pseudo_speakers(bases, 8, seed=3) == ids[:8]  # a prefix does not depend on n
    for i in ids:
        r = parse_pseudo_id(i)
        assert r.base_id in bases
        assert (
            FORMANT_RANGE[0] <= r.formant_ratio <= FORMANT_RANGE[1]
            and abs(r.formant_ratio - 1) >= MIN_FORMANT_OFFSET - 1e-9
        )
        assert (
            PITCH_RANGE[0] <= r.pitch_median_ratio <= PITCH_RANGE[1]
            and abs(r.pitch_median_ratio - 1) >= MIN_PITCH_OFFSET - 1e-9
        )
        assert get_voice(i).languages == (lang,)


@pytest.mark.parametrize("ratio", [0.8, 1.3])
def test_rendered_pitch_moves_by_the_ratio(ratio: float) -> None:
    text = "The quiet farmer carried seven baskets across the bridge."
    base, sr = synthesize(text, "espeak:en-us:m3")
    out, sr2 = synthesize(text, f"espeak:en-us:m3~fr1.100~pm{ratio:.3f}~pr1.000")
    assert sr2 == sr and len(out) == len(base)
    assert median_f0(out, sr) / median_f0(base, sr) == pytest.approx(ratio, rel=0.10)


def test_unvoiced_base_cannot_make_a_pseudo_speaker() -> None:
    with pytest.raises(SynthesisError, match="no voiced frames"):
        synthesize("Seven sheep sat still.", "espeak:en-us:whisper~fr1.100~pm1.200~pr1.000")
