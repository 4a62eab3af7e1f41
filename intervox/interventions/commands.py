"""`intervox interventions ...`: inspect the registered intervention ops."""

from __future__ import annotations

import json

import click


@click.group("interventions")
def interventions() -> None:
    """The ops that change exactly one factor (speaker, content or channel) of an utterance.

    \b
    Example:
      intervox interventions list --json
    """


@interventions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def list_cmd(as_json: bool) -> None:
    """List every op with its target factor, whether it keeps timing, and its parameter defaults.

    \b
    Example:
      intervox interventions list
    """
    from intervox.interventions.describe import describe_ops

    ops = describe_ops()
    if as_json:
        click.echo(json.dumps(ops, indent=2))
        return
    for op in ops:
        timing = "keeps timing" if op["keeps_timing"] else "changes timing"
        click.echo(f"{op['name']:<14} {op['target']:<8} {timing:<15} {op['doc']}")
        for key, value in op["parameters"].items():
            click.echo(f"{'':<16}{key} = {json.dumps(value)}")
