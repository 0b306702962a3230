"""The Python API: what the `anncnn-tune` commands do, as functions that return data.

For notebooks and scripts; the command line is a thin layer over these same functions, so a
notebook and a terminal run the same code and write the same storage::

    import anncnn_tune as at
    result = at.optimize("digits-ann", n_trials=10, epochs=5)     # an OptimizeResult; .study is the Optuna study
    at.optimize("digits-cnn", n_trials=10, epochs=5)
    board = at.compare()                                          # the leaderboard as a pandas DataFrame
    run = at.export("digits-cnn", output="best.yaml")             # an ExportedRun (the run file as a dict)
    final = at.retrain("best.yaml", seeds=2)                      # a RetrainResult (test metrics, files)
    rows = at.predict("runs/digits-cnn-trial3", "new-images/")     # predictions as a pandas DataFrame

Storage: each function takes `storage` (an Optuna storage URL); None means $ANNCNN_TUNE_STORAGE,
else the SQLite file anncnn-tune.db in the working directory, as on the command line.

Mistakes in the input raise anncnn_tune.errors.UserError with a one-line message, before any
work and with the storage and files left as they were.

Importing this module is cheap: torch, Optuna and pandas load when a function first needs them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, overload

from anncnn_tune.errors import UserError
from anncnn_tune.results.render import FORMATS

# Settings and value rules the command line shows and applies before any work. They load nothing
# heavy, so `anncnn-tune --help` stays fast; a flag, a study file and a notebook share each rule.
from anncnn_tune.service.settings import DEFAULT_HEARTBEAT
from anncnn_tune.service.settings import DEFAULT_URL as DEFAULT_STORAGE
from anncnn_tune.service.settings import ENV_VAR as STORAGE_ENV_VAR
from anncnn_tune.training.params import check_seed, check_size, number

if TYPE_CHECKING:
    import pandas

    from anncnn_tune.results.retrain import RetrainResult
    from anncnn_tune.search.launcher import OptimizeResult
    from anncnn_tune.service.cleanup import DeletePlan

__all__ = ["DEFAULT_HEARTBEAT", "DEFAULT_STORAGE", "FORMATS", "STORAGE_ENV_VAR", "ExportedRun", "check_seed", "check_size",
           "compare", "dashboard", "dataset_names", "dataset_sources", "datasets", "delete", "duration_text", "export",
           "fetch_dataset", "init", "number", "optimize", "plan_delete", "predict", "reference",
           "relocate", "retrain", "studies"]


def init(path, *, target: str | None = None, name: str | None = None, task: str = "auto",
         drop: Sequence[str] = (), test=None, image_size: tuple[int, int] | str | None = None,
         on_bad_file: str = "error", out_dir=None, force: bool = False):
    """Inspect a user's table, array file or image folder and write its study files.

    path: a .csv/.tsv/.parquet/.npz file or a folder of class folders. target: the column to
    predict (tables). image_size: (height, width), or the text "HxW" (or "N", square), to resize
    images to. on_bad_file: "skip" leaves unreadable image files out (the study file records it, so
    every later load skips them too) instead of refusing the folder. Writes NAME-ann.yaml, and NAME-cnn.yaml for images, into out_dir (default:
    the current directory); an existing file is an error unless force. Returns an InitResult:
    the study name, the inspected schema (`.schema.lines()` is the printed report) and the files.
    """
    from anncnn_tune.search.scaffold import InitRequest, parse_image_size
    from anncnn_tune.search.scaffold import init as scaffold

    if isinstance(image_size, str):
        image_size = parse_image_size(image_size)
    return scaffold(InitRequest(path=str(path), target=target, name=name, task=task, drop=tuple(drop),
                                test=None if test is None else str(test),
                                image_size=None if image_size is None else tuple(image_size),
                                on_bad_file=on_bad_file, out_dir=None if out_dir is None else str(out_dir), force=force))


def _storage_url(storage: str | None) -> str:
    from anncnn_tune.service.storage import resolve_url

    _load_optuna()
    return resolve_url(storage)


def _load_optuna() -> None:
    """Import Optuna once without tqdm's "IProgress not found" warning: Optuna imports tqdm.auto,
    which warns in a Jupyter kernel without ipywidgets although nothing here draws a tqdm bar."""
    import sys
    import warnings

    if "optuna" not in sys.modules:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="IProgress not found")
            import optuna  # noqa: F401


def optimize(study: str, *, storage: str | None = None, n_trials: int | None = None, timeout: float | None = None,
             epochs: int | None = None, seed: int | None = None, subset: float | None = None,
             device: str = "auto", devices: str | Sequence[str] | None = None, workers: int | str = 1,
             threads: int | None = None, data_dir: str | None = None, artifacts: str | None = None,
             compile: bool = False, heartbeat_interval: int | None = None, quiet: bool = False,
             study_name: str | None = None, dataset: str | None = None) -> OptimizeResult:
    """Run (or resume) a study until it holds `n_trials` finished (complete or pruned) trials.

    study: a built-in study name ("digits-cnn", see `anncnn-tune studies`) or a study file's path.
    n_trials (default: the grid's size for `sampler: grid`, else 30) counts the study's trials across runs and workers, so calling again with the same
    number resumes rather than repeats. epochs, seed and subset override the study file's (subset:
    a fraction in (0, 1] or a count of the training split, for a quick look on a CPU).
    device: auto, cpu, cuda or cuda:N; devices: several, taken round-robin by `workers` spawned
    worker processes ("cuda:0,cuda:1" or a list); workers="auto" picks their number from the cores
    this process may use, the model's size and the memory (search/parallel.py). threads: torch CPU
    threads per worker (default cores // workers, or OMP_NUM_THREADS). timeout: stop starting new trials after this many seconds.
    study_name: run the study file under this name, so variants of one file sit side by side.
    dataset: a file or folder of the same kind as the study's data (a folder of 32x32 colour images for
    cifar10-cnn): the study's space, baselines, budget and pruner on it, stored as NAME-on-FOLDER.

    Returns an OptimizeResult: the trial counts by state, the best trial (value, number, params,
    baseline name), this launch's `wall_seconds` and `finished_here` (its complete or pruned
    trials), and `.study`, the stored optuna.Study (e.g. `.study.trials_dataframe()`).
    A SIGINT/SIGTERM says at once what will happen, stops the running trial after its epoch (stored as
    failed with its reason and an `interrupted` mark, counted in `states["interrupted"]`, not among the
    failed), re-queues it and returns with `interrupted` set; the next call resumes it from its checkpoint.
    """
    _load_optuna()  # before the modules that import it
    from anncnn_tune.search.launcher import OptimizeRequest
    from anncnn_tune.search.launcher import optimize as launch

    if isinstance(devices, str):
        devices = [d.strip() for d in devices.split(",") if d.strip()]
    request = OptimizeRequest(study=str(study), storage_url=_storage_url(storage), n_trials=n_trials,
                              timeout=timeout, device=device, epochs=epochs, seed=seed, subset=subset,
                              compile=compile, threads=threads, data_dir=None if data_dir is None else str(data_dir),
                              heartbeat_interval=DEFAULT_HEARTBEAT if heartbeat_interval is None
                              else heartbeat_interval, quiet=quiet,
                              artifacts=None if artifacts is None else str(artifacts), workers=workers,
                              devices=tuple(devices or ()), study_name=study_name,
                              dataset=dataset)
    return launch(request)


@overload
def compare(storage: str | None = None, datasets: Sequence[str] | None = None, *,
            format: None = None, wide: bool = False, log=None) -> pandas.DataFrame: ...
@overload
def compare(storage: str | None = None, datasets: Sequence[str] | None = None, *,
            format: str, wide: bool = False, log=None) -> str: ...


def compare(storage=None, datasets=None, *, format=None, wide=False, log=None):
    """ANN vs CNN per dataset: every anncnn-tune study of the storage, best trials side by side.

    datasets: only these (default: every dataset in the storage). Reads only.

    Returns a pandas DataFrame with one row per study (dataset, study, model, metric, best_value,
    best_trial, test_value of a retrained trial, baseline_value and vs_baseline for the study's
    baseline trial (the classical reference is in the leaderboard's "classical"), n_params, train_seconds, trial counts, `fair`: the dataset's studies share
    data, splits and budget, `winner`...); nested settings (sampler, pruner, best_params) stay
    dicts. `frame.attrs["leaderboard"]` holds the whole leaderboard as the JSON format has it
    (fairness notes, shared and differing settings per dataset).

    format: instead of the frame, the text `anncnn-tune compare --format` prints ("table",
    "markdown", "csv", "json", or "html": a self-contained page with the figures embedded).
    wide: the "table" text with every column and the best params, not 120 columns.
    log: told one warning line per study left out because its data changed or moved (a callable
    taking one string; None for silence: the leaderboard's "left_out" lists them too). Kept out
    of the returned text, so a table, CSV or JSON on standard output stays only the report.
    """
    _load_optuna()  # before the modules that import it
    from anncnn_tune.results import leaderboard as board_mod
    from anncnn_tune.results.render import left_out_lines, render

    if format is not None and format not in FORMATS:
        raise UserError(f"unknown compare format {format!r}; use one of {', '.join(FORMATS)} (or None for a DataFrame)")
    url = _storage_url(storage)
    board = board_mod.leaderboard(url, tuple(datasets or ()))
    for line in left_out_lines(board) if log is not None else ():
        log(line)
    if format == "html":
        return render(board, format, board_mod.stored_studies(url, board))
    if format is not None:
        return render(board, format, wide=wide)
    return _frame(board, board_mod.CSV_FIELDS)


def _frame(board: dict, columns: Sequence[str]) -> pandas.DataFrame:
    import pandas

    rows = []
    for entry in board["datasets"]:
        for row in entry["studies"]:  # the dataset's own fields (fair, differs, verdict) on each of its rows
            rows.append({**{k: row.get(k) for k in columns}, "fair": entry["fair"], "differs": sorted(entry["differs"]),
                         "verdict": entry["verdict"]["line"]})
    frame = pandas.DataFrame(rows, columns=list(columns))
    frame.attrs["leaderboard"] = board
    return frame


@dataclass(frozen=True)
class ExportedRun:
    """A trial written out as a run file: `run` its content, `text` the YAML, `path` where it went."""

    run: dict
    text: str
    path: str | None  # None: not written (output was None)


def export(study: str, *, trial: int | None = None, storage: str | None = None,
           output: str | None = None) -> ExportedRun:
    """A study's best (or chosen) complete trial as a run file for `retrain`.

    The run file holds everything retrain needs without the study: dataset, family, the trial's
    full parameters, the epochs to train, the seed, the data fingerprint and where it came from.
    output: write it there (else only return it).
    """
    _load_optuna()  # before the modules that import it
    from anncnn_tune.results.export import export_run

    if trial is not None and (isinstance(trial, bool) or not isinstance(trial, int) or trial < 0):
        raise UserError(f"trial must be a trial number (0 or more), got {trial!r}")
    run, text = export_run(_storage_url(storage), study, trial, None if output is None else str(output))
    return ExportedRun(run=run, text=text, path=None if output is None else str(output))


def retrain(run_file: str, *, out: str | None = None, seeds: int = 1, cv: int = 0, device: str = "auto",
            data_dir: str | None = None, storage: str | None = None, record: bool = True,
            force: bool = False, log=print) -> RetrainResult:
    """Train a run file on train+validation, score the test split once per seed, save the model.

    out: the output folder (default runs/<study>-trial<N>): run.yaml, metrics.json, report.md,
    model.pt, model.onnx (checked against PyTorch) and the figures. seeds: train this many seeds
    from the run file's; cv: also K-fold cross-validate on train+validation (0: off).
    record: write the test metrics back to the source study (storage: its URL, default
    $ANNCNN_TUNE_STORAGE, else the run file's), where `compare` shows them. log: where progress
    lines go (a callable taking one string; None for silence). force: overwrite a non-empty
    `out` (refused otherwise: the test split is scored once; a second scoring is warned about).

    Returns a RetrainResult: the test metrics (mean ± std over seeds, per seed, per class, the
    confusion matrix), the cross-validation summary, the ONNX check, the files written.
    """
    _load_optuna()  # before the modules that import it
    from anncnn_tune.results.retrain import RetrainRequest
    from anncnn_tune.results.retrain import retrain as run

    request = RetrainRequest(run_file=str(run_file), out=None if out is None else str(out), seeds=seeds, cv=cv,
                             device=device, data_dir=None if data_dir is None else str(data_dir), storage=storage,
                             record=record, force=force)
    return run(request, log=log or (lambda line: None))


def predict(run_dir, input, out=None, *, batch_size: int | None = None, skip_bad: bool = False, log=None,
            stdout=None):
    """Predict with a retrained model: raw table rows or image files in, a CSV of predictions out.

    run_dir: the folder `retrain` wrote (model.pt and preprocess.json). input: a .csv/.tsv/.parquet
    table with the training columns (extra columns, the target among them, are ignored; a missing
    one is a UserError naming it), an image file, or a folder of images (searched recursively),
    decoded and resized as in training. out: a CSV path (written whole, or not at all on an error),
    "-" for `stdout` (default sys.stdout, written batch by batch), or None to return a pandas
    DataFrame. Columns: `row` (tables, 0-based) or `file` (images, relative to the folder), then
    `prediction` (the class name, or the value in the target's units) and `prob_<class>` per class.
    batch_size: rows (default 4096) or images (256) per batch. skip_bad: skip unreadable images
    (each named through `log`) instead of stopping at the first. log: progress lines (a callable
    taking one string; None for silence). Returns the DataFrame (out None) or a PredictResult.
    """
    from anncnn_tune.results.predict import predict as run

    return run(run_dir, input, None if out is None else str(out), batch_size=batch_size, skip_bad=skip_bad,
               log=log or (lambda line: None), stdout=stdout)


def studies(storage: str | None = None) -> dict:
    """The built-in study files and the studies in the storage (reads only).

    Returns {"study_files": [one dict per file], "storage": the URL with any password masked,
    "studies": [one dict per stored study: states, best value and trial], or None where the
    storage does not exist yet}.
    """
    from anncnn_tune.search.catalog import builtin_studies, stored_studies
    from anncnn_tune.service.storage import mask

    url = _storage_url(storage)
    return {"study_files": builtin_studies(), "storage": mask(url), "studies": stored_studies(url)}


def dashboard(*, storage: str | None = None, host: str = "127.0.0.1", port: int = 8080,
              artifacts: str | None = None) -> None:
    """Serve optuna-dashboard on the storage and the workers' artifact directory until interrupted."""
    from anncnn_tune.service.dashboard import serve

    serve(_storage_url(storage), host, port, artifacts)


def datasets(data_dir=None) -> list[dict]:
    """Every built-in dataset's status: cached or not, its files, sizes, checksum status, source, licence."""
    from anncnn_tune.data import DATASETS
    from anncnn_tune.data.fetch import dataset_status

    return [dataset_status(key, data_dir) for key in DATASETS]


def dataset_names() -> tuple[str, ...]:
    """The keys of the built-in datasets, in the registry's order."""
    from anncnn_tune.data import DATASETS

    return tuple(DATASETS)


def fetch_dataset(name: str, data_dir=None) -> list[str] | None:
    """Download (where missing) and verify a built-in dataset's files; their paths, or None for a
    dataset that ships with its library (nothing to fetch). An unknown name is a UserError."""
    from anncnn_tune.data import get
    from anncnn_tune.data.fetch import REGISTRY, fetch

    get(name)  # unknown names fail here with the list of known ones
    if name not in REGISTRY:
        return None
    return [str(path) for path in fetch(name, data_dir)]


def dataset_sources(storage: str | None = None) -> dict:
    """The user datasets (own files and folders) the storage's studies use, with their fingerprints.

    Returns {"storage": the masked URL, "sources": [one dict per study], or None where the storage
    does not exist yet}.
    """
    from anncnn_tune.search.catalog import stored_sources
    from anncnn_tune.service.storage import mask

    url = _storage_url(storage)
    return {"storage": mask(url), "sources": stored_sources(url)}


def plan_delete(study: str, *, storage: str | None = None, artifacts: str | None = None) -> DeletePlan:
    """What deleting a study would remove (its trials, artifact files, checkpoints); removes nothing.
    `.describe()` says it in one line; pass the plan to delete()."""
    from anncnn_tune.service.artifacts import resolve_dir
    from anncnn_tune.service.cleanup import plan_delete as plan

    url = _storage_url(storage)
    return plan(url, study, resolve_dir(artifacts, url))


def delete(plan: DeletePlan) -> dict:
    """Delete a planned study from its storage, with its checkpoints and dashboard files.
    Returns {"study", "trials", "artifact_files", "checkpoints"}: what was removed."""
    from anncnn_tune.service.cleanup import delete as remove

    return remove(plan)


def relocate(study: str, path, *, test=None, storage: str | None = None) -> dict:
    """Point a stored study of your own files at their new place (a moved file or folder), once the
    data there has the fingerprint the study recorded; a mismatch is a UserError, storage unchanged.
    test: the held-out test file or folder's new place, for a study that has one and it moved too.
    Returns {"study", "old", "new", "test", "fingerprint"}."""
    from anncnn_tune.search.relocate import relocate as move

    return move(_storage_url(storage), study, str(path), None if test is None else str(test))


def reference(study: str, *, storage: str | None = None, data_dir: str | None = None, trials: int | None = None,
              seeds: int | None = None, log=print) -> dict:
    """Tune the classical reference (gradient boosting on tables, logistic regression on pixels) on a
    retrained study's splits, refit it on train+validation, score its test split once per seed, and
    record it on the study, where `compare` puts it beside the net with an interval over seeds.
    trials: search trials (default: as many as the net's search finished, within 10..200); seeds:
    refits (default: as many as the net's retrain, at least 3). Returns the recorded entry (model,
    setting, metric, validation, test mean and std, per_seed_values, search budget...)."""
    from anncnn_tune.results.reference import fit_reference

    return fit_reference(study, _storage_url(storage), data_dir=data_dir, trials=trials, seeds=seeds,
                         log=log or (lambda line: None))


def duration_text(seconds: float) -> str:
    """A duration as the command line and the live view write it: 42.0s, 3m05s, 2h10m."""
    from anncnn_tune.search.live import duration_text as text

    return text(seconds)
