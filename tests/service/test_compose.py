"""docker-compose.yml without Docker: every command it runs is a valid anncnn-tune command, the
services are wired as documented, no secret is committed, and the same topology (PostgreSQL, two
workers, the dashboard) runs natively with the compose file's own commands and environment."""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import click
import pytest
import yaml
from helpers import REPO, run_cli, start_cli, stop_all, study_file, wait_for

from anncnn_tune.cli.main import cli
from anncnn_tune.search.spec import load_spec
from anncnn_tune.service import storage as storage_mod

COMPOSE = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OURS = [name for name, service in SERVICES.items() if "build" in service]
VARIABLE = re.compile(r"\$\{(\w+)(?::?[-?]([^}]*))?\}")


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, from the given environment."""
    def one(match):
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        assert default is not None and ":?" not in match.group(0), f"{name} is unset and has no default"
        return default
    return VARIABLE.sub(one, value).replace("$$", "$")


def argv(service: str, env: dict[str, str]) -> list[str]:
    """The anncnn-tune arguments a service runs: the image's entrypoint is the CLI itself."""
    entrypoint = SERVICES[service].get("entrypoint")
    assert entrypoint is None, "the image's ENTRYPOINT (anncnn-tune) is what runs"
    command = SERVICES[service]["command"]
    assert isinstance(command, list), "exec form, so the CLI receives docker stop's SIGTERM itself"
    return [interpolate(str(part), env) for part in command]


def parse(args: list[str]) -> click.Context:
    """Full click parsing of the real CLI (names, types, ranges), without running the command."""
    group = cli.make_context("anncnn-tune", list(args), resilient_parsing=False)
    name, command, rest = cli.resolve_command(group, group._protected_args + group.args)
    return command.make_context(name, rest, parent=group)


def test_every_command_of_the_compose_file_is_a_valid_cli_command():
    assert set(OURS) == {"worker", "dashboard"}
    env = env_example()
    for service in OURS:
        ctx = parse(argv(service, env))
        if ctx.command.name == "optimize":
            load_spec(ctx.params["study"])  # the study the workers tune exists
            assert ctx.params["n_trials"] >= 1 and ctx.params["heartbeat_interval"] >= 1
        else:
            assert ctx.command.name == "dashboard" and ctx.params["port"] == 8080
        # And through the real console entry point, as the container runs it.
        helped = run_cli(argv(service, env)[0], "--help", timeout=120)
        assert helped.returncode == 0 and "Usage: anncnn-tune " in helped.stdout, helped.stderr


def test_dockerfile_runs_the_cli_and_bakes_in_no_credentials():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["anncnn-tune"]' in dockerfile
    assert not re.search(r"(?i)password|postgresql\+psycopg://\w+:", dockerfile)


def test_services_are_wired_as_documented():
    postgres, worker, dashboard = SERVICES["postgres"], SERVICES["worker"], SERVICES["dashboard"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in postgres["volumes"])  # a persistent volume
    for service in (worker, dashboard):
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["environment"]["ANNCNN_TUNE_STORAGE"].startswith("postgresql+psycopg://${POSTGRES_USER}:")
        assert "artifacts:/artifacts" in " ".join(service["volumes"])  # checkpoints and trial files, shared
    # `--scale worker=N` needs a worker without a fixed name or published port.
    assert "container_name" not in worker and "ports" not in worker
    assert all(p.startswith("127.0.0.1:") for p in dashboard["ports"])  # the host side stays local
    assert "deploy:" in (REPO / "docker-compose.yml").read_text()  # the GPU reservation is documented


def test_credentials_come_from_the_env_file_and_none_is_committed():
    text = (REPO / "docker-compose.yml").read_text()
    env = env_example()
    assert {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"} <= set(env)
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert SERVICES["postgres"]["environment"][name].startswith(f"${{{name}:?")
    # Every variable the file uses is either documented in .env.example or has a default.
    for match in VARIABLE.finditer(text):
        assert match.group(1) in env or match.group(2) is not None, match.group(0)
    assert env["POSTGRES_PASSWORD"] == "change-me" and "change-me" not in text
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text().split()


@pytest.mark.postgres
@pytest.mark.timeout(200)
def test_the_compose_topology_runs_natively(pg_url, tmp_path):
    """PostgreSQL, two workers and the dashboard, each running its service's command and environment."""
    env = {**env_example(), "STUDY": str(study_file(tmp_path, epochs=2)), "N_TRIALS": "4",
           "HEARTBEAT_INTERVAL": "5"}
    artifacts = tmp_path / "artifacts"

    def service_env(service: str) -> dict[str, str]:
        resolved = {k: interpolate(str(v), env) for k, v in SERVICES[service]["environment"].items()}
        assert resolved["ANNCNN_TUNE_STORAGE"] == "postgresql+psycopg://anncnn:change-me@postgres:5432/anncnn"
        # The same settings, pointed at this machine's server and a temporary directory.
        resolved.update(ANNCNN_TUNE_STORAGE=pg_url, ANNCNN_TUNE_ARTIFACTS=str(artifacts))
        resolved.pop("ANNCNN_TUNE_DATA", None)  # the user cache, where the digits need no download
        return resolved

    worker_args = argv("worker", env)
    dashboard_args = [("127.0.0.1" if a == "0.0.0.0" else "0" if a == "8080" else a) for a in argv("dashboard", env)]
    artifacts.mkdir()
    processes = [start_cli(*worker_args, cwd=tmp_path, env=service_env("worker"), log=tmp_path / f"worker{i}.log")
                 for i in (1, 2)]
    log = tmp_path / "dashboard.log"
    processes.append(start_cli(*dashboard_args, cwd=tmp_path, env=service_env("dashboard"), log=log))
    try:
        for i, worker in enumerate(processes[:2], start=1):
            assert worker.wait(timeout=170) == 0, (tmp_path / f"worker{i}.log").read_text()
        try:
            found = wait_for(lambda: re.search(r"http://(127\.0\.0\.1:\d+)/dashboard", log.read_text()), 60,
                             "the dashboard to listen")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; exit code {processes[2].poll()}, its output:\n{log.read_text()}") from None
        base = f"http://{found.group(1)}"
        with urllib.request.urlopen(f"{base}/api/studies", timeout=30) as response:
            (summary,) = json.load(response)["study_summaries"]
        with urllib.request.urlopen(f"{base}/api/studies/{summary['study_id']}", timeout=30) as response:
            trials = json.load(response)["trials"]
    finally:
        stop_all(processes)
        storage_mod.close_all()
    assert summary["study_name"] == "quick-cnn"
    assert len(trials) == 4 and {t["state"] for t in trials} == {"Complete"}
    assert all(len(t["artifacts"]) == 2 for t in trials)
    outputs = "".join(Path(tmp_path / f"worker{i}.log").read_text() for i in (1, 2))
    assert "Traceback" not in outputs and "error" not in outputs
