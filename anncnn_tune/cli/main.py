"""Command line: thin wrappers that parse, call one library function and print.

User mistakes (UserError, and click's usage errors) become one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys

import click

from anncnn_tune import api
from anncnn_tune.cli.datasets import datasets
from anncnn_tune.cli.delete import delete
from anncnn_tune.cli.init import init_command
from anncnn_tune.cli.listing import echo_rows
from anncnn_tune.cli.options import DEVICES, SECONDS, SEED, SUBSET, WORKERS, storage_option
from anncnn_tune.cli.relocate import relocate
from anncnn_tune.cli.results import compare, export, predict, reference, retrain
from anncnn_tune.errors import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="anncnn-tune")
def cli():
    """Hyperparameter search for the ANN-vs-CNN question, on PyTorch and Optuna.

    \b
    anncnn-tune optimize --study digits-cnn     # run (or resume) a study
    anncnn-tune studies                         # study files and stored studies
    anncnn-tune compare                         # ANN vs CNN per dataset, best trials side by side
    anncnn-tune dashboard                       # optuna-dashboard on the same storage
    anncnn-tune export --study digits-cnn -o best.yaml && anncnn-tune retrain best.yaml
    anncnn-tune datasets                        # datasets: cached or not, checksums, licences
    """


@cli.command()
@click.option("--study", required=True, help="Built-in study name (see `anncnn-tune studies`) or path to a YAML file.")
@click.option("--study-name", default=None, metavar="NAME",
              help="Store the study under NAME instead of the file's name (variants of one file side by side).")
@storage_option
@click.option("--n-trials", type=click.IntRange(min=1), default=None,
              help="The study's total number of finished (complete or pruned) trials, across runs and workers "
                   "(default: the grid's size for `sampler: grid`, else 30).")
@click.option("--timeout", type=SECONDS, default=None,
              help="Stop starting new trials after this many seconds.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the study's epoch budget.")
@click.option("--seed", type=SEED, default=None, help="Override the study's seed (sampler, splits, model init).")
@click.option("--subset", type=SUBSET, default=None, metavar="FRACTION|COUNT",
              help="Train on a seeded part of the training split (a fraction in (0, 1] such as 0.2, or a whole "
                   "count such as 500), for quick looks on a CPU; validation and test splits stay whole.")
@click.option("--dataset", default=None, metavar="PATH",
              help="Run the study on your copy of its data: a file or folder of the same kind (a folder of "
                   "32x32 colour images in class folders for cifar10-cnn). Stored as NAME-on-FOLDER.")
@click.option("--data-dir", default=None, metavar="DIR",
              help="Dataset cache directory (default: $ANNCNN_TUNE_DATA, else the per-user cache).")
@click.option("--heartbeat-interval", type=click.IntRange(min=1), default=api.DEFAULT_HEARTBEAT,
              show_default=True, help="Seconds between worker heartbeats; a trial silent for two is retried.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each trial's model; compile time is recorded apart (compile_seconds).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads per worker (default: cores // workers, or OMP_NUM_THREADS); "
                   "use 1 on a machine shared with other work.")
@click.option("--quiet", is_flag=True, help="Print only the final summary.")
@click.option("--workers", type=WORKERS, default="1", show_default=True,
              help="Worker processes on this machine, each with max(1, cores // N) torch threads; `auto` picks "
                   "N from the cores this process may use (affinity, container quota), the model's size and the "
                   "memory, and prints why.")
@click.option("--devices", type=DEVICES, default=None, metavar="LIST",
              help="Comma-separated devices the workers take round-robin, e.g. cuda:0,cuda:1 (overrides --device).")
@click.option("--artifacts", default=None, metavar="DIR",
              help="Checkpoints and per-trial files for the dashboard. Default: $ANNCNN_TUNE_ARTIFACTS, else "
                   "NAME-artifacts/ beside a SQLite file NAME.db, else ./anncnn-tune-artifacts.")
def optimize(study, study_name, storage, n_trials, timeout, device, epochs, seed, subset, dataset, data_dir,
             heartbeat_interval,
             compile_, threads, quiet, workers, devices, artifacts):
    """Run (or resume) a study until it holds --n-trials finished trials.

    Exit codes: 0 done (or --timeout reached), 2 a mistake in the input or an unreachable storage,
    130 stopped by SIGINT/SIGTERM (the running trials stop after their epoch and are re-queued), 1 a
    worker died (its trial is retried by the next run).
    """
    result = api.optimize(study, storage=storage, n_trials=n_trials, timeout=timeout, device=device, epochs=epochs,
                          seed=seed, subset=subset, data_dir=data_dir, compile=compile_, threads=threads,
                          heartbeat_interval=heartbeat_interval, quiet=quiet, artifacts=artifacts,
                          workers=workers, devices=devices, study_name=study_name,
                          dataset=dataset)
    states = ", ".join(f"{n} {s}" for s, n in result.states.items())
    click.echo(f"study {result.study_name}: {states}")
    click.echo(f"this launch: {result.finished_here} trial(s) finished, wall time {api.duration_text(result.wall_seconds)}")
    if result.timed_out:
        click.echo(f"--timeout reached after {result.ran_here} trial(s) here; run the same command to go on")
    if result.best_trial is not None:
        tag = f" [{result.best_baseline}]" if result.best_baseline else ""
        click.echo(f"best value {result.best_value:.6g} (trial {result.best_trial}{tag})")
        click.echo("best params " + json.dumps(result.best_params, sort_keys=True))
    if result.interrupted:
        click.echo("interrupted: the running trial stopped after its epoch and was re-queued; run the same command to resume it", err=True)
        sys.exit(130)
    if result.worker_failures:
        click.echo("error: " + "; ".join(result.worker_failures), err=True)
        sys.exit(1)


@cli.command()
@storage_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes the dashboard (which can delete studies) to the network.")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8080, show_default=True,
              help="Port to listen on; 0 picks a free one (the URL is printed).")
@click.option("--artifacts", default=None, metavar="DIR",
              help="The workers' artifact directory (learning curves, model summaries). Default as for optimize.")
def dashboard(storage, host, port, artifacts):
    """Serve optuna-dashboard on the storage and artifact directory the workers use."""
    try:
        api.dashboard(storage=storage, host=host, port=port, artifacts=artifacts)
    except KeyboardInterrupt:
        click.echo("dashboard stopped", err=True)


@cli.command()
@storage_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def studies(storage, as_json):
    """List the built-in study files and the studies in the storage."""
    listing = api.studies(storage)
    files, stored = listing["study_files"], listing["studies"]
    if as_json:
        click.echo(json.dumps(listing, indent=2))
        return
    click.echo("study files:")
    for row in files:
        click.echo(f"  {row['name']:<26} {row['dataset']:<20} {row['model']:<7} {row['metric']:<13} "
                   f"{row['epochs']:>3} epochs  {row['searchable']:>2} searchable  {row['baselines']} baseline(s)")
    echo_rows(f"\nstudies in {listing['storage']}:", stored, _study_line,
              no_storage="no storage yet: run `anncnn-tune optimize --study NAME`", empty="none")


def _study_line(row: dict) -> str:
    states = ", ".join(f"{n} {s}" for s, n in row["states"].items()) or "no trials"
    best = f"best {row['metric']} {row['best_value']:.4f} (trial {row['best_trial']})" \
        if row["best_value"] is not None else "no complete trial"
    return f"{row['name']:<26} {states:<40} {best}"


for command in (datasets, compare, export, retrain, predict, reference):
    cli.add_command(command)
cli.add_command(init_command)
cli.add_command(delete)
cli.add_command(relocate)


def _one_line(text: str) -> str:
    """A message stays one line even when it quotes user input with line breaks in it (a file name)."""
    return " ".join(str(text).splitlines())


def main(argv=None) -> None:
    try:
        cli.main(args=argv, prog_name="anncnn-tune", standalone_mode=False)
    except UserError as exc:
        click.echo(f"error: {_one_line(exc)}", err=True)
        sys.exit(getattr(exc, "exit_code", 2))  # 1 for a run that failed (storage.StorageLost)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        hint = f" (see `{exc.ctx.command_path} --help`)" if getattr(exc, "ctx", None) else ""
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)

