"""python -m anncnn_tune.training.families README.md: regenerate the README's parameter list."""

import sys

from anncnn_tune.training.families import markdown, write_readme

if len(sys.argv) > 1:
    print("updated" if write_readme(sys.argv[1]) else "already current", sys.argv[1])
else:
    print(markdown(), end="")
