"""`anncnn-tune delete NAME`: remove a study and its artifacts (service/cleanup.py decides what)."""

from __future__ import annotations

import sys

import click

from anncnn_tune.cli.options import storage_option
from anncnn_tune.service import storage as storage_mod
from anncnn_tune.service.artifacts import resolve_dir
from anncnn_tune.service.cleanup import delete as delete_study
from anncnn_tune.service.cleanup import plan_delete


@click.command("delete")
@click.argument("name")
@storage_option
@click.option("--artifacts", default=None, metavar="DIR",
              help="The artifact directory the study's workers used. Default as for optimize.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete(name, storage, artifacts, yes):
    """Delete study NAME from the storage, with its checkpoints and dashboard files."""
    url = storage_mod.resolve_url(storage)
    plan = plan_delete(url, name, resolve_dir(artifacts, url))
    what = (f"study {name} ({plan.n_trials} trial(s)) from {storage_mod.mask(url)}, {len(plan.artifact_files)} "
            f"artifact file(s)" + (" and its checkpoints" if plan.checkpoint_dir else "") + f" under {plan.artifact_root}")
    if not yes and not click.confirm(f"delete {what}?", default=False):
        click.echo("nothing deleted", err=True)
        sys.exit(1)
    done = delete_study(plan)
    click.echo(f"deleted study {done['study']}: {done['trials']} trial(s), {done['artifact_files']} artifact "
               f"file(s)" + (", checkpoints" if done["checkpoints"] else ""))
