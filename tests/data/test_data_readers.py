"""Readers and loaders on small files written here in each official format, good and corrupted.

The generated files go through the same path as the real ones: `fetch.REGISTRY` is pointed at
them (with their own sha256), so checksum verification, decoding, splitting and the CIFAR fast
cache all run for real. Nothing is downloaded: `_download` is replaced by a failing stub.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from anncnn_tune.data import DATASETS, fetch, images, load_dataset, tabular
from anncnn_tune.data.base import fingerprint_files
from anncnn_tune.errors import UserError

# ---------------------------------------------------------------- fixtures and writers


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    def refuse(spec, folder):
        raise AssertionError(f"a test tried to download {spec.name}")

    monkeypatch.setattr(fetch, "_download", refuse)
    monkeypatch.delenv(fetch.DATA_ENV, raising=False)
    monkeypatch.delenv(fetch.OFFLINE_ENV, raising=False)


def sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def pin(monkeypatch, key: str, folder: Path) -> None:
    """Point the registry entry `key` at the files now in `folder`, with their own checksums."""
    entry = fetch.REGISTRY[key]
    files = tuple(
        fetch.RemoteFile(spec.name, ("http://127.0.0.1:9/unused",), sha256=sha256(folder / spec.name))
        for spec in entry.files
    )
    monkeypatch.setitem(
        fetch.REGISTRY, key, fetch.RemoteDataset(entry.folder, files, entry.source, entry.license)
    )


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message
    return message


def write_idx(path: Path, array: np.ndarray, magic: int | None = None) -> None:
    """IDX: 0x0000, type 0x08 (ubyte), ndim, big-endian int32 dims, raw bytes; then gzip."""
    magic = (0x08 << 8) | array.ndim if magic is None else magic
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes(), mtime=0))


def make_idx_set(folder: Path, n_train: int = 100, n_test: int = 20, seed: int = 0):
    """A balanced mini MNIST: 10 images per class in train, 2 in test."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train": (rng.integers(0, 256, (n_train, 28, 28)), np.arange(n_train) % 10),
        "t10k": (rng.integers(0, 256, (n_test, 28, 28)), np.arange(n_test) % 10),
    }
    for part, (x, y) in arrays.items():
        write_idx(folder / f"{part}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{part}-labels-idx1-ubyte.gz", y)
    return arrays


class Py2Pickler(pickle._Pickler):
    """Writes pickles the way Python 2's cPickle wrote the official CIFAR-10 batches.

    Every string becomes a Python 2 `str` (SHORT_BINSTRING/BINSTRING), which `encoding="bytes"`
    reads back as bytes; Python 3's protocol 2 would instead wrap bytes in `_codecs.encode`.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj):
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_py2_str
    dispatch[bytes] = save_py2_str


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    Py2Pickler(buf, protocol=2).dump(obj)
    # the official files name numpy 1's module path
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


CIFAR_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_members(per_batch: int = 20, n_test: int = 20, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    members = {}
    for i in range(1, 6):
        batch = {
            "batch_label": f"training batch {i} of 5",
            "labels": [int(v) for v in np.arange(per_batch) % 10],
            "data": rng.integers(0, 256, (per_batch, 3072)).astype(np.uint8),
            "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
        }
        members[f"data_batch_{i}"] = py2_pickle(batch)
    test = {
        "batch_label": "testing batch 1 of 1",
        "labels": [int(v) for v in np.arange(n_test) % 10],
        "data": rng.integers(0, 256, (n_test, 3072)).astype(np.uint8),
        "filenames": [f"test_{j}.png" for j in range(n_test)],
    }
    members["test_batch"] = py2_pickle(test)
    members["batches.meta"] = py2_pickle(
        {"label_names": CIFAR_NAMES, "num_cases_per_batch": 10000, "num_vis": 3072}
    )
    return members


def write_tar(path: Path, members: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def write_cifar(folder: Path, members: dict[str, bytes] | None = None) -> Path:
    members = cifar_members() if members is None else members
    path = folder / "cifar-10-python.tar.gz"
    write_tar(path, {f"cifar-10-batches-py/{k}": v for k, v in members.items()})
    return path


def cal_rows(n: int = 40, seed: int = 0) -> np.ndarray:
    """Rows in cal_housing.data's column order: lon, lat, age, rooms, bedrooms, pop, households, income, value."""
    rng = np.random.default_rng(seed)
    households = rng.integers(50, 2000, n).astype(float)
    return np.column_stack(
        [
            rng.uniform(-124.3, -114.3, n).round(2),
            rng.uniform(32.5, 42.0, n).round(2),
            rng.integers(1, 52, n).astype(float),
            (households * rng.uniform(3, 7, n)).round(0),
            (households * rng.uniform(0.8, 1.2, n)).round(0),
            (households * rng.uniform(2, 4, n)).round(0),
            households,
            rng.uniform(0.5, 15, n).round(4),
            rng.integers(14999, 500001, n).astype(float),
        ]
    )


def write_cal(folder: Path, rows: np.ndarray, columns: int = 9) -> Path:
    text = "\n".join(",".join(f"{v:f}" for v in row[:columns]) for row in rows) + "\n"
    path = folder / "cal_housing.tgz"
    write_tar(
        path,
        {
            "CaliforniaHousing/cal_housing.data": text.encode(),
            "CaliforniaHousing/cal_housing.domain": b"longitude: continuous.\n",
        },
    )
    return path


TELCO_HEADER = [
    "customerID", "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService",
    "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
    "TechSupport", "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling", "PaymentMethod",
    "MonthlyCharges", "TotalCharges", "Churn",
]  # fmt: skip


def telco_rows(n: int = 40, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    yes_no = ["Yes", "No"]
    service = ["Yes", "No", "No internet service"]
    rows = []
    for i in range(n):
        tenure = int(rng.integers(0, 72)) if i % 7 else 0
        monthly = round(float(rng.uniform(18, 120)), 2)
        rows.append(
            {
                "customerID": f"{i:04d}-ABCDE",
                "gender": ["Female", "Male"][i % 2],
                "SeniorCitizen": str(int(rng.integers(0, 2))),
                "Partner": yes_no[int(rng.integers(0, 2))],
                "Dependents": yes_no[int(rng.integers(0, 2))],
                "tenure": str(tenure),
                "PhoneService": yes_no[int(rng.integers(0, 2))],
                "MultipleLines": ["Yes", "No", "No phone service"][int(rng.integers(0, 3))],
                "InternetService": ["DSL", "Fiber optic", "No"][int(rng.integers(0, 3))],
                **{
                    c: service[int(rng.integers(0, 3))]
                    for c in (
                        "OnlineSecurity",
                        "OnlineBackup",
                        "DeviceProtection",
                        "TechSupport",
                        "StreamingTV",
                        "StreamingMovies",
                    )
                },
                "Contract": ["Month-to-month", "One year", "Two year"][int(rng.integers(0, 3))],
                "PaperlessBilling": yes_no[int(rng.integers(0, 2))],
                "PaymentMethod": ["Electronic check", "Mailed check"][int(rng.integers(0, 2))],
                "MonthlyCharges": f"{monthly}",
                # tenure 0 customers have a blank TotalCharges (a single space), as in IBM's file
                "TotalCharges": " " if tenure == 0 else f"{monthly * tenure:.2f}",
                "Churn": "Yes" if i % 4 == 0 else "No",
            }
        )
    return rows


def write_telco(folder: Path, rows: list[dict], header: list[str] = TELCO_HEADER) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
    lines = [",".join(header)] + [",".join(row[c] for c in header) for row in rows]
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    return path


# ---------------------------------------------------------------- IDX


def test_read_idx_returns_the_written_arrays(tmp_path):
    arrays = make_idx_set(tmp_path)
    x, y = images.read_idx_pair(
        tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz"
    )
    assert x.dtype == np.uint8 and x.shape == (100, 1, 28, 28) and x.flags.writeable
    assert y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0], arrays["train"][0])
    np.testing.assert_array_equal(y, arrays["train"][1])


def test_truncated_gzip_is_a_one_line_error(tmp_path):
    make_idx_set(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(UserError) as excinfo:
        images.read_idx(path, ndim=3)
    assert "truncated" in one_line(excinfo) and path.name in str(excinfo.value)


def test_not_gzip_is_a_one_line_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(b"<html>404 not found</html>")
    with pytest.raises(UserError) as excinfo:
        images.read_idx(path, ndim=3)
    assert "gzip" in one_line(excinfo)


def test_wrong_magic_number_is_a_one_line_error(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    write_idx(path, np.zeros(10), magic=0x00000803)  # an images magic on a labels file
    with pytest.raises(UserError) as excinfo:
        images.read_idx(path, ndim=1)
    assert "0x00000803" in one_line(excinfo) and "0x00000801" in str(excinfo.value)


def test_header_size_disagreeing_with_body_is_a_one_line_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    header = struct.pack(">IIII", 0x803, 5, 28, 28)
    path.write_bytes(gzip.compress(header + bytes(4 * 28 * 28)))
    with pytest.raises(UserError) as excinfo:
        images.read_idx(path, ndim=3)
    assert "(5, 28, 28)" in one_line(excinfo)


def test_image_and_label_count_mismatch_is_a_one_line_error(tmp_path):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(99) % 10)
    with pytest.raises(UserError) as excinfo:
        images.read_idx_pair(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    assert "100 images" in one_line(excinfo) and "99" in str(excinfo.value)


def test_label_out_of_range_is_a_one_line_error(tmp_path):
    make_idx_set(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(100, 12))
    with pytest.raises(UserError) as excinfo:
        images.read_idx_pair(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    assert "label 12" in one_line(excinfo)


@pytest.mark.parametrize("key", ["mnist", "fashion-mnist"])
def test_idx_loader_keeps_test_split_and_takes_stratified_val(tmp_path, monkeypatch, key):
    folder = tmp_path / fetch.REGISTRY[key].folder
    arrays = make_idx_set(folder)
    pin(monkeypatch, key, folder)
    splits = load_dataset(key, data_dir=tmp_path, seed=3)
    assert splits.x_train.shape == (90, 1, 28, 28) and splits.x_val.shape == (10, 1, 28, 28)
    assert splits.x_train.dtype == splits.x_val.dtype == splits.x_test.dtype == np.uint8
    np.testing.assert_array_equal(splits.x_test[:, 0], arrays["t10k"][0])  # official test split, in order
    np.testing.assert_array_equal(splits.y_test, arrays["t10k"][1])
    assert np.bincount(splits.y_val).tolist() == [1] * 10  # stratified 10%
    train_rows = Counter(
        x.tobytes() + bytes([y])
        for x, y in zip(np.concatenate([splits.x_train, splits.x_val]), np.r_[splits.y_train, splits.y_val])
    )
    expected = Counter(x.astype(np.uint8).tobytes() + bytes([y]) for x, y in zip(*arrays["train"]))
    assert train_rows == expected
    assert splits.fingerprint == fingerprint_files(sorted(folder.iterdir()))
    assert splits.split_seed == 3
    assert len(splits.classes) == 10 and splits.out_dim == 10
    mean = splits.x_train.astype(np.float64).mean()
    assert splits.mean == pytest.approx((mean,)) and 0 < splits.std[0] < 255


def test_idx_loader_is_seeded(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    make_idx_set(folder)
    pin(monkeypatch, "mnist", folder)
    a, b, c = (load_dataset("mnist", data_dir=tmp_path, seed=s) for s in (1, 1, 2))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.y_val, c.y_val) or not np.array_equal(a.x_val, c.x_val)


def test_subset_thins_only_the_training_split(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    make_idx_set(folder)
    pin(monkeypatch, "mnist", folder)
    half = load_dataset("mnist", data_dir=tmp_path, subset=0.5)
    counted = load_dataset("mnist", data_dir=tmp_path, subset=30)
    full = load_dataset("mnist", data_dir=tmp_path)
    assert len(half.y_train) == 45 and len(counted.y_train) == 30
    for part in (half, counted):
        np.testing.assert_array_equal(part.x_val, full.x_val)
        np.testing.assert_array_equal(part.x_test, full.x_test)


def test_corrupt_idx_with_matching_checksum_still_fails_cleanly(tmp_path, monkeypatch):
    folder = tmp_path / "mnist"
    make_idx_set(folder)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(20), magic=0x0803)
    pin(monkeypatch, "mnist", folder)  # as if the registry pinned a bad file: the reader is the last guard
    before = sorted(folder.iterdir())
    with pytest.raises(UserError) as excinfo:
        load_dataset("mnist", data_dir=tmp_path)
    assert "magic" in one_line(excinfo)
    assert sorted(folder.iterdir()) == before


# ---------------------------------------------------------------- CIFAR-10


def test_restricted_unpickler_reads_python2_style_batches():
    raw = cifar_members()["data_batch_1"]
    assert b"numpy.core.multiarray" in raw and b"_codecs" not in raw
    batch = images._BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    reference = pickle.loads(raw, encoding="bytes")  # the official loader's way, unrestricted
    assert batch.keys() == reference.keys() == {b"batch_label", b"labels", b"data", b"filenames"}
    np.testing.assert_array_equal(batch[b"data"], reference[b"data"])


def test_read_cifar10_decodes_every_batch(tmp_path):
    members = cifar_members()
    path = write_cifar(tmp_path, members)
    x_train, y_train, x_test, _, classes = images.read_cifar10(path)
    assert x_train.shape == (100, 3, 32, 32) and x_test.shape == (20, 3, 32, 32)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    assert classes == tuple(CIFAR_NAMES)
    first = pickle.loads(members["data_batch_1"], encoding="bytes")
    # CIFAR rows are 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major
    np.testing.assert_array_equal(x_train[:20].reshape(20, -1), first[b"data"])
    np.testing.assert_array_equal(x_train[5, 1], first[b"data"][5, 1024:2048].reshape(32, 32))
    np.testing.assert_array_equal(y_train[:20], first[b"labels"])


def test_cifar_loader_writes_fast_cache_once_and_reads_it(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    write_cifar(folder)
    pin(monkeypatch, "cifar10", folder)
    first = load_dataset("cifar10", data_dir=tmp_path, seed=1)
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-python.npz", "cifar-10-python.tar.gz"]
    assert first.x_train.shape == (90, 3, 32, 32) and first.x_val.shape == (10, 3, 32, 32)
    assert first.classes == tuple(CIFAR_NAMES) and len(first.mean) == 3

    def no_decode(path):
        raise AssertionError("the fast cache should have been used")

    monkeypatch.setattr(images, "read_cifar10", no_decode)
    second = load_dataset("cifar10", data_dir=tmp_path, seed=1)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    np.testing.assert_array_equal(first.y_test, second.y_test)
    assert first.classes == second.classes and first.fingerprint == second.fingerprint


def test_cifar_fast_cache_from_other_bytes_is_rebuilt(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    write_cifar(folder, cifar_members(seed=1))
    pin(monkeypatch, "cifar10", folder)
    old = load_dataset("cifar10", data_dir=tmp_path)
    write_cifar(folder, cifar_members(seed=2))  # a different tarball under the same name
    pin(monkeypatch, "cifar10", folder)
    new = load_dataset("cifar10", data_dir=tmp_path)
    assert not np.array_equal(old.x_test, new.x_test)
    x_train, *_ = images.read_cifar10(folder / "cifar-10-python.tar.gz")
    with np.load(folder / "cifar-10-python.npz") as npz:
        np.testing.assert_array_equal(npz["x_train"], x_train)


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_fast_cache_is_decoded_again_and_replaced(tmp_path, monkeypatch, damage):
    folder = tmp_path / "cifar10"
    write_cifar(folder)
    pin(monkeypatch, "cifar10", folder)
    first = load_dataset("cifar10", data_dir=tmp_path)
    cache = folder / "cifar-10-python.npz"
    blob = cache.read_bytes()
    cache.write_bytes(blob[: len(blob) // 2] if damage == "truncated" else b"PK\x03\x04" + bytes(200))
    again = load_dataset("cifar10", data_dir=tmp_path)
    np.testing.assert_array_equal(first.x_train, again.x_train)
    assert cache.read_bytes() == blob  # rebuilt whole
    assert sorted(p.name for p in folder.iterdir()) == ["cifar-10-python.npz", "cifar-10-python.tar.gz"]


def test_cifar_loads_without_a_writable_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cifar10"
    write_cifar(folder)
    pin(monkeypatch, "cifar10", folder)

    def read_only(target, write, **kwargs):
        raise PermissionError(13, "Read-only file system", str(target))

    monkeypatch.setattr(images, "write_atomically", read_only)
    splits = load_dataset("cifar10", data_dir=tmp_path)
    assert len(splits.y_test) == 20
    assert [p.name for p in folder.iterdir()] == ["cifar-10-python.tar.gz"]


class Payload:
    """A harmless custom class: still not something a CIFAR batch may contain."""


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _bad_batches(tmp_path):
    marker = tmp_path / "pwned"
    good = cifar_members()
    data = pickle.loads(good["data_batch_1"], encoding="bytes")
    return marker, {
        "os.system": pickle.dumps(Exploit(marker), protocol=2),
        "custom class": py2_pickle({"data": Payload(), "labels": [0]}),
        "list instead of array": py2_pickle({"data": data[b"data"].tolist(), "labels": data[b"labels"]}),
        "not a dict": py2_pickle(["data", 1, 2]),
        "float labels": py2_pickle({"data": data[b"data"], "labels": [0.5] * 20}),
        "truncated pickle": good["data_batch_1"][:500],
    }


@pytest.mark.parametrize(
    "case",
    ["os.system", "custom class", "list instead of array", "not a dict", "float labels", "truncated pickle"],
)
def test_bad_cifar_batch_is_refused_and_nothing_is_cached(tmp_path, monkeypatch, case):
    marker, bad = _bad_batches(tmp_path)
    members = cifar_members()
    members["data_batch_3"] = bad[case]
    folder = tmp_path / "cifar10"
    write_cifar(folder, members)
    pin(monkeypatch, "cifar10", folder)  # even a matching checksum does not let it through
    with pytest.raises(UserError) as excinfo:
        load_dataset("cifar10", data_dir=tmp_path)
    assert "data_batch_3" in one_line(excinfo)
    refused = {"os.system": "system", "custom class": "Payload"}
    assert refused.get(case, "") in str(excinfo.value)
    assert not marker.exists()
    assert [p.name for p in folder.iterdir()] == ["cifar-10-python.tar.gz"]  # no cache, no temp files


def test_cifar_tarball_missing_a_member_is_a_one_line_error(tmp_path):
    members = cifar_members()
    del members["batches.meta"]
    path = write_cifar(tmp_path, members)
    with pytest.raises(UserError) as excinfo:
        images.read_cifar10(path)
    assert "batches.meta" in one_line(excinfo)


def test_truncated_cifar_tarball_is_a_one_line_error(tmp_path):
    path = write_cifar(tmp_path)
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(UserError) as excinfo:
        images.read_cifar10(path)
    one_line(excinfo)


# ---------------------------------------------------------------- California Housing


def sklearn_california(tgz: Path, data_home: Path):
    """scikit-learn's own fetch_california_housing, handed a local copy instead of a download."""
    import shutil

    cal = pytest.importorskip("sklearn.datasets._california_housing")
    if not hasattr(cal, "_fetch_remote"):
        pytest.skip("this scikit-learn has no _fetch_remote to hand a local archive to")

    def local_copy(remote, dirname=None, **kwargs):
        target = Path(dirname) / remote.filename
        shutil.copy(tgz, target)  # sklearn deletes the archive after converting it
        return str(target)

    mp = pytest.MonkeyPatch()
    mp.setattr(cal, "_fetch_remote", local_copy)
    try:
        return cal.fetch_california_housing(data_home=str(data_home))
    finally:
        mp.undo()


def test_cal_housing_reader_matches_scikit_learn(tmp_path):
    path = write_cal(tmp_path / "california-housing", cal_rows())
    x, y = tabular.read_cal_housing(path)
    reference = sklearn_california(path, tmp_path / "sk")
    assert tabular.CAL_FEATURES == tuple(reference.feature_names)
    np.testing.assert_array_equal(x, reference.data)
    np.testing.assert_array_equal(y, reference.target)


def test_california_loader_splits_70_15_15_and_scales_on_train(tmp_path, monkeypatch):
    folder = tmp_path / "california-housing"
    rows = cal_rows(n=40)
    write_cal(folder, rows)
    pin(monkeypatch, "california-housing", folder)
    splits = load_dataset("california-housing", data_dir=tmp_path, seed=5)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (28, 6, 6)
    assert splits.x_train.dtype == splits.y_train.dtype == np.float32
    assert splits.feature_names == tabular.CAL_FEATURES and splits.input_shape == (8,)
    np.testing.assert_allclose(splits.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(splits.x_train.std(axis=0), 1, atol=1e-4)
    targets = np.sort(np.r_[splits.y_train, splits.y_val, splits.y_test])
    np.testing.assert_allclose(targets, np.sort(rows[:, 8] / 100000).astype(np.float32))
    assert splits.classes is None and splits.out_dim == 1


def test_cal_housing_with_wrong_column_count_is_a_one_line_error(tmp_path):
    path = write_cal(tmp_path, cal_rows(), columns=8)
    with pytest.raises(UserError) as excinfo:
        tabular.read_cal_housing(path)
    assert "8 columns" in one_line(excinfo)


def test_cal_housing_archive_without_the_data_member_is_a_one_line_error(tmp_path):
    path = tmp_path / "cal_housing.tgz"
    write_tar(path, {"something/else.txt": b"1,2,3\n"})
    with pytest.raises(UserError) as excinfo:
        tabular.read_cal_housing(path)
    assert "CaliforniaHousing/cal_housing.data" in one_line(excinfo)


# ---------------------------------------------------------------- Telco churn


def test_read_telco_parses_rows(tmp_path):
    rows = telco_rows()
    numeric, categorical, y = tabular.read_telco(write_telco(tmp_path, rows))
    assert numeric.shape == (40, 4) and categorical.shape == (40, 15)
    assert y.tolist() == [int(r["Churn"] == "Yes") for r in rows]
    np.testing.assert_array_equal(numeric[:, 1], [float(r["tenure"]) for r in rows])
    blank = [i for i, r in enumerate(rows) if r["TotalCharges"].strip() == ""]
    assert blank and (numeric[blank, 3] == 0).all()
    assert categorical[:, tabular.TELCO_CATEGORICAL.index("Contract")].tolist() == [
        r["Contract"] for r in rows
    ]


def test_churn_loader_one_hots_and_stratifies(tmp_path, monkeypatch):
    folder = tmp_path / "telco-churn"
    write_telco(folder, telco_rows(n=80))
    pin(monkeypatch, "churn", folder)
    splits = load_dataset("churn", data_dir=tmp_path)
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) == (56, 12, 12)
    assert splits.classes == ("No", "Yes") and splits.task == "binary" and splits.out_dim == 1
    assert splits.y_train.dtype == np.int64 and splits.x_train.dtype == np.float32
    assert int(splits.y_val.sum()) == int(splits.y_test.sum()) == 3  # 25% positives, stratified
    assert len(splits.feature_names) == splits.x_train.shape[1]
    assert "customerID" not in " ".join(splits.feature_names)
    onehot = [i for i, n in enumerate(splits.feature_names) if "=" in n]
    assert set(np.unique(splits.x_train[:, onehot])) <= {0.0, 1.0}
    # each categorical column is exactly one-hot on training rows
    for column in tabular.TELCO_CATEGORICAL:
        cols = [i for i, n in enumerate(splits.feature_names) if n.startswith(column + "=")]
        np.testing.assert_array_equal(splits.x_train[:, cols].sum(axis=1), 1)
    scaled = [splits.feature_names.index(n) for n in tabular.TELCO_NUMERIC]
    np.testing.assert_allclose(splits.x_train[:, scaled].mean(axis=0), 0, atol=1e-5)


def test_churn_small_subset_tolerates_unseen_categories(tmp_path, monkeypatch):
    folder = tmp_path / "telco-churn"
    write_telco(folder, telco_rows(n=80))
    pin(monkeypatch, "churn", folder)
    splits = load_dataset("churn", data_dir=tmp_path, subset=8)
    assert len(splits.y_train) == 8 and splits.x_val.shape[1] == splits.x_train.shape[1]


def test_telco_csv_missing_a_column_names_it(tmp_path):
    header = [c for c in TELCO_HEADER if c != "Contract"]
    path = write_telco(tmp_path, telco_rows(), header=header)
    with pytest.raises(UserError) as excinfo:
        tabular.read_telco(path)
    assert "'Contract'" in one_line(excinfo)


def test_telco_csv_with_a_bad_number_names_line_and_column(tmp_path):
    rows = telco_rows()
    rows[4]["MonthlyCharges"] = "lots"
    with pytest.raises(UserError) as excinfo:
        tabular.read_telco(write_telco(tmp_path, rows))
    assert "line 6" in one_line(excinfo) and "MonthlyCharges" in str(excinfo.value)


def test_telco_csv_with_a_bad_label_is_a_one_line_error(tmp_path):
    rows = telco_rows()
    rows[0]["Churn"] = "Maybe"
    with pytest.raises(UserError) as excinfo:
        tabular.read_telco(write_telco(tmp_path, rows))
    assert "Maybe" in one_line(excinfo)


def test_telco_loader_refuses_csv_missing_a_column_without_writing(tmp_path, monkeypatch):
    folder = tmp_path / "telco-churn"
    write_telco(folder, telco_rows(), header=[c for c in TELCO_HEADER if c != "tenure"])
    pin(monkeypatch, "churn", folder)
    with pytest.raises(UserError) as excinfo:
        load_dataset("churn", data_dir=tmp_path)
    assert "'tenure'" in one_line(excinfo)
    assert [p.name for p in folder.iterdir()] == ["WA_Fn-UseC_-Telco-Customer-Churn.csv"]


# ---------------------------------------------------------------- registry


def test_registry_has_every_dataset_with_its_kind_and_task():
    expected = {
        "digits": ("image", "multiclass"),
        "mnist": ("image", "multiclass"),
        "fashion-mnist": ("image", "multiclass"),
        "cifar10": ("image", "multiclass"),
        "california-housing": ("tabular", "regression"),
        "churn": ("tabular", "binary"),
    }
    assert {k: (v.kind, v.task) for k, v in DATASETS.items()} == expected
    assert all(v.key == k and v.source and v.license for k, v in DATASETS.items())
