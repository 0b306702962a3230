"""Data folder resolution, checksum verification, downloads and the `datasets` CLI group.

Downloads never leave the machine: `_download` is a failing stub, except in the tests that serve
generated files from a throwaway HTTP server on 127.0.0.1 to exercise pooch for real.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pooch
import pytest
from click.testing import CliRunner

from anncnn_tune.cli.datasets import datasets
from anncnn_tune.data import DATASETS, fetch
from anncnn_tune.errors import UserError

REAL_DOWNLOAD = fetch._download


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    calls = []

    def refuse(spec, folder):
        calls.append(spec.name)
        raise AssertionError(f"a test tried to download {spec.name}")

    monkeypatch.setattr(fetch, "_download", refuse)
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.delenv(fetch.OFFLINE_ENV, raising=False)
    return calls


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


FILES = {"a.bin": b"alpha" * 1000, "b.bin": b"beta" * 10}


@pytest.fixture
def toy(monkeypatch):
    """A registry entry 'mnist' -> folder 'toy' with two small files of known content."""
    specs = tuple(
        fetch.RemoteFile(name, (f"http://127.0.0.1:9/{name}",), sha256=sha(data))
        for name, data in FILES.items()
    )
    monkeypatch.setitem(
        fetch.REGISTRY, "mnist", fetch.RemoteDataset("toy", specs, "toy source", "toy licence")
    )
    return specs


def put(folder: Path, files=FILES) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)


# ---------------------------------------------------------------- where the data lives


def test_data_dir_argument_beats_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(fetch.DATA_ENV, str(tmp_path / "env"))
    assert fetch.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert fetch.data_root() == tmp_path / "env"
    assert fetch.dataset_dir("fashion-mnist") == tmp_path / "env" / "fashion-mnist"


def test_default_data_dir_is_the_user_cache():
    assert fetch.data_root() == Path(pooch.os_cache("anncnn-tune"))


def test_layout_matches_the_shared_folder():
    folders = {key: entry.folder for key, entry in fetch.REGISTRY.items()}
    assert folders == {
        "mnist": "mnist",
        "fashion-mnist": "fashion-mnist",
        "cifar10": "cifar10",
        "california-housing": "california-housing",
        "churn": "telco-churn",
    }
    assert set(fetch.REGISTRY) == set(DATASETS) - {"digits"}


def test_every_file_has_a_pinned_hash_and_a_url():
    for entry in fetch.REGISTRY.values():
        for spec in entry.files:
            assert spec.sha256 and len(spec.sha256) == 64 or spec.md5 and len(spec.md5) == 32
            assert spec.urls and all(u.startswith(("https://", "http://")) for u in spec.urls)
    cifar = fetch.REGISTRY["cifar10"].files[0]
    assert cifar.known_hash == "sha256:6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
    assert cifar.md5 == "c58f30108f718f92721af3b95e74349a"
    assert fetch.RemoteFile("x", ("http://h/x",), md5="ab" * 16).known_hash == "md5:" + "ab" * 16


# ---------------------------------------------------------------- verification


def test_present_files_are_used_without_network(tmp_path, toy, _offline):
    put(tmp_path / "toy")
    paths = fetch.ensure_files("mnist", tmp_path)
    assert paths == [tmp_path / "toy" / "a.bin", tmp_path / "toy" / "b.bin"]
    assert _offline == []


def test_md5_pins_are_checked_too(tmp_path, monkeypatch):
    spec = fetch.RemoteFile("a.bin", ("http://127.0.0.1:9/a",), md5=hashlib.md5(FILES["a.bin"]).hexdigest())
    monkeypatch.setitem(fetch.REGISTRY, "mnist", fetch.RemoteDataset("toy", (spec,), "s", "l"))
    put(tmp_path / "toy", {"a.bin": FILES["a.bin"]})
    assert fetch.ensure_files("mnist", tmp_path) == [tmp_path / "toy" / "a.bin"]
    (tmp_path / "toy" / "a.bin").write_bytes(b"other")
    with pytest.raises(UserError, match="md5"):
        fetch.ensure_files("mnist", tmp_path)


def test_wrong_checksum_names_file_and_hashes_and_keeps_the_file(tmp_path, toy, _offline):
    folder = tmp_path / "toy"
    put(folder, {"a.bin": b"tampered"})  # b.bin missing as well: nothing may be downloaded
    with pytest.raises(UserError) as excinfo:
        fetch.ensure_files("mnist", tmp_path)
    message = one_line(excinfo)
    assert str(folder / "a.bin") in message
    assert sha(b"tampered")[:12] in message and sha(FILES["a.bin"])[:12] in message
    assert "delete it" in message and "datasets fetch mnist" in message
    assert (folder / "a.bin").read_bytes() == b"tampered"
    assert sorted(p.name for p in folder.iterdir()) == ["a.bin"]
    assert _offline == []


def test_missing_files_offline_name_files_and_folder(tmp_path, toy, monkeypatch):
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    put(tmp_path / "toy", {"b.bin": FILES["b.bin"]})
    with pytest.raises(UserError) as excinfo:
        fetch.ensure_files("mnist", tmp_path)
    message = one_line(excinfo)
    assert "a.bin" in message and "b.bin" not in message and str(tmp_path / "toy") in message


def test_missing_files_without_download_point_at_fetch(tmp_path, toy):
    with pytest.raises(UserError) as excinfo:
        fetch.ensure_files("mnist", tmp_path, download=False)
    assert "a.bin, b.bin" in one_line(excinfo) and "anncnn-tune datasets fetch mnist" in str(excinfo.value)
    assert not (tmp_path / "toy").exists()


def test_unreachable_mirrors_are_a_one_line_error_and_leave_no_folder(tmp_path, toy, monkeypatch):
    def unreachable(spec, folder):
        raise OSError(f"http://127.0.0.1:9/{spec.name}: Connection refused\nsecond line")

    monkeypatch.setattr(fetch, "_download", unreachable)
    with pytest.raises(UserError) as excinfo:
        fetch.ensure_files("mnist", tmp_path)
    assert "could not download a.bin" in one_line(excinfo) and "Connection refused" in str(excinfo.value)
    assert not (tmp_path / "toy").exists()


def test_loader_refuses_a_bad_file(tmp_path, toy):
    put(tmp_path / "toy", {"a.bin": b"x", "b.bin": FILES["b.bin"]})
    with pytest.raises(UserError, match="a.bin"):
        DATASETS["mnist"].load(data_dir=tmp_path)


def test_unknown_key_is_a_one_line_error():
    with pytest.raises(UserError) as excinfo:
        fetch.ensure_files("imagenet")
    assert "imagenet" in one_line(excinfo)


# ---------------------------------------------------------------- real downloads from 127.0.0.1


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server over tmp_path/www; the proxy variables must not send it elsewhere."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    monkeypatch.setattr(fetch, "_download", REAL_DOWNLOAD)
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_tries_mirrors_in_order_and_verifies(tmp_path, server, monkeypatch):
    www, base = server
    (www / "a.bin").write_bytes(FILES["a.bin"])
    spec = fetch.RemoteFile("a.bin", (f"{base}/gone/a.bin", f"{base}/a.bin"), sha256=sha(FILES["a.bin"]))
    monkeypatch.setitem(fetch.REGISTRY, "mnist", fetch.RemoteDataset("toy", (spec,), "s", "l"))
    (path,) = fetch.fetch("mnist", tmp_path / "data")
    assert path.read_bytes() == FILES["a.bin"]
    assert [p.name for p in path.parent.iterdir()] == ["a.bin"]


def test_download_with_wrong_hash_never_becomes_a_cache_entry(tmp_path, server, monkeypatch):
    www, base = server
    (www / "a.bin").write_bytes(b"not what was pinned")
    spec = fetch.RemoteFile("a.bin", (f"{base}/a.bin",), sha256=sha(FILES["a.bin"]))
    monkeypatch.setitem(fetch.REGISTRY, "mnist", fetch.RemoteDataset("toy", (spec,), "s", "l"))
    with pytest.raises(UserError) as excinfo:
        fetch.fetch("mnist", tmp_path / "data")
    assert "could not download a.bin" in one_line(excinfo)
    assert not (tmp_path / "data").exists()  # no file, no temporary file, no empty folders


# ---------------------------------------------------------------- status


def test_status_reports_ok_missing_and_bad(tmp_path, toy):
    status = fetch.dataset_status("mnist", tmp_path)
    assert not status["cached"] and [f["status"] for f in status["files"]] == ["missing", "missing"]
    put(tmp_path / "toy", {"a.bin": FILES["a.bin"], "b.bin": b"bad"})
    status = fetch.dataset_status("mnist", tmp_path)
    assert [f["status"] for f in status["files"]] == ["ok", "bad"] and not status["cached"]
    assert status["size"] == len(FILES["a.bin"]) + 3
    put(tmp_path / "toy")
    status = fetch.dataset_status("mnist", tmp_path)
    assert status["cached"] and status["source"] == "toy source" and status["license"] == "toy licence"
    assert status["folder"] == str(tmp_path / "toy")


def test_status_of_a_bundled_dataset():
    status = fetch.dataset_status("digits")
    assert status["bundled"] and status["cached"] and status["files"] == []
    assert status["license"] == DATASETS["digits"].license


# ---------------------------------------------------------------- CLI


def test_cli_lists_every_dataset_with_status_source_and_licence(tmp_path, toy):
    put(tmp_path / "toy")
    result = CliRunner().invoke(datasets, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    for key, info in DATASETS.items():
        licence = fetch.REGISTRY[key].license if key in fetch.REGISTRY else info.license
        assert key in result.output and licence in result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line and not line.startswith(" ")}
    assert "cached" in lines["mnist"] and "bundled" in lines["digits"] and "missing" in lines["cifar10"]
    assert "a.bin" in result.output and "sha256 ok" in result.output


def test_cli_list_flags_a_bad_file(tmp_path, toy):
    put(tmp_path / "toy", {"a.bin": b"bad", "b.bin": FILES["b.bin"]})
    result = CliRunner().invoke(datasets, ["--data-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert "BAD" in next(line for line in result.output.splitlines() if line.startswith("mnist"))
    assert "sha256 bad" in result.output


def test_cli_fetch_verifies_present_files(tmp_path, toy, _offline):
    put(tmp_path / "toy")
    result = CliRunner().invoke(datasets, ["fetch", "mnist", "--data-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.output.count(" ok") == 2 and _offline == []


def test_cli_fetch_lets_user_errors_through(tmp_path, toy):
    put(tmp_path / "toy", {"a.bin": b"bad"})
    result = CliRunner().invoke(datasets, ["fetch", "mnist", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, UserError) and "a.bin" in str(result.exception)
    assert (tmp_path / "toy" / "a.bin").read_bytes() == b"bad"
    result = CliRunner().invoke(datasets, ["fetch", "nope"])
    assert isinstance(result.exception, UserError) and "unknown dataset 'nope'" in str(result.exception)


def test_cli_fetch_all_goes_on_after_a_failure(tmp_path, toy, monkeypatch):
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    put(tmp_path / "toy")
    result = CliRunner().invoke(datasets, ["fetch", "all", "--data-dir", str(tmp_path)])
    assert isinstance(result.exception, UserError)
    message = str(result.exception)
    assert "\n" not in message
    for key in ("cifar10", "california-housing", "churn", "fashion-mnist"):
        assert key in message
    assert "digits: bundled" in result.output and "mnist: " in result.output and "a.bin ok" in result.output
