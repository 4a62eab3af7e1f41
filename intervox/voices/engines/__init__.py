"""TTS engine modules, one per engine; each is optional at run time (see base.py for the contract)."""

from __future__ import annotations

from types import ModuleType

from intervox.voices.engines import espeak, festival, flite, mbrola, pico, piper

# Kokoro is not wrapped: its only registry package ships Japanese voices whose English needs
# hand-fed IPA and runs at RTF ~1 on CPU; the other engines cover English without it.
ENGINES: dict[str, ModuleType] = {m.ENGINE: m for m in (espeak, flite, festival, piper, mbrola, pico)}
