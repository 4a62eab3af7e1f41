"""One override syntax: every command that takes config values takes positional key=value."""

from __future__ import annotations

import click
import pytest

from intervox.cli import cli

CONFIG_COMMANDS = [("shards", "build"), ("shards", "qc"), ("train",), ("eval",), ("corpus", "prepare")]


def command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=" ".join)
def test_config_values_are_positional_key_value(path):
    params = command(path).params
    variadic = [p for p in params if isinstance(p, click.Argument) and p.nargs == -1]
    assert len(variadic) == 1, f"intervox {' '.join(path)} takes no positional key=value"
    flags = {opt for p in params if isinstance(p, click.Option) for opt in p.opts}
    assert not flags & {"-o", "--override", "--option", "--set"}, flags


@pytest.mark.parametrize("path", CONFIG_COMMANDS, ids=" ".join)
def test_help_examples_use_the_positional_syntax(path):
    text = command(path).help or ""
    assert " -o " not in text and "--set " not in text and "--override" not in text
    assert "key=value" in text
