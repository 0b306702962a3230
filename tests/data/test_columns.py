"""Column treatments (data/columns.py, issue 23): dates to parts, rare levels pooled, missing
indicators, free text and IDs dropped; the study file's `dataset.columns` honoured; predict's
encoding of raw rows equal to training's; bad columns one line, exit 2, nothing written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import main_in_process as run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anncnn_tune import api
from anncnn_tune.data import pipeline, table
from anncnn_tune.data.source import load_source, parse_source
from anncnn_tune.errors import UserError


def messy(n=400, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    days = pd.to_datetime("2019-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")
    income = rng.normal(50, 10, n)
    income[rng.random(n) < 0.3] = np.nan
    words = np.array(["good", "bad", "slow", "fast", "price", "kind"])
    return pd.DataFrame({
        "row": np.arange(n) + 1000,
        "signup": days.strftime("%Y-%m-%d"),
        "city": [f"c{v}" for v in rng.zipf(1.4, n) % 400],
        "income": income,
        "review": [" ".join(rng.choice(words, 5)) + f" #{i}" for i in range(n)],
        "x": rng.normal(size=n),
        "y": np.where((np.nan_to_num(income, nan=50) > 50) ^ (rng.random(n) < 0.2), "yes", "no"),
    })  # fmt: skip


def source_of(tmp_path, frame, name="t.csv", **options):
    frame.to_csv(tmp_path / name, index=False)
    return parse_source({"path": name, "target": "y", **options}, base_dir=tmp_path, where="dataset")


def test_each_column_gets_its_treatment(tmp_path):
    schema = table.inspect(source_of(tmp_path, messy(), columns={}))
    treatments = {name: t for name, (t, _) in schema.treatments.items()}
    assert treatments == {"row": "drop", "signup": "date", "city": "categorical", "income": "numeric+missing",
                          "review": "drop", "x": "numeric"}
    # 4 date parts + 32 city levels (31 kept + the pooled one) + income and its indicator + x
    assert schema.input_shape == (4 + 32 + 2 + 1,)
    lines = "\n".join(schema.lines())
    assert "column review: drop (free text" in lines and "column row: drop (ID-like" in lines
    assert "smallest class" in lines  # the class balance is reported


def test_predict_encodes_raw_rows_as_training_did(tmp_path):
    frame = messy()
    test = messy(n=60, seed=1)
    test.loc[0, "city"] = "a city never seen"
    test.loc[1, "signup"] = ""
    test.to_csv(tmp_path / "test.csv", index=False)
    source = source_of(tmp_path, frame, columns={}, test="test.csv")
    splits = load_source(source)
    record = splits.preprocess
    derives = {c.get("derive") for c in record["columns"]}
    assert {"year", "month", "weekday", "days", pipeline.MISSING} <= derives
    assert any(c.get("other") for c in record["columns"])  # city's rare levels pooled
    raw = pd.read_csv(tmp_path / "test.csv", dtype={"city": str})
    encoded = pipeline.encode_table(raw[pipeline.feature_columns(record)], record)
    np.testing.assert_allclose(encoded, splits.x_test, atol=1e-5)
    # the unseen city counts as the pooled level, as training's pooling does
    other = next(c for c in record["columns"] if c.get("other"))
    start = sum(len(c["categories"]) if c["role"] == "categorical" else 1
                for c in record["columns"][: record["columns"].index(other)])
    assert encoded[0, start + other["categories"].index(other["other"])] == 1.0
    assert len(pipeline.onnx_table_input(record)) == encoded.shape[1]


def test_the_study_files_choices_are_honoured(tmp_path):
    source = source_of(tmp_path, messy(), columns={"city": "drop", "income": "numeric", "row": "categorical"})
    schema = table.inspect(source)
    treatments = {name: t for name, (t, _) in schema.treatments.items()}
    assert treatments["city"] == "drop" and treatments["income"] == "numeric" and treatments["row"] == "categorical"
    assert schema.input_shape == (4 + 32 + 1 + 1,)  # dates, row's pooled levels, income without indicator, x


@pytest.mark.parametrize(("columns", "needle"), [({"nope": "numeric"}, "'nope'"), ({"city": "banana"}, "banana"),
                                                 ({"y": "numeric"}, "target"), ({"city": "numeric"}, "not a number"),
                                                 ({"city": "drop+missing"}, "drop+missing")])
def test_a_wrong_columns_entry_is_one_line(tmp_path, columns, needle):
    frame = messy()
    frame.to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match=None) as caught:
        table.inspect(parse_source({"path": "t.csv", "target": "y", "columns": columns}, base_dir=tmp_path,
                                   where="dataset"))
    message = str(caught.value)
    assert needle in message and "\n" not in message


def test_a_study_file_without_columns_keeps_the_older_rules(tmp_path):
    frame = messy()
    frame["same"] = 7  # the older rules drop a constant column with a note; dataset.columns refuses it
    schema = table.inspect(source_of(tmp_path, frame))
    assert schema.treatments is None and "same" in schema.columns["dropped"]
    assert "signup" in schema.columns["categorical"] and "review" in schema.columns["dropped"]  # as ID-like
    assert "row" in schema.columns["numeric"]  # sequential whole numbers: the older rules keep them
    with pytest.raises(UserError, match="'same' is constant"):
        table.inspect(source_of(tmp_path, frame, columns={}))


def test_init_writes_the_columns_and_the_file_loads_back(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    messy().to_csv(tmp_path / "m.csv", index=False)
    code, out, err = run(capsys, "init", "m.csv", "--target", "y")
    assert code == 0, err
    assert "column signup: date" in out and "column city: categorical" in out
    written = yaml.safe_load((tmp_path / "m-ann.yaml").read_text())
    assert written["dataset"]["columns"]["income"] == "numeric+missing"
    assert written["dataset"]["columns"]["review"] == "drop"


def _bad_tables(tmp_path):
    base = messy(n=60)
    cases = {
        "all missing": base.assign(empty=np.nan),
        "constant": base.assign(same="a"),
        "mixed types": base.assign(price=[str(v) for v in range(1000, 1059)] + ["call us"]),
        "date that does not parse": base.assign(when=[f"2020-01-{1 + i % 28:02d}" for i in range(59)] + ["2020-02-30"]),
        "one class": base.assign(y="yes"),
    }
    for name, frame in cases.items():
        frame.to_csv(tmp_path / f"{name.replace(' ', '_')}.csv", index=False)


BAD_COLUMNS = {"all missing": "'empty'", "constant": "'same'", "mixed types": "'price'",
               "date that does not parse": "'when'", "one class": "'y'"}


@pytest.mark.parametrize("case", list(BAD_COLUMNS))
def test_a_bad_column_is_one_line_exit_2_nothing_written(tmp_path, monkeypatch, capsys, case):
    monkeypatch.chdir(tmp_path)
    _bad_tables(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = run(capsys, "init", f"{case.replace(' ', '_')}.csv", "--target", "y")
    assert code == 2, (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and BAD_COLUMNS[case] in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


CELLS = st.one_of(st.none(), st.just(""), st.integers(-3, 3), st.floats(-1e3, 1e3, allow_nan=False),
                  st.sampled_from(["a", "b", "c d e f", "2020-01-05", "2020-13-45", "x1", " "]))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(8, 30).flatmap(lambda n: st.tuples(
    st.lists(st.lists(CELLS, min_size=n, max_size=n), min_size=1, max_size=4),
    st.lists(st.sampled_from(["p", "q", "r"]), min_size=n, max_size=n))))
def test_a_random_messy_table_inits_or_fails_with_one_line(tmp_path, data):
    features, target = data
    frame = pd.DataFrame({f"c{i}": pd.Series(col, dtype=object) for i, col in enumerate(features)})
    frame["y"] = target
    path = tmp_path / "r.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "out"
    try:
        result = api.init(str(path), target="y", out_dir=str(out), force=True)
    except UserError as exc:
        assert "\n" not in str(exc)
        return
    assert all(f.exists() for f in result.files)
