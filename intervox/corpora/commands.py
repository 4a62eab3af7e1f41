"""`intervox corpus ...`: build and check source manifests.

Subcommands: `synth` (the synthetic voice-bank grid) and `validate`; corpus adapters add
`prepare` to this same group (see the marked spot below).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click


def out_dir_option(help_text: str) -> Callable:
    """The `--out DIR` option every corpus command writes to (a folder, created by the command)."""
    return click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
                        help=help_text)


@click.group("corpus")
def corpus() -> None:
    """Source corpora: render the synthetic grid, prepare real corpora, validate manifests.

    \b
    Example:
      intervox corpus synth --lang en --voices 16 --sentences 32 --out data/grid-en
    """


@corpus.command("synth")
@click.option("--lang", default="en", show_default=True, help="Language (a lexicon: en, bn).")
@click.option(
    "--voices",
    "n_voices",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Train speakers (held-out sizes default to a quarter of this, at least 2).",
)
@click.option(
    "--sentences",
    "n_sentences",
    type=click.IntRange(1),
    default=32,
    show_default=True,
    help="Train sentences (held-out sentences default to a quarter, at least 2).",
)
@out_dir_option("Output folder: audio/, manifest.jsonl, quarantine.jsonl, grid.json.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Render processes.")
@click.option(
    "--text",
    "text_file",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="UTF-8 file, one sentence a line, used instead of generated sentences.",
)
@click.option("--sample-rate", type=int, default=16000, show_default=True)
def synth_cmd(
    lang: str,
    n_voices: int,
    n_sentences: int,
    out_dir: Path,
    seed: int,
    workers: int,
    text_file: str | None,
    sample_rate: int,
) -> None:
    """Render a dense speaker x sentence grid with the offline voice bank (resumable).

    \b
    Example:
      intervox corpus synth --lang bn --voices 8 --sentences 16 --out data/grid-bn --workers 2
    """
    import json

    from intervox.corpora.synth import GridSpec, synth_grid

    held = max(2, n_voices // 4)
    spec = GridSpec(
        lang=lang,
        train_speakers=n_voices,
        train_sentences=n_sentences,
        val_speakers=held,
        val_sentences=max(2, n_sentences // 4),
        ood_voices=held,
        keyword_voices=held,
        sample_rate=sample_rate,
        seed=seed,
        text_file=text_file,
    )
    manifest = synth_grid(spec, out_dir, workers=workers)
    counts = json.loads((out_dir / "grid.json").read_text(encoding="utf-8"))["counts"]
    click.echo(
        f"{manifest}: {counts['written']} written, {counts['quarantined']} quarantined "
        f"of {counts['planned']} planned"
    )


@corpus.command("clone")
@click.option("--refs", "refs", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="Manifest of the reference speakers (e.g. `corpus prepare libritts` output).")
@out_dir_option("Output folder: audio/, manifest.jsonl, quarantine.jsonl, clone.json.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="YAML of the clone spec (op, speakers, sentences, ...).")
@click.argument("overrides", nargs=-1)
def clone_cmd(refs: Path, out_dir: Path, config_path: Path | None, overrides: tuple[str, ...]) -> None:
    """Render a dense grid: reference speakers x sentences through a cloning op (resumable).

    OVERRIDES are key=value pairs of the spec (see intervox/interventions/clone_grid.py):
    op, speakers, sentences, val_speakers, val_sentences, source_voice, text_file, seed, ...

    \b
    Example:
      intervox corpus clone --refs data/libritts/manifest.jsonl --out data/clone \\
        "op={name: coqui_clone, model: yourtts, model_dir: /models/yourtts}" speakers=32 sentences=256
    """
    import json

    from intervox.config import load_config
    from intervox.interventions.clone_grid import CloneSpec, clone_grid

    manifest = clone_grid(refs, load_config(config_path, CloneSpec, overrides), out_dir)
    counts = json.loads((out_dir / "clone.json").read_text(encoding="utf-8"))["counts"]
    click.echo(f"{manifest}: {counts['written']} written, {counts['quarantined']} quarantined "
               f"of {counts['planned']} planned")


@corpus.command("validate")
@click.argument("manifest", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-audio-check", is_flag=True, help="Do not check that audio files exist.")
def validate_cmd(manifest: Path, no_audio_check: bool) -> None:
    """Check a manifest: fields, duplicate ids, audio files; exit 2 listing the problems.

    \b
    Example:
      intervox corpus validate data/grid-en/manifest.jsonl
    """
    from intervox.corpora.manifest import read_manifest, validate_manifest
    from intervox.errors import ManifestError

    problems = validate_manifest(manifest, check_audio=not no_audio_check)
    if problems:
        for p in problems[:50]:
            click.echo(p, err=True)
        raise ManifestError(f"{manifest}: {len(problems)} problem(s)")
    click.echo(f"{manifest}: ok, {len(read_manifest(manifest))} utterances")


# --- `corpus prepare` (real-corpus adapters) is added here by the corpora adapters. ---


@corpus.command("prepare")
@click.argument("kind")
@click.argument("options", nargs=-1)
@click.option(
    "--root",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Corpus root as distributed (for lhotse: a cuts*.jsonl[.gz] file or its folder).",
)
@out_dir_option("Output folder: manifest.jsonl, quarantine.jsonl, prepare_summary.json.")
@click.option(
    "--lhotse",
    "lhotse_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also export the manifest as a lhotse CutSet JSONL (.gz to compress).",
)
def prepare_cmd(
    kind: str, root: Path, out_dir: Path, options: tuple[str, ...], lhotse_out: Path | None
) -> None:
    """Write the manifest of a real corpus; unusable items go to quarantine.jsonl with the reason.

    KIND is one of folder, librispeech, libritts, vctk, commonvoice, speechcommands,
    voxceleb1, lhotse. OPTIONS are the adapter's key=value options, values parsed as YAML,
    e.g. language=de mic=both (options of each: see its module in intervox/corpora/adapters/).

    \b
    Example:
      intervox corpus prepare librispeech --root /data/LibriSpeech --out data/librispeech
      intervox corpus prepare commonvoice --root /data/cv-corpus-17.0/cy --out data/cv-cy "tsvs=[train,dev]"
    """
    import json

    from intervox.config import parse_override
    from intervox.corpora.prepare import prepare_corpus

    parsed = {}
    for opt in options:
        key, value = parse_override(opt)
        raw = opt.partition("=")[2]
        # YAML 1.1 reads "no"/"on" as booleans; keep them as text (Norwegian is "no").
        parsed[key] = raw if isinstance(value, bool) and raw.lower() not in ("true", "false") else value
    manifest = prepare_corpus(kind, root, out_dir, **parsed)
    s = json.loads((out_dir / "prepare_summary.json").read_text(encoding="utf-8"))
    click.echo(
        f"{manifest}: {s['input']} input = {s['written']} written + {s['quarantined']} quarantined, "
        f"{s['speakers']} speakers"
    )
    if lhotse_out is not None:
        from intervox.corpora.lhotse_io import export_lhotse

        click.echo(f"{lhotse_out}: {export_lhotse(manifest, lhotse_out)} cuts")


@corpus.command("devpanel")
@out_dir_option("Output folder: audio/, panel.tsv (a `folder` corpus with split dev/test), panel.json.")
@click.option("--max-per-speaker", type=click.IntRange(1), default=40, show_default=True,
              help="Clips per KLettres speaker (shared letters/syllables first).")
def devpanel_cmd(out_dir: Path, max_per_speaker: int) -> None:
    """Build the real-speech dev panel from klettres-data, pocketsphinx-testdata, Asterisk sounds (offline).

    \b
    Example:
      intervox corpus devpanel --out shards/devpanel
      intervox eval runs/en --real shards/devpanel
    """
    import json

    from intervox.corpora.devpanel import build_devpanel

    table = build_devpanel(out_dir, max_per_speaker=max_per_speaker)
    for split, s in json.loads((out_dir / "panel.json").read_text(encoding="utf-8"))["splits"].items():
        click.echo(f"{split}: {s['clips']} clips, {s['speakers']} speakers, {len(s['languages'])} languages, "
                   f"{s['cross_speaker_groups']} cross-speaker content groups")
    click.echo(f"wrote {table}")


@corpus.command("ktuberling")
@out_dir_option("Output folder: audio/, panel.tsv (a `folder` corpus, split `cohort`), panel.json.")
def ktuberling_cmd(out_dir: Path) -> None:
    """Build the real-speech cohort from ktuberling-data (words by one voice per language; offline).

    Unlabelled real clips no dev-panel voice says: what `intervox cohort` fits a run's cohort
    backend on, so that both panel splits are reported with it.

    \b
    Example:
      intervox corpus ktuberling --out shards/ktuberling
      intervox cohort runs/en-whisper-base shards/ktuberling --split cohort --ridge 0.3
    """
    import json

    from intervox.corpora.ktuberling import build_ktuberling

    table = build_ktuberling(out_dir)
    info = json.loads((out_dir / "panel.json").read_text(encoding="utf-8"))
    for split, s in info["splits"].items():
        click.echo(f"{split}: {s['clips']} clips, {s['speakers']} voices, {len(s['languages'])} languages "
                   f"({info['duplicate_files_skipped']} duplicate files skipped; left out: "
                   f"{', '.join(info['excluded']) or 'none'})")
    click.echo(f"wrote {table}")
