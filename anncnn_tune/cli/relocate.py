"""`anncnn-tune relocate NAME PATH`: point a stored study at its data's new place (fingerprint checked)."""

from __future__ import annotations

import click

from anncnn_tune import api
from anncnn_tune.cli.options import storage_option


@click.command("relocate")
@click.argument("name")
@click.argument("path")
@click.option("--test", default=None, metavar="PATH",
              help="The held-out test file or folder's new place, for a study that has one and it moved too.")
@storage_option
def relocate(name, path, test, storage):
    """Point study NAME at PATH, where its data file or folder now lives.

    The data at PATH must be the data the study searched (same fingerprint); otherwise nothing
    is written. `compare` lists a study whose data moved or changed, and leaves it out until then.
    """
    moved = api.relocate(name, path, test=test, storage=storage)
    click.echo(f"study {moved['study']}: data {moved['old']} -> {moved['new']} (fingerprint {moved['fingerprint'][:12]}... "
               "matches)")
