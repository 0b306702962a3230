"""Where dataset files live, how they are checked, and how missing ones are downloaded.

Layout: ``<data dir>/<folder>/<official file name>``, the same layout as ``../shared/datasets``,
so a folder that already holds the official files is used as is, without any network.

Every file has a pinned checksum. A present file is hashed on each use rather than trusted
because of a sidecar: hashing all of MNIST + Fashion-MNIST + California + Telco (45 MB) takes
about 0.2 s here, cheaper than the staleness questions a size+mtime cache would raise. A file
with the wrong checksum is an error that names the file; it is never overwritten or used.
Missing files are downloaded with pooch, which streams into a temporary file in the target
folder and moves it into place only once the hash matches, so an interrupted or tampered
download never becomes a cache entry.

``REGISTRY`` is a literal dict on purpose: tests swap in entries for generated files
(``monkeypatch.setitem(fetch.REGISTRY, key, ...)``).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from anncnn_tune.errors import UserError

DATA_ENV = "ANNCNN_TUNE_DATA"
OFFLINE_ENV = "ANNCNN_TUNE_OFFLINE"  # any non-empty value but "0": never download, fail instead


@dataclass(frozen=True)
class RemoteFile:
    """One official file: its name, where to get it (mirrors in order), and its pinned hash."""

    name: str
    urls: tuple[str, ...]
    sha256: str | None = None
    md5: str | None = None  # used only where no sha256 is known

    @property
    def algorithm(self) -> str:
        return "sha256" if self.sha256 else "md5"

    @property
    def expected(self) -> str:
        return self.sha256 or self.md5 or ""

    @property
    def known_hash(self) -> str:
        """The hash in pooch's ``alg:hex`` notation."""
        return f"{self.algorithm}:{self.expected}"


@dataclass(frozen=True)
class RemoteDataset:
    folder: str
    files: tuple[RemoteFile, ...]
    source: str
    license: str


def _mirrored(bases: tuple[str, ...], name: str) -> tuple[str, ...]:
    return tuple(base + name for base in bases)


def _idx_files(bases: tuple[str, ...], *, train_images: str, train_labels: str, test_images: str,
               test_labels: str) -> tuple[RemoteFile, ...]:
    """The four official IDX files MNIST and Fashion-MNIST share the names of, with their sha256."""
    hashes = {"train-images-idx3-ubyte.gz": train_images, "train-labels-idx1-ubyte.gz": train_labels,
              "t10k-images-idx3-ubyte.gz": test_images, "t10k-labels-idx1-ubyte.gz": test_labels}
    return tuple(RemoteFile(name, _mirrored(bases, name), sha256=digest) for name, digest in hashes.items())


# MNIST's own site now often refuses scripted downloads; torchvision's S3 mirror comes first.
_MNIST_BASES = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
_FASHION_BASES = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
# The Telco CSV has no official home with a stable checksum; this is the CRLF copy whose sha256
# matches ../shared/datasets (IBM's own copy has LF line ends, hence a different hash).
_TELCO_URL = (
    "https://raw.githubusercontent.com/dustinvanstee/aicoc-python-basics/"
    "e1c1d032b4c6c674c5b237d43f5fcdd973363982/WA_Fn-UseC_-Telco-Customer-Churn.csv"
)

REGISTRY: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        folder="mnist",
        files=_idx_files(
            _MNIST_BASES,
            train_images="440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            train_labels="3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            test_images="8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            test_labels="f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ),
        source="MNIST, Y. LeCun, C. Cortes, C.J.C. Burges (1998), http://yann.lecun.com/exdb/mnist/",
        license="no explicit licence on the original site; commonly redistributed under CC BY-SA 3.0",
    ),
    "fashion-mnist": RemoteDataset(
        folder="fashion-mnist",
        files=_idx_files(
            _FASHION_BASES,
            train_images="3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            train_labels="a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            test_images="346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            test_labels="67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ),
        source="Fashion-MNIST, H. Xiao, K. Rasul, R. Vollgraf, arXiv:1708.07747 (2017), Zalando Research",
        license="MIT License, (c) Zalando SE",
    ),
    "cifar10": RemoteDataset(
        folder="cifar10",
        files=(
            RemoteFile(
                "cifar-10-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
                sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
                md5="c58f30108f718f92721af3b95e74349a",
            ),
        ),
        source="CIFAR-10, A. Krizhevsky, Learning Multiple Layers of Features from Tiny Images (2009), "
        "https://www.cs.toronto.edu/~kriz/cifar.html",
        license="no explicit licence; cite Krizhevsky (2009)",
    ),
    "california-housing": RemoteDataset(
        folder="california-housing",
        files=(
            RemoteFile(
                "cal_housing.tgz",
                ("https://ndownloader.figshare.com/files/5976036",),  # scikit-learn's source
                sha256="aaa5c9a6afe2225cc2aed2723682ae403280c4a3695a2ddda4ffb5d8215ea681",
            ),
        ),
        source="California Housing, 1990 U.S. Census via StatLib; R.K. Pace and R. Barry (1997)",
        license="public domain census data (StatLib); cite Pace and Barry (1997)",
    ),
    "churn": RemoteDataset(
        folder="telco-churn",
        files=(
            RemoteFile(
                "WA_Fn-UseC_-Telco-Customer-Churn.csv",
                (_TELCO_URL,),
                sha256="88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a",
            ),
        ),
        source="IBM Telco Customer Churn sample data (IBM Cognos Analytics), as redistributed on Kaggle",
        license="IBM sample data, no formal open licence; credit IBM",
    ),
}


def data_root(data_dir: str | os.PathLike | None = None) -> Path:
    """The data directory: the explicit argument, else $ANNCNN_TUNE_DATA, else the user cache."""
    if data_dir is not None:
        return _folder(Path(data_dir).expanduser(), "--data-dir")
    if os.environ.get(DATA_ENV):
        return _folder(Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}")
    import pooch  # imported here: pooch pulls in requests, which the data-less commands never need

    return Path(pooch.os_cache("anncnn-tune"))


def _folder(path: Path, name: str) -> Path:
    # Named here: a file given as the data folder otherwise surfaces as "files missing from FILE/mnist".
    if path.exists() and not path.is_dir():
        raise UserError(f"{name} {path} is a file, not a folder; pass the folder that holds (or will hold) "
                        "the datasets")
    return path


def remote(key: str) -> RemoteDataset:
    try:
        return REGISTRY[key]
    except KeyError:
        raise UserError(
            f"dataset {key!r} has no downloadable files; datasets with files: {', '.join(REGISTRY)}"
        ) from None


def dataset_dir(key: str, data_dir: str | os.PathLike | None = None) -> Path:
    return data_root(data_dir) / remote(key).folder


def file_hash(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(path: Path, spec: RemoteFile) -> str:
    """'ok', 'missing' or 'bad' (present, but not the pinned bytes)."""
    if not path.is_file():
        return "missing"
    return "ok" if file_hash(path, spec.algorithm) == spec.expected.lower() else "bad"


def _bad_file_error(key: str, path: Path, spec: RemoteFile) -> UserError:
    found = file_hash(path, spec.algorithm)
    return UserError(
        f"{key}: {path} has {spec.algorithm} {found[:12]}..., expected {spec.expected[:12]}...; "
        f"delete it and run `anncnn-tune datasets fetch {key}`, or put the official file there"
    )


def offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "") not in ("", "0")


def _download(spec: RemoteFile, folder: Path) -> None:
    """Try each mirror in turn; pooch verifies the hash before the file appears under its name."""
    import pooch

    errors = []
    for url in spec.urls:
        try:
            pooch.retrieve(url, known_hash=spec.known_hash, fname=spec.name, path=folder, progressbar=False)
            return
        except Exception as exc:  # noqa: BLE001 - requests' network errors, pooch's ValueError on a bad hash, ...
            errors.append(f"{url}: {' '.join(str(exc).split())[:300]}")
    raise OSError("; ".join(errors))


def ensure_files(key: str, data_dir: str | os.PathLike | None = None, *, download: bool = True) -> list[Path]:
    """Paths of the dataset's verified official files, downloading missing ones if allowed.

    Present files are all checked before anything is downloaded, so a bad file stops the
    command without network traffic and without touching the cache.
    """
    entry = remote(key)
    folder = dataset_dir(key, data_dir)
    missing = []
    for spec in entry.files:
        path = folder / spec.name
        if path.is_dir():  # else reported as missing, and the download fails on the folder
            raise UserError(f"{key}: {path} is a folder where the file {spec.name} should be; move it away and "
                            f"run `anncnn-tune datasets fetch {key}`, or put the official file there")
        status = check_file(path, spec)
        if status == "bad":
            raise _bad_file_error(key, path, spec)
        if status == "missing":
            missing.append(spec)
    if missing:
        names = ", ".join(spec.name for spec in missing)
        if offline():
            raise UserError(
                f"{key}: missing {names} in {folder} and ${OFFLINE_ENV} forbids downloads; "
                f"copy the official files there, or unset ${OFFLINE_ENV} to download them"
            )
        if not download:
            raise UserError(
                f"{key}: missing {names} in {folder}; copy the official files there, "
                f"or run `anncnn-tune datasets fetch {key}`"
            )
        new_dirs = [d for d in (folder, *folder.parents) if not d.exists()]  # innermost first
        for spec in missing:
            try:
                _download(spec, folder)
            except OSError as exc:
                _remove_empty(new_dirs)
                raise UserError(
                    f"{key}: could not download {spec.name} ({' '.join(str(exc).split())[:600]}); "
                    f"copy the official files {names} into {folder}, or set ${DATA_ENV} to a folder holding them"
                ) from None
    return [folder / spec.name for spec in entry.files]


def _remove_empty(dirs: list[Path]) -> None:
    """Leave the cache as it was: no empty folders from a failed first download."""
    for d in dirs:
        try:
            d.rmdir()
        except OSError:
            return  # not empty (or never made): everything above it stays too


def fetch(key: str, data_dir: str | os.PathLike | None = None) -> list[Path]:
    """Download what is missing and verify everything; the CLI's `datasets fetch`."""
    return ensure_files(key, data_dir, download=True)


def dataset_status(key: str, data_dir: str | os.PathLike | None = None) -> dict:
    """What is on disk for one dataset, for `anncnn-tune datasets`: never downloads, never raises on bad files.

    ``cached`` is True when every file is present with the pinned checksum. Datasets without
    files (bundled with a library, such as digits) report ``bundled: True``.
    """
    from anncnn_tune.data import get  # the registry imports the loaders, which import this module

    info = get(key)
    if key not in REGISTRY:
        return {
            "key": key,
            "kind": info.kind,
            "task": info.task,
            "bundled": True,
            "cached": True,
            "folder": None,
            "files": [],
            "size": 0,
            "source": info.source,
            "license": info.license,
        }
    entry = REGISTRY[key]
    folder = dataset_dir(key, data_dir)
    files = []
    for spec in entry.files:
        path = folder / spec.name
        status = check_file(path, spec)
        files.append(
            {
                "name": spec.name,
                "path": str(path),
                "size": path.stat().st_size if status != "missing" else None,
                "status": status,
                "algorithm": spec.algorithm,
                "expected": spec.expected,
                "urls": list(spec.urls),
            }
        )
    return {
        "key": key,
        "kind": info.kind,
        "task": info.task,
        "bundled": False,
        "cached": all(f["status"] == "ok" for f in files),
        "folder": str(folder),
        "files": files,
        "size": sum(f["size"] or 0 for f in files),
        "source": entry.source,
        "license": entry.license,
    }
