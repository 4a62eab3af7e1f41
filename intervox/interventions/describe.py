"""Describe the registered ops for people and tools: target factor, timing, parameter defaults."""

from __future__ import annotations

import dataclasses

from intervox.interventions.registry import available


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def describe_ops() -> list[dict]:
    """Return one dict per op: {name, target, keeps_timing, doc, parameters: {field: default}}."""
    out = []
    for name, cls in available().items():
        params = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is not dataclasses.MISSING:
                params[f.name] = _plain(f.default)
            elif f.default_factory is not dataclasses.MISSING:
                params[f.name] = _plain(f.default_factory())
            else:
                params[f.name] = None
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        out.append({"name": name, "target": cls.target.value, "keeps_timing": cls.keeps_timing,
                    "doc": doc, "parameters": params})
    return out
