"""How the commands that list a storage's studies print them (`studies`, `datasets`)."""

from __future__ import annotations

from collections.abc import Callable

import click


def echo_rows(title: str, rows: list[dict] | None, line: Callable[[dict], str], *, no_storage: str,
              empty: str) -> None:
    """A title, then one line a row; `no_storage` in brackets where there is no storage yet
    (rows None: a listing creates none), `empty` where it holds nothing to list."""
    click.echo(title)
    if rows is None:
        click.echo(f"  ({no_storage})")
        return
    if not rows:
        click.echo(f"  ({empty})")
    for row in rows:
        click.echo(f"  {line(row)}")
