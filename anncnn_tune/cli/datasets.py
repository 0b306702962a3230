"""`anncnn-tune datasets`: what is cached, and `datasets fetch NAME|all`. Thin: the library decides, this prints.

UserError is left to propagate: the main CLI turns it into one line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from anncnn_tune import api
from anncnn_tune.cli.listing import echo_rows
from anncnn_tune.cli.options import storage_option
from anncnn_tune.errors import UserError

_DATA_DIR = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Data folder (default: $ANNCNN_TUNE_DATA, else the per-user cache).",
)


def _size(n: int | None) -> str:
    if not n:
        return "-"
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.1f} kB"


def _print_status(status: dict) -> None:
    if status["bundled"]:
        state, where = "bundled", "(ships with its library, nothing to fetch)"
    else:
        bad = any(f["status"] == "bad" for f in status["files"])
        state = "cached" if status["cached"] else "BAD" if bad else "missing"
        where = status["folder"]
    kind = f"{status['kind']}/{status['task']}"
    click.echo(f"{status['key']:<20} {kind:<20} {state:<8} {_size(status['size']):>9}  {where}")
    for f in status["files"]:
        click.echo(f"    {f['name']:<40} {_size(f['size']):>9}  {f['algorithm']} {f['status']}")
    click.echo(f"    source:  {status['source']}")
    click.echo(f"    license: {status['license']}")


@click.group("datasets", invoke_without_command=True)
@_DATA_DIR
@storage_option
@click.pass_context
def datasets(ctx: click.Context, data_dir: Path | None, storage: str | None) -> None:
    """List every dataset: cached or not, files, sizes, checksum status, source and licence; then the
    user datasets (own files and folders) the storage's studies use, with their fingerprints."""
    if ctx.invoked_subcommand is None:
        for status in api.datasets(data_dir):
            _print_status(status)
        _print_sources(storage)


def _print_sources(storage: str | None) -> None:
    listing = api.dataset_sources(storage)
    echo_rows(f"\nuser datasets of the studies in {listing['storage']}:", listing["sources"], _source_line,
              no_storage="no studies yet: `anncnn-tune init PATH` writes study files for your own data",
              empty="none: no study there uses a file or folder of its own")


def _source_line(row: dict) -> str:
    kind = f"{row['kind']}/{row['task']}"
    fingerprint = (row["fingerprint"] or "-")[:12]
    return f"{row['study']:<26} {kind:<18} {fingerprint:<12}  {row['path']}"


@datasets.command("fetch")
@click.argument("name")
@_DATA_DIR
@click.pass_context
def fetch_command(ctx: click.Context, name: str, data_dir: Path | None) -> None:
    """Download (if missing) and verify the files of NAME, or of every dataset with `all`."""
    # `datasets --data-dir DIR fetch NAME` names the folder on the group: honour it there too.
    data_dir = data_dir if data_dir is not None else ctx.parent.params.get("data_dir")
    if name != "all":
        _fetch_one(name, data_dir)  # an unknown name fails there with the list of known ones
        return
    failed = []
    for key in api.dataset_names():  # `all` keeps going, so one unreachable mirror does not block the rest
        try:
            _fetch_one(key, data_dir)
        except UserError as exc:
            click.echo(f"{key}: FAILED: {exc}", err=True)
            failed.append(key)
    if failed:
        raise UserError(
            f"could not fetch {', '.join(failed)} (reasons above); fix those and run the command again"
        )


def _fetch_one(key: str, data_dir: Path | None) -> None:
    paths = api.fetch_dataset(key, data_dir)
    if paths is None:
        click.echo(f"{key}: bundled, nothing to fetch")
        return
    for path in paths:
        click.echo(f"{key}: {path} ok")
