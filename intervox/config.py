"""Configs are frozen dataclasses loaded from YAML by one function, `load_config`.

A config file may start from another with `base: other.yaml` (a path relative to the
including file, itself possibly with a base): the base is deep-merged under the file
(mappings merge key by key, lists and scalars replace), then dotted `key=value` overrides
are applied. Values are parsed with `yaml.safe_load` and type-checked against the dataclass
fields; an unknown key, a wrong type or a value out of range (`check_range` in a dataclass's
`__post_init__`) raises ConfigError naming the key and where it was set: the file (or the
base file) or the command-line override.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from intervox.errors import ConfigError

T = TypeVar("T")
BASE_KEY = "base"  # reserved: names the file a config is composed on


class ConfigValueError(ValueError):
    """A field value out of its range; `key` is the field's dotted name within its dataclass."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key} {message}")
        self.key = key
        self.message = message


def check_range(obj: Any, *names: str, gt: float | None = None, ge: float | None = None,
                lt: float | None = None, le: float | None = None) -> None:
    """Raise ConfigValueError naming the first field of `obj` outside the bounds.

    None values pass (an optional field left unset); a list/tuple field is checked item by
    item. For use in a config dataclass's `__post_init__`.
    """
    bounds = [(gt, "> {}", lambda v, b: v > b), (ge, ">= {}", lambda v, b: v >= b),
              (lt, "< {}", lambda v, b: v < b), (le, "<= {}", lambda v, b: v <= b)]
    wanted = " and ".join(text.format(b) for b, text, _ in bounds if b is not None)
    for name in names:
        value = getattr(obj, name)
        items = enumerate(value) if isinstance(value, (list, tuple)) else [(None, value)]
        for i, item in items:
            if item is not None and not all(ok(item, b) for b, _, ok in bounds if b is not None):
                key = name if i is None else f"{name}[{i}]"
                raise ConfigValueError(key, f"must be {wanted}, got {item!r}")


class _Origins:
    """Where each dotted key of the merged tree was set: a file, a base file or an override."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.by_key: dict[str, str] = {}

    def set(self, key: str, label: str, value: Any) -> None:
        """Record `label` for `key` (for every leaf below it when `value` is a mapping)."""
        self.by_key = {k: v for k, v in self.by_key.items() if not k.startswith(key + ".")}
        if isinstance(value, dict) and value:
            for k, v in value.items():
                self.set(f"{key}.{k}", label, v)
        else:
            self.by_key[key] = label

    def label(self, key: str) -> str:
        """Return where `key` was set: the key itself, else the nearest section holding it
        that something set (a value left at its default is blamed on what set its section)."""
        probe = key
        while True:
            if probe in self.by_key:
                return self.by_key[probe]
            below = {v for k, v in self.by_key.items() if not probe or k.startswith(probe + ".")}
            if len(below) == 1:
                return below.pop()
            overrides = sorted(v for v in below if v.startswith("override "))
            if overrides:  # a cross-field check of a section some overrides touched
                return f"{self.source} with {', '.join(overrides)}"
            if below or not probe:
                return self.source
            probe = probe[:max(probe.rfind("."), probe.rfind("["), 0)]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else str(key)


def _error(origins: _Origins, path: str, message: str) -> ConfigError:
    return ConfigError(f"{origins.label(path)}: {path}: {message}" if path
                       else f"{origins.label(path)}: {message}")


def _coerce(value: Any, tp: Any, path: str, origins: _Origins) -> Any:
    """Return `value` converted to the annotated type `tp`, or raise ConfigError for key `path`."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        real = [a for a in args if a is not type(None)]
        if len(real) == 1:  # X | None: X's own error names the bad key inside it
            return _coerce(value, real[0], path, origins)
        for arg in real:
            try:
                return _coerce(value, arg, path, origins)
            except ConfigError:
                continue
        raise _error(origins, path, f"{value!r} fits none of {tp}")
    if origin is typing.Literal:
        if value not in args:
            raise _error(origins, path, f"{value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise _error(origins, path, f"expected a mapping for {tp.__name__}, got {value!r}")
        return _build(tp, value, path, origins)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise _error(origins, path, f"expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise _error(origins, path, f"expected {len(args)} items, got {len(value)}")
            pairs = enumerate(zip(value, args, strict=True))
            return tuple(_coerce(v, a, f"{path}[{i}]", origins) for i, (v, a) in pairs)
        item = args[0] if args else Any
        items = [_coerce(v, item, f"{path}[{i}]", origins) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise _error(origins, path, f"expected a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {_coerce(k, kt, path, origins): _coerce(v, vt, _join(path, k), origins)
                for k, v in value.items()}
    return _scalar(value, tp, path, origins)


def _scalar(value: Any, tp: Any, path: str, origins: _Origins) -> Any:
    """Return a bool/float/int/str `value` checked against `tp` (other types pass through)."""
    if tp is bool and not isinstance(value, bool):
        raise _error(origins, path, f"expected true/false, got {value!r}")
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _error(origins, path, f"expected a number, got {value!r}")
        return float(value)
    if tp is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise _error(origins, path, f"expected an integer, got {value!r}")
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _error(origins, path, f"expected a string, got {value!r}")
        return str(value)
    return value


def _build(cls: type[T], data: dict, path: str, origins: _Origins) -> T:
    """Return a `cls` instance from a mapping, rejecting unknown keys and out-of-range values."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields), key=str)
    if unknown:
        raise _error(origins, _join(path, unknown[0]),
                     f"unknown key '{unknown[0]}' (valid keys: {', '.join(sorted(fields))})")
    kwargs = {k: _coerce(v, hints[k], _join(path, k), origins) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigValueError as exc:
        raise _error(origins, _join(path, exc.key), exc.message) from exc
    except (TypeError, ValueError, ConfigError) as exc:
        raise _error(origins, path, str(exc)) from exc


def _merge(tree: dict, layer: dict, prefix: str, label: str, origins: _Origins) -> None:
    """Deep-merge `layer` into `tree` in place: mappings merge, everything else replaces."""
    for key, value in layer.items():
        here = _join(prefix, key)
        if isinstance(value, dict) and isinstance(tree.get(key), dict):
            _merge(tree[key], value, here, label, origins)
        else:
            tree[key] = value
            origins.set(here, label, value)


def _read_file(path: Path, origins: _Origins, chain: tuple[Path, ...] = (),
               label: str | None = None) -> dict:
    """Return the tree of the YAML file `path` composed on its `base:` file(s), recursively."""
    if not path.is_file():
        raise ConfigError(f"{label or path}: config file does not exist")
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in (*chain, resolved))
        raise ConfigError(f"{chain[-1]}: base files form a cycle: {cycle}")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    data = dict(loaded or {})
    tree: dict = {}
    if BASE_KEY in data:
        base = data.pop(BASE_KEY)
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: base must be the path of another config file, got {base!r}")
        base_path = path.parent / base  # relative to the including file, not the working dir
        tree = _read_file(base_path, origins, (*chain, resolved),
                          f"{base_path} (base of {path})")
    _merge(tree, data, "", label or str(path), origins)
    return tree


def parse_override(item: str) -> tuple[str, Any]:
    """Return (key, value) of a command-line `key=value`, the value parsed by `yaml.safe_load`.

    An empty value is the empty string. Raises ConfigError naming the override.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"override '{item}' must look like key=value")
    try:
        return key, (yaml.safe_load(raw) if raw != "" else "")
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item}: value {raw!r} is not valid YAML") from exc


def _apply_override(tree: dict, item: str, origins: _Origins) -> None:
    """Set one dotted `key=value` override in `tree`."""
    key, value = parse_override(item)
    label = f"override {item}"
    if key == BASE_KEY:
        raise ConfigError(f"{label}: base can only be set in a config file")
    node = tree
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{label}: '{part}' is not a section")
        node = child
    node[parts[-1]] = value
    origins.set(key, label, value)


def to_plain(obj: Any) -> Any:
    """Return dataclasses/tuples as plain dicts/lists, for YAML or JSON output."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, Path):
        return str(obj)
    return obj


def load_config(path: str | Path | None, cls: type[T], overrides: Iterable[str] = ()) -> T:
    """Return a frozen `cls` built from the YAML file `path` (and its bases) plus overrides.

    Raises ConfigError naming the key and where it was set (file, base file or override) on
    unknown keys, wrong types, out-of-range values, unreadable YAML or a cycle of bases.
    `path=None` starts from the dataclass defaults.
    """
    source = str(path) if path is not None else f"<{cls.__name__} defaults>"
    origins = _Origins(source)
    tree = _read_file(Path(path), origins) if path is not None else {}
    for item in overrides:
        _apply_override(tree, item, origins)
    return _build(cls, tree, "", origins)


def dump_config(cfg: Any, path: str | Path) -> None:
    """Write a config dataclass as YAML: the resolved config (bases and overrides applied)."""
    Path(path).write_text(yaml.safe_dump(to_plain(cfg), sort_keys=False))
