"""The storage settings a user sees before anything is opened: the environment variable, the default
URL and the heartbeat, and how the URL is resolved.

Apart from `storage` (which imports Optuna and SQLAlchemy) so that the command line's `--help`
can show them without loading either; `storage` re-exports them.
"""

from __future__ import annotations

import os

ENV_VAR = "ANNCNN_TUNE_STORAGE"
DEFAULT_URL = "sqlite:///anncnn-tune.db"
DEFAULT_HEARTBEAT = 30  # seconds; a trial silent for 2 heartbeats is declared stale and retried


def resolve_url(flag: str | None) -> str:
    """Like optuna's own CLI: the --storage flag, then $ANNCNN_TUNE_STORAGE, then the default file."""
    return flag or os.environ.get(ENV_VAR) or DEFAULT_URL
