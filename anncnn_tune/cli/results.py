"""`anncnn-tune compare`, `export`, `retrain` and `predict`: thin commands over the Python API (anncnn_tune.api).

The API loads torch and optuna inside each function, so `--help` does not pay for them.
UserError propagates: cli.main() turns it into one line on stderr and exit code 2.
"""

from __future__ import annotations

from pathlib import Path

import click

from anncnn_tune import api
from anncnn_tune.cli.options import storage_option
from anncnn_tune.errors import UserError


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another -o") from None


@click.command()
@storage_option
@click.option("--dataset", "datasets", multiple=True, metavar="NAME",
              help="Only this dataset (repeat for several). Default: every dataset in the storage.")
@click.option("--format", "fmt", type=click.Choice(api.FORMATS), default="table", show_default=True,
              help="html is a self-contained report with the plots embedded.")
@click.option("--wide", is_flag=True,
              help="table: every column (baselines, FLOPs, latency...) and the best params, beyond 120 columns.")
@click.option("-o", "--output", default=None, metavar="FILE", help="Write to FILE instead of standard output.")
def compare(storage, datasets, fmt, wide, output):
    """ANN vs CNN per dataset: best trials, baseline trials, test scores and the classical reference side by side."""
    text = api.compare(storage, datasets, format=fmt, wide=wide, log=lambda line: click.echo(line, err=True))
    if output is None:
        click.echo(text, nl=False)
        return
    _write(output, text)
    click.echo(f"wrote {output} ({fmt})")


@click.command()
@click.option("--study", required=True, help="Name of a study in the storage.")
@click.option("--trial", type=click.IntRange(min=0), default=None, help="Trial number (default: the best trial).")
@storage_option
@click.option("-o", "--output", default=None, metavar="FILE", help="Write the run file to FILE (default: print it).")
def export(study, trial, storage, output):
    """Write a study's best (or chosen) trial as a run file for `anncnn-tune retrain`."""
    exported = api.export(study, trial=trial, storage=storage, output=output)
    if output is None:
        click.echo(exported.text, nl=False)
        return
    run, source = exported.run, exported.run["source"]
    click.echo(f"wrote {output}: study {source['study']} trial {source['trial']} ({run['metric']} "
               f"{source['value']:.4f}), {run['epochs']} epochs to retrain")


@click.command()
@click.argument("run_file", metavar="RUN.yaml")
@click.option("--out", default=None, metavar="DIR", help="Output folder (default: runs/<study>-trial<N>).")
@click.option("--seeds", type=click.IntRange(min=1), default=1, show_default=True,
              help="Train this many seeds (from the run file's seed) and report mean ± std.")
@click.option("--cv", type=click.IntRange(min=0), default=0, show_default=True, metavar="K",
              help="Also K-fold cross-validate on train+validation (0: off).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", default=None, metavar="DIR",
              help="Dataset cache directory (default: $ANNCNN_TUNE_DATA, else the per-user cache).")
@click.option("--storage", default=None, metavar="URL",
              help="Where to record the test metrics (default: $ANNCNN_TUNE_STORAGE, else the run file's source).")
@click.option("--no-record", is_flag=True, help="Do not write the test metrics back to the study.")
@click.option("--force", is_flag=True,
              help="Overwrite a non-empty --out (scoring the test split again: no longer a clean held-out estimate).")
def retrain(run_file, out, seeds, cv, device, data_dir, storage, no_record, force):
    """Train RUN.yaml on train+validation, score the test split once, save weights, ONNX and a report."""
    result = api.retrain(run_file, out=out, seeds=seeds, cv=cv, device=device, data_dir=data_dir, storage=storage,
                         record=not no_record, force=force, log=lambda line: click.echo(line, err=True))
    test, val = result.test, result.validation
    line = f"test {test['metric']} {test['mean']:.4f} ± {test['std']:.4f} over {test['seeds']} seed(s)"
    if val["value"] is not None:
        line += f"; best validation {val['metric']} in the search {val['value']:.4f}"
    click.echo(line)
    if result.cv:
        entry = result.cv["summary"][test["metric"]]
        click.echo(f"{result.cv['k']}-fold cv {test['metric']} {entry['mean']:.4f} ± {entry['std']:.4f} "
                   "(held-out folds of train+validation)")
    click.echo(f"onnx max abs diff to pytorch {result.onnx['max_abs_diff']:.2e} "
               f"(tolerance {result.onnx['tolerance']:.0e})")
    if result.cost:
        cost, latency = result.cost, result.cost["latency_s"]
        click.echo(f"cost: {cost['n_params']:,} parameters, {cost['flops_per_sample']:,} FLOPs per sample, "
                   f"{cost['train_seconds']:.1f}s to train; onnxruntime latency per sample {latency['batch_1'] * 1e3:.3f} ms "
                   f"(batch 1), {latency['batch_256'] * 1e3:.4f} ms (batch 256), median, 1 thread")
    folder = Path(result.files["metrics"]).parent
    click.echo(f"wrote {folder}: " + " ".join(sorted(Path(p).name for p in result.files.values())))
    if result.recorded:
        click.echo(f"recorded on study {result.run['source']['study']} "
                   f"(test_metrics, trial {result.run['source']['trial']}); see `anncnn-tune compare`")


@click.command()
@click.argument("run_dir", metavar="RUN_DIR")
@click.argument("source", metavar="INPUT")
@click.option("-o", "--output", default=None, metavar="FILE",
              help="Write the predictions CSV to FILE (whole, or nothing on an error). Default: standard output.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, metavar="N",
              help="Rows (default 4096) or images (default 256) read and predicted at a time.")
@click.option("--skip-bad", is_flag=True,
              help="Skip unreadable image files (each named on stderr) instead of stopping at the first.")
def predict(run_dir, source, output, batch_size, skip_bad):
    """Predict INPUT with the model `retrain` saved in RUN_DIR: a CSV of predictions.

    INPUT is a .csv/.tsv/.parquet table with the training columns (other columns, the target among
    them, are ignored; blank cells are imputed as in training), an image file, or a folder of
    images (searched recursively), decoded and resized as in training. The CSV has one row per
    input row (`row`, 0-based) or image (`file`), the `prediction` (class name, or the value in
    the target's units) and, for classes, `prob_<class>` per class. Progress goes to stderr.
    """
    log = lambda line: click.echo(line, err=True)
    result = api.predict(run_dir, source, output if output is not None else "-", batch_size=batch_size,
                         skip_bad=skip_bad, log=log)
    if output is not None:
        skipped = f"; skipped {len(result.skipped)} unreadable image(s)" if result.skipped else ""
        log(f"wrote {output}: {result.rows} predictions{skipped}")


@click.command()
@click.option("--study", required=True, help="Name of a retrained study in the storage (its data and splits are used).")
@storage_option
@click.option("--data-dir", default=None, metavar="DIR",
              help="Dataset cache directory (default: $ANNCNN_TUNE_DATA, else the per-user cache).")
@click.option("--trials", type=int, default=None, metavar="N",
              help="Search trials for gradient boosting (default: as many as the net's search finished, 10..200).")
@click.option("--seeds", type=int, default=None, metavar="N",
              help="Refits scored on test (default: as many as the net's retrain, at least 3).")
def reference(study, storage, data_dir, trials, seeds):
    """Tune the classical reference (gradient boosting on tables, logistic regression on pixels) on a
    retrained study's splits, refit it on train+validation and score its test split, once per seed."""
    entry = api.reference(study, storage=storage, data_dir=data_dir, trials=trials, seeds=seeds,
                          log=lambda line: click.echo(line, err=True))
    search = entry["search"]
    spread = "the same model for every seed" if entry["deterministic"] else f"±{entry['test_std']:.4f} over seeds"
    click.echo(f"{entry['model']} ({entry['setting']}): validation {entry['metric']} {entry['validation']:.4f}, "
               f"test {entry['test']:.4f} {spread} ({entry['seeds']} seeds); search: {search['method']}, "
               f"{search['trials']} trials ({search['budget']}), {search['seconds']:.1f}s; recorded on study {study}; "
               "see `anncnn-tune compare`")
