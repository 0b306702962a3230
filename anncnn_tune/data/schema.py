"""What a user's dataset holds, as `init` prints it and generated search spaces are sized from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Schema:
    kind: str  # tabular | image
    task: str  # resolved: binary | multiclass | regression
    input_shape: tuple  # (F,) after encoding for tables; (C, H, W) for images
    n_samples: int  # rows or images, train + validation + test
    classes: tuple[str, ...] | None
    class_counts: dict | None
    notes: list[str] = field(default_factory=list)
    # tables
    columns: dict[str, list[str]] | None = None  # role (numeric, flag, categorical, dropped) -> names
    missing: dict[str, int] | None = None  # column -> missing values (only columns with any)
    target: str | None = None
    # column -> (treatment, why), by data/columns.py's rules: what `init` prints one line per column
    # and writes as `dataset.columns`; None where the older rules decided (roles only)
    treatments: dict[str, tuple[str, str]] | None = None
    # images
    sizes: dict[str, int] | None = None  # "HxW" -> images of that size (before any resize)
    channels: int | None = None
    modes: dict[str, int] | None = None  # Pillow mode -> images
    splits: dict[str, int] | None = None  # where the data says: train / val / test counts
    skipped: list[str] = field(default_factory=list)  # files skipped (on_bad_file: skip)
    # regression: the target_transform `init` writes (base.choose_transform on the training rows) and why
    target_transform: tuple[str, str] | None = None

    @property
    def imbalance(self) -> float | None:
        """Largest class count over smallest (1.0: balanced); None for regression."""
        if not self.class_counts:
            return None
        counts = list(self.class_counts.values())
        return max(counts) / max(min(counts), 1)

    def summary(self) -> dict:
        """Plain types, for what a study records beside the source."""
        return {
            "kind": self.kind,
            "task": self.task,
            "input_shape": list(self.input_shape),
            "n_samples": self.n_samples,
            "classes": list(self.classes) if self.classes else None,
            "class_counts": dict(self.class_counts) if self.class_counts else None,
            "notes": list(self.notes),
            "skipped": list(self.skipped),
        }

    def lines(self) -> list[str]:
        """The human-readable report `init` prints."""
        out = []
        if self.kind == "tabular":
            cols = self.columns or {}
            used = sum(len(cols.get(r, [])) for r in ("numeric", "flag", "categorical", "date"))
            columns = f", {used} feature columns" if cols else ""
            out.append(f"table: {self.n_samples} rows{columns} -> {self.input_shape[0]} features after encoding")
            if self.treatments is not None:
                out += [f"  column {name}: {treatment} ({why})" for name, (treatment, why) in self.treatments.items()]
                given = [c for c in cols.get("dropped", []) if c not in self.treatments]
                if given:
                    out.append(f"  dropped by dataset.drop ({len(given)}): {', '.join(given)}")
            else:
                for role in ("numeric", "flag", "categorical", "date", "dropped"):
                    if cols.get(role):
                        out.append(f"  {role} ({len(cols[role])}): {', '.join(cols[role])}")
            if self.missing is not None:  # None: not counted (array files)
                listed = ", ".join(f"{c} {n}" for c, n in self.missing.items())
                out.append(f"  missing values: {listed or 'none'}")
            out.append(f"target: {self.target} ({self.task})")
            if self.target_transform:
                transform, why = self.target_transform
                out.append(f"  target transform: {transform} ({why})")
        else:
            out.append(f"images: {self.n_samples}, input {'x'.join(str(d) for d in self.input_shape)} (C x H x W)")
            if self.sizes:
                shown = sorted(self.sizes.items(), key=lambda kv: -kv[1])[:5]
                more = f" and {len(self.sizes) - 5} more" if len(self.sizes) > 5 else ""
                out.append("  sizes (HxW): " + ", ".join(f"{s} {n}" for s, n in shown) + more)
            if self.modes:
                out.append("  modes: " + ", ".join(f"{m} {n}" for m, n in sorted(self.modes.items())))
            out.append(f"task: {self.task}")
        if self.splits:
            out.append("splits: " + ", ".join(f"{k} {v}" for k, v in self.splits.items()))
        if self.class_counts:
            counts = ", ".join(f"{c} {n}" for c, n in self.class_counts.items())
            total = sum(self.class_counts.values()) or 1
            smallest = min(self.class_counts.values())
            out.append(f"classes ({len(self.class_counts)}): {counts}; smallest class {smallest / total:.1%} of the rows"
                       f" (largest/smallest {self.imbalance:.1f}:1)")
        for note in self.notes:
            out.append(f"note: {note}")
        if self.skipped:
            out.append(f"skipped {len(self.skipped)} unreadable files: {', '.join(self.skipped[:5])}"
                       + (" ..." if len(self.skipped) > 5 else ""))
        return out
