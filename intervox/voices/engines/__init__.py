"""TTS engine modules, one per engine; each is optional at run time (see base.py for the contract)."""

from __future__ import annotations

from types import ModuleType

from intervox.voices.engines import espeak, festival, flite, hibari, kokoro, mbrola, pico, piper

ENGINES: dict[str, ModuleType] = {
    m.ENGINE: m for m in (espeak, flite, festival, piper, hibari, kokoro, mbrola, pico)
}
