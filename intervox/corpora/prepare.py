"""Dispatch to a corpus adapter by name: `prepare_corpus(kind, root, out, **options)`.

Every adapter writes out/manifest.jsonl (audio paths absolute), out/quarantine.jsonl (one
line per input item not written, with the reason) and out/prepare_summary.json (counts:
input = written + quarantined, speakers, splits), and returns the manifest path.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from intervox.corpora.adapters import (
    commonvoice,
    folder,
    lhotse,
    librispeech,
    libritts,
    speechcommands,
    vctk,
    voxceleb1,
)
from intervox.errors import ConfigError

ADAPTERS: dict[str, Callable[..., Path]] = {
    "folder": folder.prepare,
    "librispeech": librispeech.prepare,
    "libritts": libritts.prepare,
    "vctk": vctk.prepare,
    "commonvoice": commonvoice.prepare,
    "speechcommands": speechcommands.prepare,
    "voxceleb1": voxceleb1.prepare,
    "lhotse": lhotse.prepare,
}


def adapter_options(kind: str) -> dict[str, object]:
    """Return the keyword options (name -> default) the adapter `kind` accepts."""
    params = inspect.signature(_adapter(kind)).parameters
    return {n: p.default for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def prepare_corpus(kind: str, root: str | Path, out: str | Path, **options: object) -> Path:
    """Run the adapter `kind` on the corpus at `root`, writing under `out`; return the manifest path."""
    adapter = _adapter(kind)
    unknown = sorted(set(options) - set(adapter_options(kind)))
    if unknown:
        known = ", ".join(adapter_options(kind)) or "none"
        raise ConfigError(f"corpus adapter '{kind}': unknown option(s) {', '.join(unknown)} (known: {known})")
    return adapter(Path(root), Path(out), **options)


def _adapter(kind: str) -> Callable[..., Path]:
    if kind not in ADAPTERS:
        raise ConfigError(f"unknown corpus kind '{kind}' (known: {', '.join(sorted(ADAPTERS))})")
    return ADAPTERS[kind]
