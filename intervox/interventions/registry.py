"""Registry of intervention ops: name -> class, and dict round-trips for replay."""

from __future__ import annotations

import dataclasses

from intervox.errors import ConfigError
from intervox.interventions.base import Intervention

_REGISTRY: dict[str, type[Intervention]] = {}


def register(cls: type[Intervention]) -> type[Intervention]:
    """Class decorator: add an op class to the registry under `cls.name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"intervention name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    import intervox.interventions.ops  # noqa: F401  (imports every op module)


def available() -> dict[str, type[Intervention]]:
    """Return every registered op class by name."""
    _load_all()
    return dict(sorted(_REGISTRY.items()))


def get_op_class(name: str) -> type[Intervention]:
    """Return the op class called `name`; ConfigError lists the valid names."""
    ops = available()
    if name not in ops:
        raise ConfigError(f"unknown intervention '{name}' (known: {', '.join(ops)})")
    return ops[name]


def from_dict(d: dict) -> Intervention:
    """Return the op instance described by `{"name": ..., field: value}` (inverse of to_dict)."""
    d = dict(d)
    name = d.pop("name", None)
    if not name:
        raise ConfigError(f"intervention spec {d!r} has no 'name'")
    cls = get_op_class(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - set(fields))
    if unknown:
        raise ConfigError(
            f"intervention '{name}': unknown parameter '{unknown[0]}' (valid: {', '.join(fields)})"
        )
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"intervention '{name}': {exc}") from exc
