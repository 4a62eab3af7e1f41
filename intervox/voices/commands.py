"""`intervox voices ...`: inspect the offline voice bank."""

from __future__ import annotations

import json

import click


@click.group("voices")
def voices() -> None:
    """Offline TTS voices: engines, ids, speaker keys.

    \b
    Example:
      intervox voices list --lang en
    """


@voices.command("list")
@click.option("--lang", default=None, help="Only voices speaking this language (ISO code: en, bn).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (voices, engines, counts).")
def list_cmd(lang: str | None, as_json: bool) -> None:
    """List voices (id, engine, languages, gender, rate, speaker key), engine status, speaker count.

    \b
    Example:
      intervox voices list --lang bn --json > bn_voices.json
    """
    import dataclasses

    from intervox.voices.catalog import engine_status, list_voices

    found = list_voices(lang)
    status = engine_status()
    keys = sorted({v.speaker_key for v in found})
    if as_json:
        click.echo(
            json.dumps(
                {
                    "voices": [dataclasses.asdict(v) for v in found],
                    "engines": status,
                    "speaker_keys": len(keys),
                },
                ensure_ascii=False,
                indent=1,
            )
        )
        return
    click.echo(f"{'id':40} {'engine':9} {'languages':10} {'gender':6} {'sr':>6}  speaker_key")
    for v in found:
        click.echo(
            f"{v.id:40} {v.engine:9} {','.join(v.languages):10} {v.gender or '-':6} {v.sample_rate:>6}  "
            f"{v.speaker_key}"
        )
    click.echo("")
    for name, state in status.items():
        click.echo(f"engine {name}: {state}")
    click.echo(
        f"{len(found)} voices, {len(keys)} distinct speaker_keys" + (f" for language {lang}" if lang else "")
    )
