"""`anncnn-tune init PATH`: inspect a table, array file or image folder and write study files for it."""

from __future__ import annotations

import click

from anncnn_tune import api

TASKS = ("auto", "binary", "multiclass", "regression")


@click.command("init")
@click.argument("path")
@click.option("--target", default=None, metavar="COL", help="Tables: the column to predict.")
@click.option("--name", default=None, help="Study name prefix (default: the file's stem or the folder's name).")
@click.option("--task", type=click.Choice(TASKS), default="auto", show_default=True,
              help="What to predict; auto infers it from the target as AutoGluon does.")
@click.option("--drop", multiple=True, metavar="COL", help="Tables: a column to ignore (repeat for several).")
@click.option("--test", default=None, metavar="PATH", help="A held-out file or folder (else a seeded split).")
@click.option("--image-size", default=None, metavar="HxW", help="Images: resize to this (default: their common size).")
@click.option("--on-bad-file", type=click.Choice(("error", "skip")), default="error", show_default=True,
              help="Images: an unreadable file stops init (error) or is left out (skip, recorded in the study files).")
@click.option("--out-dir", default=None, metavar="DIR", help="Where to write the study files (default: here).")
@click.option("--force", is_flag=True, help="Overwrite existing study files.")
def init_command(path, target, name, task, drop, test, image_size, on_bad_file, out_dir, force):
    """Inspect PATH and write NAME-ann.yaml (and NAME-cnn.yaml for images) with spaces fitted to it.

    \b
    anncnn-tune init data/housing.csv --target median_house_value
    anncnn-tune init xrays/ --name xrays
    """
    result = api.init(path, target=target, name=name, task=task, drop=drop, test=test,
                      image_size=image_size, on_bad_file=on_bad_file, out_dir=out_dir, force=force)
    for line in result.schema.lines():
        click.echo(line)
    click.echo("")
    for file in result.files:
        click.echo(f"wrote {file}")
    first = result.files[-1]
    click.echo(f"next: anncnn-tune optimize --study {first}")
