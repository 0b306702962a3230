"""A folder of images, in the layouts torchvision's ImageFolder and Keras' image_dataset_from_directory read.

`root/<class>/...` (class names sorted, as ImageFolder) or `root/train/<class>/...` with
`root/test/<class>/...` and optionally `root/val/<class>/...`; a separate held-out folder can
be given as the source's `test`. PNG, JPEG, BMP, GIF and WebP go through Pillow; hidden files
and other files are skipped.

Loading is three passes: list and hash the files (the fingerprint that keys the cache), read
only the image headers (sizes and modes, so the channel count, the size and the memory needed
are known before anything is decoded), then decode in a process pool into one uint8
(N, C, H, W) array that is written to the data cache. A later load with the same files and
options lists, hashes and reads that cache instead of decoding.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import zipfile
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from anncnn_tune.atomic import write_atomically
from anncnn_tune.data import fetch
from anncnn_tune.data.base import (
    PART_TEST,
    PART_TRAIN,
    PART_VAL,
    VAL_FRACTION,
    Splits,
    channel_stats,
    split_parts,
)
from anncnn_tune.data.memory import check_fits
from anncnn_tune.data.schema import Schema
from anncnn_tune.errors import UserError

if TYPE_CHECKING:
    from anncnn_tune.data.source import DataSource

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})
SPLIT_FOLDERS = {"train": PART_TRAIN, "val": PART_VAL, "test": PART_TEST}
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "La"})
CACHE_VERSION = 1  # bump when the cache's content or layout changes
CACHE_FOLDER = "sources"  # under the data directory, beside the built-in datasets' folders
# Below this many images the pool costs more than it saves. Measured on CIFAR-10 (JPEG q75 copy),
# 60,000 32x32 JPEGs, 2-core dev box at load 0.4: headers 1.50 s alone / 0.84 s pooled, decode
# 6.5 s / 4.7 s; a whole first load_source 9.6 s, a cached one 1.3-1.8 s (list 0.1 s, sha256 of
# every file 0.4 s, reading the 185 MB cache, channel_stats). Under a load of 4 the pool lost.
PARALLEL_MIN = 2000
CHUNK = 500
MEMORY_FACTOR = 2  # the decoded array, and the train/val/test copies taken from it


@dataclass
class Listing:
    """Every image file found, in a fixed order, with its class and the part (train/val/test) it is in."""

    files: list[str]  # paths
    names: list[str]  # what the fingerprint and the messages call each file: relative to its root
    labels: np.ndarray
    parts: np.ndarray
    classes: tuple[str, ...]
    ignored: int = 0  # hidden or non-image files skipped
    layout: str = "class folders"
    headers: list = field(default_factory=list)  # per file: (width, height, mode) or an error text


def _visible(entry: os.DirEntry | Path) -> bool:
    return not entry.name.startswith(".")


def _subfolders(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: p.name)


def _images(folder: Path) -> tuple[list[str], int]:
    """Image files under `folder` (recursively, sorted), and how many other files were skipped.

    Plain strings, not Path objects: pathlib's parsing cost 1.5 s on the 60,000 CIFAR-10 files.
    """
    found, ignored = [], 0
    for here, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(os.path.join(here, name))
            else:
                ignored += 1
    return found, ignored


def _class_folders(folder: Path, what: str) -> list[Path]:
    classes = _subfolders(folder)
    if not classes:
        loose, _ = _images(folder)
        if loose:
            raise UserError(f"{what} {folder} holds images but no class folders; put each class's images "
                            "in a folder named after the class (root/<class>/image.png)")
        raise UserError(f"{what} {folder} is empty: no class folders and no images; give root/<class>/image files")
    return classes


def scan(root: Path, test_root: Path | None = None) -> Listing:
    """The listing of a source's folder(s); one-line errors for empty folders and stray classes."""
    root = Path(root)
    top = _subfolders(root)
    names = {p.name for p in top}
    split_layout = "train" in names and names <= set(SPLIT_FOLDERS)
    if split_layout:
        parts = [(root / n, SPLIT_FOLDERS[n], f"{n}/") for n in ("train", "val", "test") if n in names]
        layout = "train/" + "".join(f", {n}/" for n in ("val", "test") if n in names)
    else:
        parts = [(root, PART_TRAIN, "")]
        layout = "class folders"
    if test_root is not None:
        if split_layout and "test" in names:
            raise UserError(f"{root} has its own test/ folder and dataset.test is given too; keep one of them")
        parts.append((Path(test_root), PART_TEST, "test:"))
        layout += ", held-out test folder"
    train_root = parts[0][0]
    classes = tuple(p.name for p in _class_folders(train_root, "image folder"))
    index = {name: i for i, name in enumerate(classes)}
    files, shown, labels, part_codes, ignored = [], [], [], [], 0
    for folder, code, prefix in parts:
        for class_dir in _class_folders(folder, "image folder"):
            if class_dir.name not in index:
                raise UserError(f"{class_dir} is a class the training folder {train_root} lacks; "
                                f"its classes are: {', '.join(classes)}")
            found, skipped = _images(class_dir)
            ignored += skipped
            if not found:
                raise UserError(f"class folder {class_dir} has no images (.png, .jpg, .jpeg, .bmp, .gif, .webp); "
                                "add images or remove the folder")
            base = folder if prefix != "test:" else Path(test_root)
            files += found
            cut = len(os.path.join(str(base if prefix == "test:" else root), ""))
            shown += [prefix + f[cut:] if prefix == "test:" else f[cut:] for f in found]
            labels += [index[class_dir.name]] * len(found)
            part_codes += [code] * len(found)
    return Listing(files=files, names=shown, labels=np.array(labels, dtype=np.int64),
                   parts=np.array(part_codes, dtype=np.int8), classes=classes, ignored=ignored, layout=layout)


# ---------------------------------------------------------------- fingerprint


def listing_fingerprint(listing: Listing) -> str:
    """sha256 over every image's name (which carries its class and part) and the sha256 of its bytes."""
    digest = hashlib.sha256()
    for name, path in zip(listing.names, listing.files):
        with open(path, "rb") as fh:
            digest.update(name.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def fingerprint(source: DataSource) -> str:
    return listing_fingerprint(scan(Path(source.path), Path(source.test) if source.test else None))


# ---------------------------------------------------------------- workers (module level: they run in a pool)


def _read_headers(paths: list[str]) -> list:
    from PIL import Image

    out = []
    for path in paths:
        try:
            with Image.open(path) as image:
                out.append((image.width, image.height, image.mode))
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a damaged or foreign file
            out.append(_reason(exc))
    return out


def _decode(task: tuple[list[str], int, tuple[int, int] | None]):
    """(uint8 (k, C, H, W), {position: error text}) for one chunk of files."""
    from PIL import Image

    paths, channels, size = task
    mode = "L" if channels == 1 else "RGB"
    images, errors, shape = [], {}, None
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                image = image.convert(mode)  # GIF: the first frame; alpha is dropped, grey repeated
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except Exception as exc:  # noqa: BLE001 - see _read_headers
            errors[i] = _reason(exc)
            images.append(None)
            continue
        array = array[None] if channels == 1 else array.transpose(2, 0, 1)
        shape = array.shape
        images.append(array)
    if shape is None:
        return np.zeros((len(paths), channels, *(size or (1, 1))), np.uint8), errors
    out = np.zeros((len(paths), *shape), np.uint8)
    for i, array in enumerate(images):
        if array is not None:
            if array.shape != shape:
                errors[i] = f"is {array.shape[2]}x{array.shape[1]}, not {shape[2]}x{shape[1]} like its header said"
            else:
                out[i] = array
    return out, errors


def decode_files(paths: list[str], channels: int, size: tuple[int, int]) -> tuple[np.ndarray, dict[int, str]]:
    """Files decoded exactly as training decoded them (mode, resize): uint8 (N, C, H, W) and the
    errors by position; what `predict` runs on a user's image files."""
    return _decode((list(paths), channels, tuple(size)))


def _reason(exc: Exception) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())[:200]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _pool_map(function, tasks: list, n_items: int) -> list:
    """`map` in a process pool where there is enough work to pay for one, else in this process."""
    workers = min(os.cpu_count() or 1, 8, len(tasks))
    if n_items < PARALLEL_MIN or workers < 2:
        return [function(t) for t in tasks]
    # fork: the workers need nothing from the parent but these functions, and start in milliseconds
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(function, tasks))


def read_headers(listing: Listing) -> None:
    paths = listing.files
    listing.headers = [h for chunk in _pool_map(_read_headers, _chunks(paths, CHUNK), len(paths)) for h in chunk]


# ---------------------------------------------------------------- decisions from the headers


@dataclass
class Plan:
    channels: int
    size: tuple[int, int]  # (height, width)
    keep: np.ndarray  # bool per listed file: its header was readable
    skipped: list[str]
    notes: list[str]
    sizes: dict[str, int]
    modes: dict[str, int]


def _unreadable(listing: Listing, row: int, reason: str, source: DataSource, keep: np.ndarray,
                skipped: list[str]) -> None:
    """A file whose header or pixels cannot be read: the error, or (on_bad_file: skip) left out and named."""
    if source.on_bad_file == "error":
        raise UserError(f"{listing.files[row]} is not a readable image ({reason}); "
                        "fix or remove it, or skip unreadable files (`init --on-bad-file skip`; "
                        "on_bad_file: skip in a study file's dataset mapping)")
    keep[row] = False
    skipped.append(listing.names[row])


def plan(listing: Listing, source: DataSource) -> Plan:
    """Channels, size and usable files from the headers; one line for what cannot go on."""
    skipped, keep = [], np.ones(len(listing.files), bool)
    for i, header in enumerate(listing.headers):
        if isinstance(header, str):
            _unreadable(listing, i, header, source, keep, skipped)
    good = [h for h in listing.headers if not isinstance(h, str)]
    if not good:
        raise UserError(f"none of the {len(listing.files)} image files in {source.path} can be read; check the files")
    modes = Counter(h[2] for h in good)
    sizes = Counter(f"{h[1]}x{h[0]}" for h in good)
    notes = [f"layout: {listing.layout}; class names sorted, as ImageFolder"]
    gray = sum(n for m, n in modes.items() if m in GRAY_MODES)
    if gray == len(good):
        channels = 1
        notes.append("channels: 1 (every image is grayscale)")
    else:
        channels = 3
        detail = [f"{gray} grayscale images repeated to 3"] if gray else []
        alpha = sum(n for m, n in modes.items() if m in ("RGBA", "LA", "La", "RGBa", "PA"))
        if alpha:
            detail.append(f"{alpha} images with alpha had it dropped")
        notes.append("channels: 3 (RGB" + (": " + ", ".join(detail) if detail else "") + ")")
    if source.image_size is not None:
        size = source.image_size
        if len(sizes) > 1 or f"{size[0]}x{size[1]}" not in sizes:
            notes.append(f"resized to {size[0]}x{size[1]} (image_size)")
    elif len(sizes) > 1:
        common = sizes.most_common()
        shown = ", ".join(f"{s} ({n})" for s, n in common[:3]) + (" ..." if len(common) > 3 else "")
        odd = next(listing.names[i] for i, h in enumerate(listing.headers)
                   if not isinstance(h, str) and f"{h[1]}x{h[0]}" != common[0][0])
        raise UserError(f"images in {source.path} have {len(sizes)} sizes (HxW: {shown}; e.g. {odd}); "
                        f"set image_size: [height, width] to resize them all, e.g. image_size: [{common[0][0].replace('x', ', ')}]")
    else:
        h, w = (int(v) for v in next(iter(sizes)).split("x"))
        size = (h, w)
    if listing.ignored:
        notes.append(f"skipped {listing.ignored} hidden or non-image files")
    return Plan(channels, tuple(size), keep, skipped, notes, dict(sizes), dict(modes))


def task_of(classes: tuple[str, ...], requested: str) -> str:
    if requested == "regression":
        raise UserError("task regression does not apply to a folder of class folders; use auto, binary or multiclass")
    if len(classes) < 2:
        raise UserError(f"the image folder has a single class ({classes[0]}); a classifier needs at least 2 class folders")
    if requested == "binary" and len(classes) != 2:
        raise UserError(f"task binary needs 2 class folders, found {len(classes)}; use task: multiclass")
    if requested == "auto":
        return "binary" if len(classes) == 2 else "multiclass"
    return requested


# ---------------------------------------------------------------- decode, with the cache


def _cache_path(source: DataSource, fp: str, data_dir) -> Path:
    options = json.dumps([CACHE_VERSION, fp, source.image_size, source.on_bad_file])
    key = hashlib.sha256(options.encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in source.key)[:40]
    return fetch.data_root(data_dir) / CACHE_FOLDER / f"{safe}-{key}.npz"


def _read_cache(path: Path, fp: str, n_files: int):
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            rows = npz["rows"]
            if str(npz["fingerprint"]) != fp or (len(rows) and int(rows.max()) >= n_files):
                return None
            return npz["x"], rows, json.loads(str(npz["meta"]))
    except (OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile):
        return None  # damaged: decode again and replace it


def _write_cache(path: Path, fp: str, x: np.ndarray, rows: np.ndarray, meta: dict) -> None:
    """x: the decoded images of listing rows `rows` (the others were skipped)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda f: np.savez(f, x=x, rows=rows, fingerprint=np.array(fp),
                                                  meta=np.array(json.dumps(meta))))
    except OSError:
        pass  # a read-only data directory: correct, only slower next time


def decode(listing: Listing, p: Plan, source: DataSource, rows: np.ndarray, suggestion: str):
    """(rows decoded, uint8 images aligned with them, keep mask, names skipped), after a memory check.

    `rows` are listing indices; those whose header failed are left out before anything is decoded.
    """
    h, w = p.size
    rows = rows[p.keep[rows]]
    check_fits(MEMORY_FACTOR * len(rows) * p.channels * h * w,
               f"decoding {len(rows)} images of {p.channels}x{h}x{w}", suggestion)
    paths = [listing.files[i] for i in rows]
    results = _pool_map(_decode, [(chunk, p.channels, p.size) for chunk in _chunks(paths, CHUNK)], len(paths))
    images = np.concatenate([r[0] for r in results])
    keep, skipped, failed = p.keep.copy(), list(p.skipped), []
    for c, (_, errors) in enumerate(results):
        for i, reason in sorted(errors.items()):
            _unreadable(listing, int(rows[c * CHUNK + i]), reason, source, keep, skipped)
            failed.append(c * CHUNK + i)
    if failed:
        good = np.ones(len(rows), bool)
        good[failed] = False
        rows, images = rows[good], images[good]
    return rows, images, keep, skipped


# ---------------------------------------------------------------- entry points


def _listing(source: DataSource) -> Listing:
    return scan(Path(source.path), Path(source.test) if source.test else None)


def _schema(listing: Listing, p: Plan, task: str, skipped: list[str], keep: np.ndarray) -> Schema:
    counts = np.bincount(listing.labels[keep], minlength=len(listing.classes))
    parts = Counter(int(v) for v in listing.parts[keep])
    names = {PART_TRAIN: "train", PART_VAL: "val", PART_TEST: "test"}
    return Schema(
        kind="image", task=task, input_shape=(p.channels, *p.size), n_samples=int(keep.sum()),
        classes=listing.classes, class_counts={c: int(n) for c, n in zip(listing.classes, counts)},
        notes=list(p.notes), sizes=p.sizes, channels=p.channels, modes=p.modes,
        splits={names[k]: parts[k] for k in sorted(parts)}, skipped=list(skipped),
    )  # fmt: skip


def inspect(source: DataSource) -> Schema:
    """Listing and headers only: nothing is decoded."""
    listing = _listing(source)
    task = task_of(listing.classes, source.task)
    read_headers(listing)
    p = plan(listing, source)
    return _schema(listing, p, task, p.skipped, p.keep)


def load(source: DataSource, *, seed: int = 0, subset=None, data_dir=None) -> Splits:
    listing = _listing(source)
    task = task_of(listing.classes, source.task)
    fp = listing_fingerprint(listing)
    cache = _cache_path(source, fp, data_dir)
    cached = _read_cache(cache, fp, len(listing.files))
    if cached is not None:
        images, rows, meta = cached
        keep = np.zeros(len(listing.files), bool)
        keep[rows] = True
        p = Plan(meta["channels"], tuple(meta["size"]), keep, meta["skipped"], meta["notes"], meta["sizes"],
                 meta["modes"])
        skipped = list(meta["skipped"])
        train, val, test = _split(listing, keep, seed, subset)
    else:
        read_headers(listing)
        p = plan(listing, source)
        train, val, test = _split(listing, p.keep, seed, subset)
        h, w = p.size
        whole = MEMORY_FACTOR * int(p.keep.sum()) * p.channels * h * w
        if subset is not None and whole > _budget():
            # the whole folder would not fit: decode only what this subset uses, and cache nothing
            wanted = np.sort(np.concatenate([train, val, test]))
            rows, images, keep, skipped = decode(listing, p, source, wanted,
                                                 "set image_size: to a smaller [height, width], or a smaller subset")
        else:
            rows, images, keep, skipped = decode(
                listing, p, source, np.arange(len(listing.files)),
                "set image_size: to a smaller [height, width], or pass a subset to train on fewer images")
            meta = {"channels": p.channels, "size": list(p.size), "skipped": skipped, "notes": p.notes,
                    "sizes": p.sizes, "modes": p.modes}
            _write_cache(cache, fp, images, rows, meta)
        if len(skipped) > len(p.skipped):  # files that failed only when decoded: split again without them
            train, val, test = _split(listing, keep, seed, subset)
    position = np.full(len(listing.files), -1, np.int64)
    position[rows] = np.arange(len(rows))

    def part(idx):
        idx = idx[keep[idx]]
        return images[position[idx]], listing.labels[idx]

    return _splits(source, listing, p, task, keep, skipped, fp, seed, *part(train), *part(val), *part(test))


def _budget() -> int:
    from anncnn_tune.data.memory import HEADROOM, available_bytes

    return int(available_bytes() * HEADROOM)


def _split(listing: Listing, keep: np.ndarray, seed: int, subset):
    """Train/val/test indices over the usable files; a class too small to stratify is named."""
    rows = np.flatnonzero(keep)
    y, parts = listing.labels[rows], listing.parts[rows]
    pool = parts == PART_TRAIN
    need = 1 + int(not (parts == PART_TEST).any()) + int(not (parts == PART_VAL).any())
    counts = np.bincount(y[pool], minlength=len(listing.classes))
    small = int(np.argmin(counts))
    if counts[small] < max(need, 2) and need > 1:
        raise UserError(f"class {listing.classes[small]!r} has only {counts[small]} training images; a stratified "
                        f"split needs at least {max(need, 2)} per class: add images, or merge or remove that class")
    try:
        train, val, test = split_parts(y, parts, seed, subset, val_fraction=VAL_FRACTION)
    except ValueError as exc:
        raise UserError(f"cannot split the images ({' '.join(str(exc).split())}); add images to the smallest classes") from None
    return rows[train], rows[val], rows[test]


def _splits(source, listing, p, task, keep, skipped, fp, seed, x_tr, y_tr, x_val, y_val, x_test, y_test) -> Splits:
    if not len(y_tr):
        raise UserError(f"no training images left in {source.path}; add images or use a larger subset")
    mean, std = channel_stats(x_tr)
    splits = Splits(key=source.key, task=task, kind="image", x_train=x_tr, y_train=y_tr, x_val=x_val, y_val=y_val,
                    x_test=x_test, y_test=y_test, classes=listing.classes, fingerprint=fp, split_seed=seed,
                    mean=mean, std=std, source=source.to_dict())
    splits.schema = _schema(listing, p, task, skipped, keep).summary()
    return splits
