"""Pseudo-speakers: a base voice plus a Praat 'Change gender' timbre recipe is a further identity.

The id alone says how to render it (replay needs nothing else):
    {base_id}~fr{formant_ratio:.3f}~pm{pitch_median_ratio:.3f}~pr{pitch_range:.3f}
e.g. `espeak:en-us:m3~fr1.120~pm0.870~pr1.100`. Rendering synthesises the base, then calls
`intervox.dsp.change_gender(audio, sr, formant_ratio, pitch_median_hz=pm * median_f0(base), pitch_range)`.

Recipe spread of `derive_pseudo_speakers` (why: identities must stay apart, yet remain speech):
- formant ratio in [0.85, 1.20] and pitch-median ratio in [0.70, 1.40], both drawn log-uniform;
  a derived recipe keeps |fr - 1| >= 0.08 and |pm - 1| >= 0.12, so it does not collapse onto its base
  (Resemblyzer cosine to the base measured 0.96 for fr 1.05 / pm 1.09 and 0.93 for fr 0.95 / pm 0.78,
  but 0.67-0.83 for |fr - 1| >= 0.14: the formant ratio carries most of the identity);
- recipes on the same base keep a minimum distance in the normalised (log fr, log pm) plane
  (0.25 of the box side, relaxed step by step if the box is crowded);
- pitch range in [0.80, 1.30] (livelier or flatter intonation; a weaker identity cue).
Praat's formant shift is Change gender's resampling trick, so it also colours the spectrum a
little: that is part of the new identity.

Gender rule (documented, from the id alone): the base's gender, unless the recipe clearly crosses:
m -> f when fr >= 1.10 and pm >= 1.30; f -> m when fr <= 0.90 and pm <= 0.75 (a typical male
median is ~60% of a female one and male formants ~15-20% lower, so both cues must move far).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from intervox.errors import SynthesisError

FORMANT_RANGE = (0.85, 1.20)
PITCH_RANGE = (0.70, 1.40)
PITCH_SPREAD_RANGE = (0.80, 1.30)
MIN_FORMANT_OFFSET = 0.08
MIN_PITCH_OFFSET = 0.12
MIN_RECIPE_DISTANCE = 0.25

_ID = re.compile(r"^(?P<base>[^~]+)~fr(?P<fr>\d+\.\d{3})~pm(?P<pm>\d+\.\d{3})~pr(?P<pr>\d+\.\d{3})$")


@dataclass(frozen=True)
class PseudoRecipe:
    """A timbre transform of a base voice: formant ratio, pitch-median ratio, pitch-range factor."""

    base_id: str
    formant_ratio: float
    pitch_median_ratio: float
    pitch_range: float

    @property
    def id(self) -> str:
        """Return the pseudo-speaker id that encodes this recipe."""
        return (
            f"{self.base_id}~fr{self.formant_ratio:.3f}~pm{self.pitch_median_ratio:.3f}"
            f"~pr{self.pitch_range:.3f}"
        )


def is_pseudo(voice_id: str) -> bool:
    """Return True when `voice_id` names a pseudo-speaker (has a `~` recipe suffix)."""
    return "~" in voice_id


def parse_pseudo_id(voice_id: str) -> PseudoRecipe:
    """Return the recipe encoded in a pseudo-speaker id; SynthesisError when malformed."""
    m = _ID.match(voice_id)
    if not m:
        raise SynthesisError(f"{voice_id}: not a pseudo-speaker id (expected base~frX.XXX~pmX.XXX~prX.XXX)")
    fr, pm, pr = float(m["fr"]), float(m["pm"]), float(m["pr"])
    if not (0.5 <= fr <= 2.0 and 0.3 <= pm <= 3.0 and 0.0 <= pr <= 3.0):
        raise SynthesisError(f"{voice_id}: recipe out of range (fr in [0.5,2], pm in [0.3,3], pr in [0,3])")
    return PseudoRecipe(m["base"], fr, pm, pr)


def pseudo_gender(base_gender: str | None, recipe: PseudoRecipe) -> str | None:
    """Return the gender of a pseudo-speaker by the rule in the module docstring."""
    if base_gender == "m" and recipe.formant_ratio >= 1.10 and recipe.pitch_median_ratio >= 1.30:
        return "f"
    if base_gender == "f" and recipe.formant_ratio <= 0.90 and recipe.pitch_median_ratio <= 0.75:
        return "m"
    return base_gender


def apply_recipe(audio: np.ndarray, sr: int, recipe: PseudoRecipe, text: str = "") -> np.ndarray:
    """Return `audio` (the base voice's rendering) transformed by `recipe` with Praat Change gender."""
    from intervox.dsp import change_gender, median_f0
    from intervox.errors import InterventionError

    f0 = median_f0(audio, sr)
    if not math.isfinite(f0):
        raise SynthesisError(
            f"{recipe.id}: base rendering of {text!r} has no voiced frames (cannot shift pitch)"
        )
    try:
        return change_gender(
            audio,
            sr,
            formant_ratio=recipe.formant_ratio,
            pitch_median_hz=recipe.pitch_median_ratio * f0,
            pitch_range=recipe.pitch_range,
        )
    except InterventionError as exc:
        raise SynthesisError(f"{recipe.id}: change gender failed on {text!r}: {exc}") from exc


def _draw(rng: np.random.Generator, lo: float, hi: float, min_offset: float) -> float:
    while True:
        x = round(float(np.exp(rng.uniform(np.log(lo), np.log(hi)))), 3)  # the id keeps 3 decimals
        if abs(x - 1.0) >= min_offset - 1e-9:
            return x


def _norm(fr: float, pm: float) -> tuple[float, float]:
    return (
        math.log(fr) / math.log(FORMANT_RANGE[1] / FORMANT_RANGE[0]),
        math.log(pm) / math.log(PITCH_RANGE[1] / PITCH_RANGE[0]),
    )


def derive_pseudo_speakers(base_voices: Sequence[str], n: int, seed: int) -> list[str]:
    """Return `n` distinct pseudo-speaker ids over `base_voices` (round robin), deterministic in `seed`."""
    if n <= 0:
        return []
    if not base_voices:
        raise SynthesisError("derive_pseudo_speakers: no base voices given")
    bases = list(base_voices)
    placed: dict[str, list[tuple[float, float]]] = {b: [] for b in bases}
    ids: list[str] = []
    for i in range(n):
        base = bases[i % len(bases)]
        # One stream per (seed, base, slot), so a grid's first k speakers do not depend on n.
        rng = np.random.default_rng([seed, bases.index(base), i // len(bases)])
        min_dist, tries = MIN_RECIPE_DISTANCE, 0
        while True:
            fr = round(_draw(rng, *FORMANT_RANGE, MIN_FORMANT_OFFSET), 3)
            pm = round(_draw(rng, *PITCH_RANGE, MIN_PITCH_OFFSET), 3)
            pr = round(float(rng.uniform(*PITCH_SPREAD_RANGE)), 3)
            p = _norm(fr, pm)
            near = any(math.dist(p, q) < min_dist for q in placed[base])
            recipe_id = PseudoRecipe(base, fr, pm, pr).id
            if not near and recipe_id not in ids:
                break
            tries += 1
            if tries % 50 == 0:  # a crowded box: accept closer recipes rather than loop forever
                min_dist *= 0.7
        placed[base].append(p)
        ids.append(recipe_id)
    return ids
