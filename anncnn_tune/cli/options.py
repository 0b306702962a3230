"""Options several commands share (a module of its own so command modules need not import cli)."""

from __future__ import annotations

import click

from anncnn_tune.service.storage import DEFAULT_URL, ENV_VAR

STORAGE_HELP = (f"Optuna storage URL. Default: ${ENV_VAR}, else {DEFAULT_URL} "
                "(the file anncnn-tune.db in the working directory).")


def storage_option(f):
    return click.option("--storage", "storage", default=None, metavar="URL", help=STORAGE_HELP)(f)
