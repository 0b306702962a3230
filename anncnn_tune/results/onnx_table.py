"""The front of a table model's ONNX graph: the raw columns in, the model's encoded features out.

`weights.Deployable` exports the model with its numeric preprocessing (imputation and scaling) as a
float input of raw numbers and one-hot indicators. This module puts the rest of preprocess.json in
front of it with plain ONNX ops, so the file takes what a table holds:

- `numeric`: float32 (N, k), the flag and numeric columns in training order, raw units, NaN for a
  missing value (the exported graph imputes and scales it);
- `categorical`: string (N, m), the categorical columns in training order, as text. A text equal to
  a training category is that category; else empty or whitespace-only text, or one of the words
  pandas' CSV reader takes for missing (`NA`, `nan`, `NULL`, ...), is missing and becomes the most
  frequent training category; any other text is a category unseen in training: all its indicators
  0. That is what `predict` does with the same rows read from a CSV (data/pipeline.encode_table).

A table without categorical columns has only `numeric`, one without numbers only `categorical`.
The ops (Gather, RegexFullMatch, Equal, Where, Cast, Concat) are in the default domain from opset 20
(RegexFullMatch), which onnxruntime runs; nothing here needs scikit-learn or skl2onnx.
"""

from __future__ import annotations

import numpy as np

NUMERIC, CATEGORICAL = "numeric", "categorical"
MIN_OPSET = 20  # RegexFullMatch, which tells a missing category's text
PREFIX = "anncnn_raw_table/"  # names of the values added here, kept apart from the exporter's
# pandas.read_csv's default missing-value words (its documented `na_values` list; tests check it
# against pandas): training and predict read a CSV's categories through pandas, so these are missing.
NA_WORDS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>",
            "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
UNSEEN = "\x00unseen"  # the check's text for an unseen category: no training category holds a NUL


def takes_raw_columns(table: dict) -> bool:
    """Whether this front expresses the table's encoding: not where a date's parts, a missing
    indicator or pooled rare levels come first (data/columns.py); such a file takes the encoded
    features, and predict computes them from preprocess.json."""
    return not any("derive" in c or "other" in c for c in table["columns"])


def columns(table: dict) -> tuple[list[str], list[str]]:
    """(the `numeric` input's columns, the `categorical` input's columns), each in training order."""
    numeric = [c["name"] for c in table["columns"] if c["role"] != "categorical"]
    categorical = [c["name"] for c in table["columns"] if c["role"] == "categorical"]
    return numeric, categorical


def missing_pattern() -> str:
    """An RE2 pattern matching whitespace-only text and pandas' missing words (ONNX's RegexFullMatch)."""
    words = [w for w in NA_WORDS if w]
    return r"\s*|" + "|".join("".join(f"\\{ch}" if not ch.isalnum() else ch for ch in w) for w in words)


def prepend(model, table: dict):
    """`model` (the exported ModelProto, one float input of raw numbers and indicators) with its input
    replaced by the raw `numeric` and `categorical` inputs and the ops that encode them."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    (old,) = graph.input
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    if opset < MIN_OPSET:
        raise RuntimeError(f"the exported graph is opset {opset}; the raw-column front needs {MIN_OPSET}")
    taken = {v for n in graph.node for v in (*n.input, *n.output)} | {i.name for i in graph.initializer}
    if any(v.startswith(PREFIX) for v in taken) or {NUMERIC, CATEGORICAL} & taken:
        raise RuntimeError("the exported graph already uses the raw-column front's names")
    numeric, categorical = columns(table)
    where = {name: i for i, name in enumerate(numeric)} | {name: i for i, name in enumerate(categorical)}
    nodes, inits, pieces = [], [], []

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(array, PREFIX + name))
        return PREFIX + name

    run: list[int] = []  # consecutive numeric columns: one Gather per run

    def flush() -> None:
        if run:
            out = PREFIX + f"numbers{len(pieces)}"
            nodes.append(helper.make_node("Gather", [NUMERIC, const(f"numbers{len(pieces)}_at",
                                                                      np.array(run, np.int64))], [out], axis=1))
            pieces.append(out)
            run.clear()

    pattern = missing_pattern()
    axis1 = const("axis1", np.array([1], np.int64)) if categorical else ""
    for column in table["columns"]:
        if column["role"] != "categorical":
            run.append(where[column["name"]])
            continue
        flush()
        k, categories = len(pieces), column["categories"]
        p = f"{PREFIX}c{k}_"
        cats = const(f"c{k}_categories", np.array([categories], dtype=object))
        fill = const(f"c{k}_fill", np.array([[float(c == column["fill"]) for c in categories]], np.float32))
        zero = const(f"c{k}_zero", np.zeros((1, 1), np.float32))
        nodes += [
            helper.make_node("Gather", [CATEGORICAL, const(f"c{k}_at", np.array([where[column["name"]]], np.int64))],
                             [p + "text"], axis=1),
            helper.make_node("Equal", [p + "text", cats], [p + "is"]),  # (N, 1) vs (1, K)
            helper.make_node("Cast", [p + "is"], [p + "onehot"], to=TensorProto.FLOAT),
            # a training category is never missing, whatever its text (a Parquet table may hold "NA")
            helper.make_node("ReduceMax", [p + "onehot", axis1], [p + "known"], keepdims=1),  # per row
            helper.make_node("RegexFullMatch", [p + "text"], [p + "blank"], pattern=pattern),
            helper.make_node("Equal", [p + "known", zero], [p + "unknown"]),
            helper.make_node("And", [p + "blank", p + "unknown"], [p + "missing"]),
            helper.make_node("Where", [p + "missing", fill, p + "onehot"], [p + "encoded"]),
        ]
        pieces.append(p + "encoded")
    flush()
    nodes.append(helper.make_node("Concat", pieces, [old.name], axis=1) if len(pieces) > 1
                 else helper.make_node("Identity", pieces, [old.name]))

    inputs = []
    if numeric:
        inputs.append(helper.make_tensor_value_info(NUMERIC, TensorProto.FLOAT, ["batch", len(numeric)]))
    if categorical:
        inputs.append(helper.make_tensor_value_info(CATEGORICAL, TensorProto.STRING, ["batch", len(categorical)]))
    front = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *front])
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.extend(inputs)
    onnx.checker.check_model(model, full_check=True)
    return model


def feeds(frame, table: dict) -> dict[str, np.ndarray]:
    """The ONNX inputs of a DataFrame of raw rows (the training columns): `numeric` as float32 with
    NaN for missing, `categorical` as text with "" for missing (how a caller feeds the file)."""
    numeric, categorical = columns(table)
    out = {}
    if numeric:
        out[NUMERIC] = frame[numeric].apply(lambda s: s.astype("float64")).to_numpy(np.float32)
    if categorical:
        text = frame[categorical].astype(object)
        out[CATEGORICAL] = text.where(text.notna(), "").astype(str).to_numpy(dtype=object)
    return out


def raw_frame(x: np.ndarray, table: dict):
    """Encoded rows (the model's features) back to raw rows: numbers unscaled, each categorical
    column's category by its indicator (all 0: a text no training category has). The ONNX check's
    input: the test rows as a caller would hold them."""
    import pandas as pd

    x = np.asarray(x, np.float64)
    data, j = {}, 0
    for column in table["columns"]:
        if column["role"] == "categorical":
            block = x[:, j : j + len(column["categories"])]
            names = np.array(column["categories"] + [UNSEEN], dtype=object)
            data[column["name"]] = names[np.where(block.max(axis=1) > 0.5, block.argmax(axis=1), -1)]
            j += len(column["categories"])
        else:
            data[column["name"]] = x[:, j] * column.get("scale", 1.0) + column.get("mean", 0.0)
            j += 1
    return pd.DataFrame(data)


def with_missing(frame, table: dict):
    """`frame` plus two rows that exercise the missing paths predict shares with the graph: every
    value missing (NaN numbers, empty categories), and whitespace-only categories. (pandas' words
    such as "NA" are missing only as a CSV reader gives them: tests/results/test_onnx_table.py.)"""
    import pandas as pd

    if frame.empty:
        return frame
    extra = [frame.iloc[:1].copy() for _ in range(2)]
    numeric, _ = columns(table)
    extra[0].loc[:, numeric] = np.nan
    for row, text in zip(extra, ("", "  ")):
        for column in table["columns"]:
            if column["role"] == "categorical" and text not in column["categories"]:
                row.loc[:, column["name"]] = text
    return pd.concat([frame, *extra], ignore_index=True)


__all__ = ["CATEGORICAL", "MIN_OPSET", "NA_WORDS", "NUMERIC", "columns", "feeds", "missing_pattern", "prepend",
           "raw_frame", "with_missing"]
