"""load_config: YAML + dotted overrides, type-checked; unknown keys name the key and the file."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from intervox.config import load_config, to_plain
from intervox.errors import ConfigError


@dataclass(frozen=True)
class Block:
    speakers: int = 4
    contents: int = 8


@dataclass(frozen=True)
class Example:
    name: str = "x"
    rate: float = 1e-4
    layers: tuple[int, ...] = (1,)
    mode: str | None = None
    flag: bool = False
    block: Block = field(default_factory=Block)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: demo\nblock:\n  speakers: 16\n")
    cfg = load_config(p, Example, ["block.contents=32", "rate=3e-4", "layers=[1, 2]", "flag=true"])
    assert cfg == Example(name="demo", rate=3e-4, layers=(1, 2), flag=True, block=Block(16, 32))
    assert to_plain(cfg)["block"] == {"speakers": 16, "contents": 32}


def test_int_is_accepted_for_float_and_none_for_optional(tmp_path):
    cfg = load_config(None, Example, ["rate=1", "mode=null"])
    assert cfg.rate == 1.0 and isinstance(cfg.rate, float) and cfg.mode is None


def test_unknown_key_names_key_and_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("block:\n  speekers: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*block.*unknown key 'speekers'"):
        load_config(p, Example)


def test_unknown_override_and_wrong_type(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'nope'"):
        load_config(None, Example, ["nope=1"])
    with pytest.raises(ConfigError, match="block.speakers: expected an integer"):
        load_config(None, Example, ["block.speakers=many"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, Example, ["block.speakers"])


def test_yaml_is_safe_loaded(tmp_path):
    p = tmp_path / "evil.yaml"
    p.write_text("name: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(p, Example)
