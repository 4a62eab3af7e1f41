"""The voice catalog: every voice of every installed engine, with ids and speaker keys.

Ids are `engine:name[:variant]` (`espeak:en-us:m3`, `flite:slt`, `piper:joe`) or a
pseudo-speaker id (`<base id>~fr..~pm..~pr..`, see pseudo.py). A `speaker_key` names the
person behind a voice: two voices with equal keys must never sit on both sides of a
train / held-out split, and count once when counting speakers.
"""

from __future__ import annotations

import dataclasses
import functools

from intervox.errors import SynthesisError
from intervox.voices.engines import ENGINES
from intervox.voices.engines.base import VoiceInfo, iso_base
from intervox.voices.pseudo import is_pseudo, parse_pseudo_id, pseudo_gender

__all__ = [
    "VoiceInfo",
    "SAME_SPEAKER",
    "ESPEAK_SAME_VARIANT",
    "ESPEAK_VARIANT_GROUPS",
    "ESPEAK_VARIANT_GENDER",
    "list_voices",
    "engine_status",
    "get_voice",
    "speaker_key_of",
    "gender_of",
]

# Voices of different engines that are the same recorded person. Measured with Resemblyzer
# (mean of 3 sentences per voice, 16 kHz): cosine of the pair shown.
SAME_SPEAKER: dict[str, str] = {
    "flite:kal16": "person:kal",  # ~ festival kal_diphone, cosine 0.90 (CMU "kal" diphone speaker)
    "festival:kal_diphone": "person:kal",
    "flite:slt": "person:slt",  # ~ festival slt HTS, cosine 0.87 (CMU ARCTIC "slt")
    "festival:cmu_us_slt_arctic_hts": "person:slt",
    "flite:awb": "person:awb",  # festival awb/rms clustergen voices, when installed, are these people
    "festival:cmu_us_awb_cg": "person:awb",
    "flite:rms": "person:rms",
    "festival:cmu_us_rms_cg": "person:rms",
    # Kokoro's Japanese styles speaking English. Resemblyzer, mean of 3 sentences vs 3 other sentences:
    # gongitsune ~ nezumi 0.867, inside the band of the same-person pairs above measured the same way
    # (slt 0.840, kal 0.899); every other kokoro/hibari pair measures 0.51-0.85 (next: nezumi ~
    # tebukuro 0.847, then <= 0.78), and hibari heart is <= 0.74 from every style and every other voice.
    "kokoro:jf_gongitsune": "kokoro:jf_gongitsune",
    "kokoro:jf_nezumi": "kokoro:jf_gongitsune",
}

# espeak-ng lists a variant whose file has no `gender` line as male. Two of them are not heard as men:
# zac (pitch 240-390, formants x1.45; median F0 352 Hz) and shelby (median F0 180 Hz); the 7 voices
# Resemblyzer puts nearest to each are female variants (and each other). Median F0 of the other
# variants without a gender line: 67-151 Hz; of the female variants: 173-271 Hz.
ESPEAK_VARIANT_GENDER: dict[str, str] = {"zac": "f", "shelby": "f"}

# espeak-ng variants that are one speaker. Measured once on en-us (Resemblyzer, mean embedding of
# 3 sentences, 102 voices): groups are the connected components of pairs with cosine >= 0.93, the
# level of the known same-person pairs above (0.87-0.93) and of m1 ~ m3 (0.94); pairs across the
# groups measure <= 0.93, and 47 of the variants are mutually below 0.85. Keys: the group's first name.
ESPEAK_VARIANT_GROUPS: tuple[tuple[str, ...], ...] = (
    (
        "default",
        "Alex",
        "Mike",
        "Mr",
        "croak",
        "fast",
        "grandpa",
        "john",
        "m1",
        "m2",
        "m3",
        "m4",
        "m5",
        "m6",
        "max",
    ),  # espeak's default voice with small formant/pitch edits; fast only changes the rate
    ("adam", "caleb", "klatt", "klatt2", "klatt6"),
    ("aunty", "f3", "f4", "linda"),
    ("benjamin", "edward2"),
    ("Diogo", "Henrique", "Hugo", "michel", "miguel"),
    ("Gene", "Gene2"),
    ("Mario", "Michael", "gustave"),
    ("iven", "iven2", "iven3", "iven4"),
    ("RicishayMax2", "RicishayMax3"),
    ("rob", "robert"),
    ("klatt4", "klatt5", "robosoft3"),
    ("m8", "robosoft4", "robosoft5", "robosoft7"),
    ("steph", "steph2", "steph3"),
    ("anika", "anikaRobot"),
    ("f2", "f5"),
)
ESPEAK_SAME_VARIANT: dict[str, str] = {v: g[0] for g in ESPEAK_VARIANT_GROUPS for v in g}


def _espeak_key(info: VoiceInfo) -> str:
    # A variant fixes the timbre (formants, pitch); the language voice changes pronunciation, so the
    # accents of one language are one speaker: en-us+X vs en-gb / en-gb-x-rp / en-gb-scotland / en-029 +X
    # measure 0.92-0.975 for X in default, m3, m7, f1, f2 (merging is the safe side: cleaner splits).
    variant = info.variant or "default"
    return f"espeak:{iso_base(info.name)}:{ESPEAK_SAME_VARIANT.get(variant, variant)}"


def gender_of(info: VoiceInfo) -> str | None:
    """Return the gender of a (non-pseudo) voice: the engine's, corrected by the measured table above."""
    if info.engine == "espeak" and info.variant in ESPEAK_VARIANT_GENDER:
        return ESPEAK_VARIANT_GENDER[info.variant]
    return info.gender


def speaker_key_of(info: VoiceInfo) -> str:
    """Return the speaker key of a (non-pseudo) voice by the tables above."""
    if info.id in SAME_SPEAKER:
        return SAME_SPEAKER[info.id]
    if info.engine == "espeak":
        return _espeak_key(info)
    return info.speaker_key


@functools.lru_cache(maxsize=1)
def _catalog() -> tuple[tuple[VoiceInfo, ...], dict[str, str]]:
    status: dict[str, str] = {}
    voices: list[VoiceInfo] = []
    for name, engine in ENGINES.items():
        try:
            status[name] = engine.status()
            found = engine.voices() if status[name] == "ok" else []
        except Exception as exc:  # an engine that breaks while listing is reported, never fatal
            status[name], found = f"listing voices failed: {exc}", []
        if status[name] == "ok" and not found:
            status[name] = "no voices found"
        voices += [
            dataclasses.replace(v, speaker_key=speaker_key_of(v), gender=gender_of(v)) for v in found
        ]
    return tuple(voices), status


@functools.lru_cache(maxsize=1)
def _by_id() -> dict[str, VoiceInfo]:
    return {v.id: v for v in _catalog()[0]}


def refresh() -> None:
    """Forget the cached catalog (after installing an engine, or in tests that hide one)."""
    _catalog.cache_clear()
    _by_id.cache_clear()
    for engine in ENGINES.values():
        for attr in ("installed", "languages", "variants", "klatt_variants"):
            fn = getattr(engine, attr, None)
            if hasattr(fn, "cache_clear"):
                fn.cache_clear()


def list_voices(lang: str | None = None) -> list[VoiceInfo]:
    """Return every installed voice, or those speaking `lang` (ISO base code: en, bn; en-us works too)."""
    voices = _catalog()[0]
    return list(voices) if lang is None else [v for v in voices if v.speaks(lang)]


def engine_status() -> dict[str, str]:
    """Return engine name -> "ok" or the reason it is unavailable here."""
    return dict(_catalog()[1])


def get_voice(voice_id: str) -> VoiceInfo:
    """Return the VoiceInfo of `voice_id` (pseudo ids too); SynthesisError names an unknown id or engine."""
    if is_pseudo(voice_id):
        recipe = parse_pseudo_id(voice_id)
        base = get_voice(recipe.base_id)
        return dataclasses.replace(
            base, id=voice_id, gender=pseudo_gender(base.gender, recipe), speaker_key=voice_id
        )
    info = _by_id().get(voice_id)
    if info is not None:
        return info
    engine = voice_id.split(":", 1)[0]
    status = engine_status().get(engine)
    if status is None:
        raise SynthesisError(f"{voice_id}: unknown engine {engine!r} (known: {', '.join(ENGINES)})")
    if status != "ok":
        raise SynthesisError(f"{voice_id}: engine {engine} unavailable: {status}")
    raise SynthesisError(f"{voice_id}: no such voice in engine {engine} (see `intervox voices list`)")
