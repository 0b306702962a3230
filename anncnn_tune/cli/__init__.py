"""The command line: thin click commands over the library (see `anncnn_tune.cli.main`)."""

from anncnn_tune.cli.main import cli, main

__all__ = ["cli", "main"]
