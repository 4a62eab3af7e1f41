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


def test_override_errors_blame_the_override_not_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("name: demo\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, Example, ["block.speakers=many"])
    assert str(err.value).startswith("override block.speakers=many: block.speakers: expected an integer")
    assert "c.yaml" not in str(err.value)
    with pytest.raises(ConfigError, match=r"^override blok\.speakers=2: blok: unknown key 'blok'"):
        load_config(p, Example, ["blok.speakers=2"])
    p.write_text("block:\n  speakers: many\n")  # the same mistake in the file names the file
    with pytest.raises(ConfigError, match=r"^\S*c\.yaml: block\.speakers: expected an integer"):
        load_config(p, Example, ["name=x"])


def test_base_is_deep_merged_relative_to_the_including_file(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "root.yaml").write_text("name: root\nrate: 0.5\nlayers: [1, 2, 3]\n")
    (tmp_path / "base" / "mid.yaml").write_text(
        "base: root.yaml\nlayers: [7]\nblock:\n  speakers: 2\n  contents: 3\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base/mid.yaml\nblock:\n  contents: 5\n")
    cfg = load_config(child, Example, ["rate=0.25"])
    # mappings merge key by key, lists replace, overrides come last; the result has no `base`
    assert cfg == Example(name="root", rate=0.25, layers=(7,), block=Block(speakers=2, contents=5))
    assert "base" not in to_plain(cfg)


def test_base_errors_name_the_file_that_set_the_key(tmp_path):
    (tmp_path / "root.yaml").write_text("block:\n  speekers: 2\n")
    (tmp_path / "child.yaml").write_text("base: root.yaml\nname: c\n")
    with pytest.raises(ConfigError,
                       match=r"root\.yaml \(base of \S*child\.yaml\): block\.speekers: unknown key"):
        load_config(tmp_path / "child.yaml", Example)
    (tmp_path / "orphan.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(ConfigError,
                       match=r"missing\.yaml \(base of \S*orphan\.yaml\): config file does not exist"):
        load_config(tmp_path / "orphan.yaml", Example)
    with pytest.raises(ConfigError, match="base=x.yaml.*base can only be set in a config file"):
        load_config(tmp_path / "child.yaml", Example, ["base=x.yaml"])


def test_base_cycle_is_a_clear_error(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("base: sub/../a.yaml\n")
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match=r"base files form a cycle: \S*a\.yaml -> \S*b\.yaml -> \S*a\.yaml"):
        load_config(tmp_path / "a.yaml", Example)
    (tmp_path / "self.yaml").write_text("base: self.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "self.yaml", Example)


def test_shipped_shard_configs_hold_only_their_differences_from_default():
    import dataclasses
    from pathlib import Path

    import yaml

    from intervox.pipeline.config import ShardsConfig

    shards = Path(__file__).resolve().parents[2] / "configs" / "shards"
    default = load_config(shards / "default.yaml", ShardsConfig)
    bn_raw = yaml.safe_load((shards / "bn.yaml").read_text())
    assert bn_raw == {"base": "default.yaml", "source": {"lang": "bn"}}
    assert load_config(shards / "bn.yaml", ShardsConfig) == load_config(
        shards / "default.yaml", ShardsConfig, ["source.lang=bn"])
    qc_raw = yaml.safe_load((shards / "default_qc.yaml").read_text())
    assert set(qc_raw) == {"base", "qc"} and qc_raw["base"] == "default.yaml"
    with_qc = load_config(shards / "default_qc.yaml", ShardsConfig)
    assert with_qc.qc is not None and with_qc.qc.speaker_max_similarity == 0.85
    assert dataclasses.replace(with_qc, qc=None) == default


def test_tiny_plan_is_default_with_every_op_on_a_small_grid():
    from pathlib import Path

    from intervox.pipeline.config import ShardsConfig

    shards = Path(__file__).resolve().parents[2] / "configs" / "shards"
    default = load_config(shards / "default.yaml", ShardsConfig)
    tiny = load_config(shards / "tiny.yaml", ShardsConfig)
    assert tiny.interventions == default.interventions and tiny.seed == default.seed
    src = tiny.source
    assert src.kind == "grid" and src.train_speakers * src.train_sentences <= 4
    assert min(src.val_speakers, src.val_sentences, src.ood_voices, src.keyword_voices) >= 1
    assert (tiny.block.speakers, tiny.block.contents) == (src.train_speakers, src.train_sentences)
