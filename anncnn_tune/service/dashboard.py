"""`anncnn-tune dashboard`: optuna-dashboard on the workers' storage and artifact directory.

Served by wsgiref with a thread per request (optuna-dashboard's own run_server is single-threaded,
so one slow plot request would hold up every other browser tab), bound to 127.0.0.1 unless told
otherwise: the dashboard can rename and delete studies, so it should not face a network by accident.
Each study created by `optimize` carries a Markdown note (see study_note) that the dashboard shows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socketserver
import sys
import time
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
import yaml

from anncnn_tune.errors import UserError
from anncnn_tune.service import records
from anncnn_tune.service.artifacts import ENV_VAR as ARTIFACTS_ENV
from anncnn_tune.service.artifacts import AtomicArtifactStore, resolve_dir
from anncnn_tune.service.readonly import NoStudiesYet, open_storage_readonly
from anncnn_tune.service.storage import mask


def study_note(spec_dict: dict, data: dict) -> str:
    """The Markdown note a study carries: what it tunes, on what data, against which baselines."""
    description = spec_dict.get("description", "").strip()
    lines = [
        f"## {spec_dict.get('model', '?').upper()} on {data.get('dataset', spec_dict.get('dataset'))}",
        "",
        *([description, ""] if description else []),
        (f"- **dataset**: {data.get('dataset')} ({data.get('task')}, input {data.get('input_shape')}); "
         f"train/val/test {data.get('n_train')}/{data.get('n_val')}/{data.get('n_test')}, split seed "
         f"{data.get('split_seed')}"),
        f"- **data fingerprint**: `{data.get('fingerprint')}`",
        (f"- **family**: {spec_dict.get('model')}; **metric**: {spec_dict.get('metric')}; "
         f"**epochs**: {spec_dict.get('epochs')}"),
        f"- **sampler**: `{spec_dict.get('sampler')}`; **pruner**: `{spec_dict.get('pruner')}`",
        "",
        "### Baselines",
        "",
    ]
    baselines = spec_dict.get("baselines") or []
    lines += [f"- **{b['name']}**: `{b['params']}`" for b in baselines] or ["(none)"]
    spec_yaml = yaml.safe_dump(spec_dict, sort_keys=False, default_flow_style=None, width=100)
    lines += ["", "### Study spec", "", "```yaml", spec_yaml.rstrip(), "```", ""]
    return "\n".join(lines)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True  # Ctrl-C must not wait for a browser's open request
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # the signature is http.server's
        pass  # one line per static file drowns the one line that matters (the URL)


def artifacts_to_serve(flag: str | None, storage_url: str) -> Path | None:
    """The workers' artifact directory; None (no artifact store) where the default one does not
    exist yet, as no trial has stored a file: the dashboard still shows everything else."""
    directory = resolve_dir(flag, storage_url)
    if directory.is_dir():
        return directory
    if flag or os.environ.get(ARTIFACTS_ENV):
        raise UserError(f"artifact directory {directory} does not exist; pass the --artifacts DIR the workers use")
    return None


_RENAME = re.compile(r"^/api/studies/(\d+)/rename$")


def keeping_records_on_rename(app, storage):
    """optuna-dashboard's WSGI app, except that renaming a study keeps its anncnn-tune record.

    The dashboard renames a study by copying its trials, user attributes and notes into a new study
    and deleting the old one; a compact study's record lives in its other system attributes
    (service/records.py), so it is read before the rename and written onto the new study after.
    """
    def wrapped(environ, start_response):
        found = _RENAME.match(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "POST" or found is None:
            return app(environ, start_response)
        try:
            saved = records.compact_record(storage, int(found.group(1)))
        except KeyError:  # no such study: the dashboard answers that itself
            saved = {}
        status = []

        def capture(line, headers, exc_info=None):
            status.append(line)
            return start_response(line, headers, exc_info)

        answer = app(environ, capture)
        try:
            body = b"".join(answer)
        finally:
            getattr(answer, "close", lambda: None)()
        if saved and status and status[-1].startswith("201"):
            renamed = optuna.load_study(study_name=json.loads(body)["study_name"], storage=storage)
            records.restore_compact_record(renamed, saved)
        return [body]

    return wrapped


def make_dashboard_server(storage_url: str, host: str, port: int, artifacts_dir: Path | None):
    """The server, bound but not yet serving (tests use port 0 and read server_port)."""
    import optuna_dashboard  # 1-2 s to import; only this command needs it

    # Writable (the dashboard saves notes), but neither schema nor lock file is created.
    storage = open_storage_readonly(storage_url, read_only=False)
    store = AtomicArtifactStore(artifacts_dir) if artifacts_dir is not None else None  # checked to exist
    app = keeping_records_on_rename(optuna_dashboard.wsgi(storage, artifact_store=store), storage)
    try:
        return make_server(host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or --host") from None


def _when_there_are_studies(make, storage_url: str, poll_seconds: float = 2.0):
    """make() once the storage holds Optuna's schema. A dashboard started beside the workers (the
    compose file does) may find an empty database: it waits for the first study rather than
    creating the schema itself, which a command that only reads must not do."""
    waiting = False
    while True:
        try:
            return make()
        except NoStudiesYet:
            if not waiting:
                print(f"no studies in {mask(storage_url)} yet: waiting for the first `anncnn-tune optimize` "
                      "(Ctrl-C to stop)", file=sys.stderr, flush=True)
                waiting = True
            time.sleep(poll_seconds)


def _stop_now(signum, frame) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def serve(storage_url: str, host: str, port: int, artifacts_flag: str | None = None) -> None:
    """Serve until SIGINT or SIGTERM (`docker stop`), then close the storage cleanly.

    The first SIGTERM stops it, as Ctrl-C does. (A worker's handler, signals.request_stop, only
    records a first signal for the trial loop to act on; the dashboard has no trial loop, so with
    that handler `docker stop` waited its grace period and ended in SIGKILL.)"""
    previous = signal.signal(signal.SIGTERM, _stop_now)
    try:
        _serve(storage_url, host, port, artifacts_flag)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _serve(storage_url: str, host: str, port: int, artifacts_flag: str | None) -> None:
    artifacts_dir = artifacts_to_serve(artifacts_flag, storage_url)
    server = _when_there_are_studies(lambda: make_dashboard_server(storage_url, host, port, artifacts_dir),
                                     storage_url)
    shown = f"[{host}]" if ":" in host else host
    print(f"optuna-dashboard on {mask(storage_url)}"
          + (f", artifacts in {artifacts_dir}" if artifacts_dir is not None else "")
          + f": http://{shown}:{server.server_port}/dashboard  (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
