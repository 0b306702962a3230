"""The real datasets in ../shared/datasets (or $ANNCNN_TUNE_SHARED_DATASETS), checked against independent readings.

"Independent" means not the loader's code path: gzip + hard-coded IDX offsets for MNIST,
scikit-learn's own fetch_california_housing for California, and plain line splitting for the
Telco CSV. Each dataset skips, with the reason, where its files are absent.
"""

from __future__ import annotations

import gzip
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from helpers import SHARED_DATASETS

from anncnn_tune.data import fetch, load_dataset, tabular
from anncnn_tune.data.base import fingerprint_files

SHARED = SHARED_DATASETS

# Published per-class counts of the official training sets
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
FASHION_TRAIN_COUNTS = [6000] * 10


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    def refuse(spec, folder):
        raise AssertionError(f"a test tried to download {spec.name}")

    monkeypatch.setattr(fetch, "_download", refuse)


def shared_files(key: str) -> Path:
    folder = SHARED / fetch.REGISTRY[key].folder
    missing = [spec.name for spec in fetch.REGISTRY[key].files if not (folder / spec.name).is_file()]
    if missing:
        pytest.skip(
            f"real {key} files not found ({', '.join(missing)} in {folder}); set ANNCNN_TUNE_SHARED_DATASETS"
        )
    return folder


def test_pinned_checksums_match_the_shared_sha256sums():
    sums_file = SHARED / "SHA256SUMS"
    if not sums_file.is_file():
        pytest.skip(f"no {sums_file}")
    sums = {}
    for line in sums_file.read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    checked = 0
    for entry in fetch.REGISTRY.values():
        for spec in entry.files:
            name = f"{entry.folder}/{spec.name}"
            if name in sums:
                assert spec.sha256 == sums[name], name
                checked += 1
    assert checked == 10  # every shared file the loaders read (housing.csv is not one of them)


# ---------------------------------------------------------------- MNIST, Fashion-MNIST


def independent_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), dtype=np.uint8)[header:]


@pytest.fixture(scope="module", params=["mnist", "fashion-mnist"])
def idx_case(request):
    key = request.param
    folder = shared_files(key)
    before = sorted(p.name for p in folder.iterdir())
    start = time.perf_counter()
    splits = load_dataset(key, data_dir=SHARED, seed=0)
    seconds = time.perf_counter() - start
    reference = {
        part: (
            independent_idx(folder / f"{part}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28),
            independent_idx(folder / f"{part}-labels-idx1-ubyte.gz", 8),
        )
        for part in ("train", "t10k")
    }
    return key, folder, before, splits, seconds, reference


def test_idx_shapes_and_labels(idx_case):
    _, _, _, splits, _, _ = idx_case
    assert splits.x_train.shape == (54000, 1, 28, 28)
    assert splits.x_val.shape == (6000, 1, 28, 28)
    assert splits.x_test.shape == (10000, 1, 28, 28)
    assert {a.dtype for a in (splits.x_train, splits.x_val, splits.x_test)} == {np.dtype(np.uint8)}
    for y in (splits.y_train, splits.y_val, splits.y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert len(splits.classes) == 10 and splits.kind == "image" and splits.task == "multiclass"


def test_idx_test_split_is_the_official_one(idx_case):
    _, _, _, splits, _, reference = idx_case
    x_ref, y_ref = reference["t10k"]
    np.testing.assert_array_equal(splits.x_test[:, 0], x_ref)
    np.testing.assert_array_equal(splits.y_test, y_ref)


def test_idx_train_and_val_are_the_official_training_set(idx_case):
    key, _, _, splits, _, reference = idx_case
    x_ref, y_ref = reference["train"]
    counts = np.bincount(np.r_[splits.y_train, splits.y_val], minlength=10).tolist()
    assert counts == np.bincount(y_ref, minlength=10).tolist()
    assert counts == (MNIST_TRAIN_COUNTS if key == "mnist" else FASHION_TRAIN_COUNTS)
    # the same (image, label) pairs, as a multiset
    loaded = Counter(
        x.tobytes() + bytes([y])
        for x, y in zip(
            np.concatenate([splits.x_train[:, 0], splits.x_val[:, 0]]), np.r_[splits.y_train, splits.y_val]
        )
    )
    assert loaded == Counter(x.tobytes() + bytes([y]) for x, y in zip(x_ref, y_ref))
    # stratified validation: each class within one image of 10% of its count
    assert np.abs(np.bincount(splits.y_val) - np.array(counts) / 10).max() <= 1


def test_idx_normalisation_stats_and_provenance(idx_case):
    key, folder, _, splits, _, _ = idx_case
    expected_mean = {"mnist": 0.1307, "fashion-mnist": 0.2860}[key]  # the figures every tutorial uses
    assert splits.mean[0] / 255 == pytest.approx(expected_mean, abs=0.002)
    assert splits.fingerprint == fingerprint_files(sorted(folder.glob("*.gz")))
    assert splits.split_seed == 0


def test_idx_load_is_fast_and_writes_nothing(idx_case):
    key, folder, before, _, seconds, _ = idx_case
    print(f"{key}: cached load {seconds:.2f} s")
    assert seconds < 10, f"{key} took {seconds:.1f} s to load from a cached copy"
    assert sorted(p.name for p in folder.iterdir()) == before


# ---------------------------------------------------------------- California Housing


@pytest.fixture(scope="module")
def california(tmp_path_factory):
    import shutil

    folder = shared_files("california-housing")
    cal = pytest.importorskip("sklearn.datasets._california_housing")
    if not hasattr(cal, "_fetch_remote"):
        pytest.skip("this scikit-learn has no _fetch_remote to hand the local archive to")
    data_home = tmp_path_factory.mktemp("sklearn")

    def local_copy(remote, dirname=None, **kwargs):
        assert remote.checksum == fetch.REGISTRY["california-housing"].files[0].sha256
        target = Path(dirname) / remote.filename
        shutil.copy(folder / "cal_housing.tgz", target)  # sklearn deletes the archive afterwards
        return str(target)

    mp = pytest.MonkeyPatch()
    mp.setattr(cal, "_fetch_remote", local_copy)
    try:
        reference = cal.fetch_california_housing(data_home=str(data_home))
    finally:
        mp.undo()
    return folder, reference


def test_california_reader_agrees_with_scikit_learn(california):
    folder, reference = california
    x, y = tabular.read_cal_housing(folder / "cal_housing.tgz")
    assert x.shape == (20640, 8) and tuple(reference.feature_names) == tabular.CAL_FEATURES
    np.testing.assert_array_equal(x, reference.data)
    np.testing.assert_array_equal(y, reference.target)


def test_california_splits(california):
    _, reference = california
    splits = load_dataset("california-housing", data_dir=SHARED, seed=0)
    sizes = (len(splits.y_train), len(splits.y_val), len(splits.y_test))
    assert sum(sizes) == 20640 and sizes == (14448, 3096, 3096)
    assert splits.input_shape == (8,) and splits.feature_names == tuple(reference.feature_names)
    assert splits.task == "regression" and splits.y_train.dtype == np.float32
    targets = np.sort(np.r_[splits.y_train, splits.y_val, splits.y_test])
    np.testing.assert_array_equal(targets, np.sort(reference.target.astype(np.float32)))
    # scaled with training statistics only: the training split is standardised, the others close to it
    np.testing.assert_allclose(splits.x_train.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(splits.x_train.std(axis=0), 1, atol=1e-3)
    assert np.abs(splits.x_val.mean(axis=0)).max() > 1e-4


# ---------------------------------------------------------------- Telco churn


@pytest.fixture(scope="module")
def telco():
    folder = shared_files("churn")
    raw = (folder / "WA_Fn-UseC_-Telco-Customer-Churn.csv").read_bytes()
    lines = raw.decode("ascii").split("\r\n")
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:] if line]
    return {name: [row[i] for row in rows] for i, name in enumerate(header)}


def test_telco_file_as_documented(telco):
    assert len(telco["Churn"]) == 7043
    assert telco["Churn"].count("Yes") == 1869
    assert telco["TotalCharges"].count(" ") == 11


def test_churn_splits_agree_with_the_file(telco):
    splits = load_dataset("churn", data_dir=SHARED, seed=0)
    ys = (splits.y_train, splits.y_val, splits.y_test)
    assert sum(len(y) for y in ys) == 7043 and sum(int(y.sum()) for y in ys) == 1869
    assert len(splits.y_train) == 4929 and splits.classes == ("No", "Yes")
    for y in ys:  # stratified: the positive rate of every split is the file's 26.5%
        assert y.mean() == pytest.approx(1869 / 7043, abs=0.005)
    x = np.concatenate([splits.x_train, splits.x_val, splits.x_test])
    names = splits.feature_names
    assert x.shape[1] == len(names) and "customerID" not in names
    for column in tabular.TELCO_CATEGORICAL:
        for value, count in Counter(telco[column]).items():
            assert x[:, names.index(f"{column}={value}")].sum() == count, (column, value)
    np.testing.assert_array_equal(x[:, names.index("SeniorCitizen")].sum(), telco["SeniorCitizen"].count("1"))
    # numeric columns: standardising is affine, so sorted values line up exactly with the file's
    for column in tabular.TELCO_NUMERIC:
        raw = np.sort([float(v) if v.strip() else 0.0 for v in telco[column]])
        scaled = np.sort(x[:, names.index(column)].astype(np.float64))
        slope, intercept = np.polyfit(raw, scaled, 1)
        assert slope > 0
        np.testing.assert_allclose(slope * raw + intercept, scaled, atol=1e-4)


@pytest.mark.parametrize("key", ["mnist", "fashion-mnist", "california-housing", "churn"])
def test_shared_folder_is_used_as_is_without_network(key, monkeypatch):
    folder = shared_files(key)
    monkeypatch.setenv(fetch.OFFLINE_ENV, "1")
    paths = fetch.ensure_files(key, SHARED)
    assert [p.parent for p in paths] == [folder] * len(paths)
    status = fetch.dataset_status(key, SHARED)
    assert status["cached"] and {f["status"] for f in status["files"]} == {"ok"}
