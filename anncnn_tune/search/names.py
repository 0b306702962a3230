"""Study names: what `--study-name` accepts and what `init` makes of a file or folder name.

A study name is also a path component (checkpoints/NAME-ID/ under the artifact directory) and a
word on a command line, so it is kept to letters, digits, '.', '_' and '-', starting with a
letter or digit.
"""

from __future__ import annotations

import re

from anncnn_tune.errors import UserError

PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_study_name(name: str, flag: str = "--study-name") -> str:
    if not PATTERN.fullmatch(name or ""):
        raise UserError(f"{flag} {name!r} is not a study name; use up to 100 letters, digits, '.', '_' or '-', "
                        "starting with a letter or digit")
    return name


def path_component(text: str, fallback: str = "run") -> str:
    """One safe path component made of any text (a study name read from a file or a storage): only
    letters, digits, '.', '_' and '-', never '.' or '..', so a path built from it stays in its folder."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-._")[:100].rstrip("-._")
    return name or fallback


def sanitize(text: str) -> str:
    """A study name made of any text (a file stem, a folder name): runs of other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:100].rstrip("-._")
    return name.lower() or "dataset"
