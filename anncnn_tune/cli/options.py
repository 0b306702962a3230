"""Options several commands share (a module of its own so command modules need not import cli)."""

from __future__ import annotations

import click

from anncnn_tune import api
from anncnn_tune.errors import UserError

STORAGE_HELP = (f"Optuna storage URL. Default: ${api.STORAGE_ENV_VAR}, else {api.DEFAULT_STORAGE} "
                "(the file anncnn-tune.db in the working directory).")


def storage_option(f):
    return click.option("--storage", "storage", default=None, metavar="URL", help=STORAGE_HELP)(f)


# Value types whose rules live in the library (training/params.py): click only turns the text into
# the value and a refusal into its usage error, so the CLI and a study file can never disagree.
# api re-exports those checks without loading torch or Optuna, so --help stays fast.


class _Checked(click.ParamType):
    """A click type over a library check; its UserError (which names the option) reaches main() as is."""

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        flag = param.opts[0] if param is not None and param.opts else "value"
        return self.check(value.strip(), flag)

    def check(self, value: str, where: str):
        raise NotImplementedError


class SubsetType(_Checked):
    """--subset: an integer is a count of training samples, a decimal a fraction in (0, 1]."""

    name = "fraction|count"

    def check(self, value, where):
        return api.check_size(value, where)


class SeedType(_Checked):
    name = "integer"

    def check(self, value, where):
        return api.check_seed(value, where)


class SecondsType(_Checked):
    """A positive, finite number of seconds (NaN and infinity are refused)."""

    name = "seconds"

    def check(self, value, where):
        seconds = api.number(value, where)
        if seconds <= 0:
            raise UserError(f"{where} must be a positive number of seconds, got {value}")
        return seconds


class DeviceListType(_Checked):
    """A comma-separated list of device names; an empty entry is a mistake, not 'use --device'."""

    name = "list"

    def check(self, value, where):
        entries = [d.strip() for d in value.split(",")]
        if not any(entries):
            raise UserError(f"{where} {value!r} names no device; give e.g. cuda:0,cuda:1 or leave it out")
        if not all(entries):
            raise UserError(f"{where} {value!r} has an empty entry; separate device names by single commas")
        return tuple(entries)


class WorkersType(_Checked):
    """--workers: a whole number of worker processes, or `auto` (search/parallel.py's measured rule)."""

    name = "N|auto"

    def check(self, value, where):
        if value.lower() == "auto":
            return "auto"
        if not value.isdigit() or int(value) < 1:
            raise UserError(f"{where} must be a whole number of at least 1 or 'auto', got {value!r}")
        return api.number(value, where, integer=True)


SUBSET = SubsetType()
SEED = SeedType()
SECONDS = SecondsType()
DEVICES = DeviceListType()
WORKERS = WorkersType()
