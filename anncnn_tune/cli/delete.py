"""`anncnn-tune delete NAME`: remove a study and its artifacts (the API plans it, then deletes)."""

from __future__ import annotations

import sys

import click

from anncnn_tune import api
from anncnn_tune.cli.options import storage_option


@click.command("delete")
@click.argument("name")
@storage_option
@click.option("--artifacts", default=None, metavar="DIR",
              help="The artifact directory the study's workers used. Default as for optimize.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name, storage, artifacts, yes):
    """Delete study NAME from the storage, with its checkpoints and dashboard files."""
    plan = api.plan_delete(name, storage=storage, artifacts=artifacts)
    if not yes and not click.confirm(f"delete {plan.describe()}?", default=False):
        click.echo("nothing deleted", err=True)
        sys.exit(1)
    done = api.delete(plan)
    click.echo(f"deleted study {done['study']}: {done['trials']} trial(s), {done['artifact_files']} artifact "
               f"file(s)" + (", checkpoints" if done["checkpoints"] else ""))
