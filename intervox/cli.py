"""The `intervox` command line: one click group, one thin subcommand per stage.

Each stage keeps its click commands in `intervox/<stage>/commands.py`, which parse
arguments and call one library function; heavy imports happen inside the commands so
that `intervox --help` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from intervox import __version__
from intervox.errors import IntervoxError

# Nothing intervox runs by default may reach a model hub; a user opts in explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="intervox")
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """intervox: interventional post-training of speech foundation models.

    \b
    The stages, in the order data flows:
      voices / corpus   source voices and manifests
      interventions     the ops that change one factor (speaker, content, channel)
      shards            Dask-built WebDataset shards of source + intervened clips
      features          frozen SFM -> pooled layer features, as feature shards
      train             contrastive projector into speaker and content subspaces
      finetune / merge  fine-tune the SFM itself with the subspace heads; weight-space merge
      cohort            fit a run's cohort backend (content regression, speaker whitening) on real clips
      eval / report     SV EER, keyword spotting, disentanglement; HTML report

    \b
    Example:
      intervox shards build --config configs/shards/default.yaml --out shards/en
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:  # Dask's cluster start-up chatter hides intervox's own progress lines
        for name in ("distributed", "dask", "numba", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _register() -> None:
    from intervox.corpora.commands import corpus
    from intervox.evaluation.commands import cohort_cmd, eval_cmd, report_cmd
    from intervox.features.commands import features_cmd
    from intervox.interventions.commands import interventions
    from intervox.shards.commands import shards
    from intervox.training.commands import train_cmd
    from intervox.training.finetune_commands import finetune_cmd, merge_cmd
    from intervox.voices.commands import voices

    for command in (voices, corpus, interventions, shards, features_cmd, train_cmd, finetune_cmd, merge_cmd,
                    cohort_cmd, eval_cmd, report_cmd):
        cli.add_command(command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; an IntervoxError becomes one readable line and exit code 2."""
    try:
        code = cli.main(args=argv, prog_name="intervox", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except IntervoxError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
