"""anncnn-tune: how good can an ANN get on a dataset, how good a CNN, at what cost.

The Python API (anncnn_tune.api) is re-exported here, loaded on first use (PEP 562), so
`import anncnn_tune` imports neither torch nor Optuna and changes nothing in the process:

    import anncnn_tune as at
    at.optimize("digits-ann", n_trials=10)
    at.compare()            # a pandas DataFrame
"""

from __future__ import annotations

import importlib

# name -> the module that defines it; each is imported when the name is first used.
_LAZY = {
    "optimize": "anncnn_tune.api",
    "compare": "anncnn_tune.api",
    "export": "anncnn_tune.api",
    "retrain": "anncnn_tune.api",
    "predict": "anncnn_tune.api",
    "init": "anncnn_tune.api",
    "relocate": "anncnn_tune.api",
    "reference": "anncnn_tune.api",
    "ExportedRun": "anncnn_tune.api",
    "OptimizeResult": "anncnn_tune.search.launcher",
    "RetrainResult": "anncnn_tune.results.retrain",
    "PredictResult": "anncnn_tune.results.predict",
    "UserError": "anncnn_tune.errors",
}

__all__ = ["ExportedRun", "OptimizeResult", "PredictResult", "RetrainResult", "UserError", "compare", "export",
           "init", "optimize", "predict", "reference", "relocate", "retrain"]  # == sorted(_LAZY), which tests/test_api.py checks


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
