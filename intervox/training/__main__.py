"""`python -m intervox.training ...` runs `intervox train` alone (torchrun-friendly, no other stages)."""

import logging
import sys

import click

from intervox.errors import IntervoxError
from intervox.training.commands import train_cmd

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        train_cmd.main(prog_name="intervox train", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except IntervoxError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
