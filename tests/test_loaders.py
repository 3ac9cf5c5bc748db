"""Loaders: CSV time series, UCR/UEA .ts files and classification CSVs, on the real data in
../shared/data (skipped when absent) and on small synthetic files for every error."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.series import Series, load_csv_series
from rnnkit.data.ts import TSDataset, load_classification_csv, load_ts

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# ---------------------------------------------------------------- real data: UCR / UEA .ts files

# name: (train size, test size, channels, (min length, max length), classes in header order)
UCR = {
    "GunPoint": (50, 150, 1, (150, 150), ["1", "2"]),
    "ItalyPowerDemand": (67, 1029, 1, (24, 24), ["1", "2"]),
    "ArrowHead": (36, 175, 1, (251, 251), ["0", "1", "2"]),
    "BasicMotions": (40, 40, 6, (100, 100), ["Standing", "Running", "Walking", "Badminton"]),
    "JapaneseVowels": (270, 370, 12, (7, 29), [str(i) for i in range(1, 10)]),
}


def ucr_file(name: str, split: str) -> Path:
    path = DATA / "ucr" / f"{name}_{split}.ts"
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    return path


@pytest.mark.parametrize("split", ["TRAIN", "TEST"])
@pytest.mark.parametrize("name", list(UCR))
def test_ucr_files_load_with_the_published_sizes(name, split):
    n_train, n_test, channels, (lo, hi), classes = UCR[name]
    data = load_ts(ucr_file(name, split))
    assert isinstance(data, TSDataset)
    assert len(data.X) == len(data.y) == (n_train if split == "TRAIN" else n_test)
    assert data.classes == classes
    assert set(data.y.tolist()) == set(classes)  # every class occurs in each split
    assert all(x.dtype == np.float64 and x.ndim == 2 and x.shape[1] == channels for x in data.X)
    assert all(np.isfinite(x).all() for x in data.X)
    lengths = [len(x) for x in data.X]
    if lo == hi:
        assert set(lengths) == {lo}
        assert data.metadata["seriesLength"] == lo and data.metadata["equalLength"] is True
    else:  # the two splits together span the README's 7..29
        assert lo <= min(lengths) and max(lengths) <= hi and min(lengths) < max(lengths)
        assert data.metadata["equalLength"] is False and data.metadata["seriesLength"] is None
    assert data.metadata["problemName"] == name
    assert data.metadata["dimensions"] == channels
    assert data.metadata["univariate"] is (channels == 1)
    assert data.metadata["missing"] is False


def test_japanese_vowels_lengths_span_7_to_29_over_both_splits():
    lengths = [
        len(x) for split in ("TRAIN", "TEST") for x in load_ts(ucr_file("JapaneseVowels", split)).X
    ]
    assert (min(lengths), max(lengths)) == (7, 29)


def test_ucr_values_land_in_the_right_series_step_and_channel():
    # Values read off the files by eye: first and last numbers of the first line, its label.
    gun = load_ts(ucr_file("GunPoint", "TRAIN"))
    assert gun.X[0][0, 0] == -0.6478854 and gun.X[0][-1, 0] == -0.63865722
    assert gun.y[0] == "2" and gun.y[-1] == "2"
    vowels = load_ts(ucr_file("JapaneseVowels", "TRAIN"))
    x = vowels.X[0]  # (T, 12): time down, channels across
    assert x.shape == (20, 12)
    assert x[0, 0] == 1.860936 and x[1, 0] == 1.891651  # channel 1 runs down the time axis
    assert x[0, 1] == -0.207383  # channel 2 starts after the first ':'
    assert x[-1, -1] == -0.175986  # the last value before the label
    assert vowels.y[0] == "1"
    motions = load_ts(ucr_file("BasicMotions", "TEST"))
    assert motions.X[0][0, 0] == -0.740653 and motions.y[0] == "Standing"


# ---------------------------------------------------------------- real data: series CSVs

# file: (target, date column, points, first value, first date, last date)
SERIES = {
    "airline": ("Passengers", "Date", 144, 112.0, "1949-01", "1960-12"),
    "lynx": ("0", "", 114, 269.0, "1821", "1934"),  # an R export: unnamed index column, "0"
    "shampoo": ("Sales", "Time", 36, 266.0, "1991-01", "1993-12"),
    "sunspots": ("SUNACTIVITY", "YEAR", 309, 5.0, "1700", "2008"),
    "nile": ("volume", "year", 100, 1120.0, "1871", "1970"),
}


@pytest.mark.parametrize("name", list(SERIES))
def test_series_csvs_load(name):
    path = DATA / "series" / f"{name}.csv"
    if not path.exists():
        pytest.skip(f"real data not found: {path}")
    target, date, n, first, first_date, last_date = SERIES[name]
    s = load_csv_series(path, target, date=date)
    assert isinstance(s, Series)
    assert s.values.dtype == np.float64 and s.values.shape == (n,)
    assert s.values[0] == first and np.isfinite(s.values).all()
    assert s.dates.shape == (n,) and (s.dates[0], s.dates[-1]) == (first_date, last_date)
    assert s.name == target and s.path == str(path)
    assert load_csv_series(path, target).dates is None


# ---------------------------------------------------------------- CSV series: synthetic


def test_csv_series_basics(tmp_path):
    path = write(tmp_path, "s.csv", 'when,"x",other\r\n2001-01, 1.5 ,a\r\n2001-02,-2e1,b\r\n\r\n')
    s = load_csv_series(path, "x", date="when")
    assert s.values.tolist() == [1.5, -20.0] and s.dates.tolist() == ["2001-01", "2001-02"]
    assert s.name == "x" and s.path == str(path)


def test_csv_series_with_byte_order_mark(tmp_path):
    path = write(tmp_path, "bom.csv", "value,date\n1,2000\n2,2001\n", encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    s = load_csv_series(path, "value", date="date")
    assert s.values.tolist() == [1.0, 2.0] and s.dates.tolist() == ["2000", "2001"]


def test_csv_series_missing_values_are_an_error_by_default(tmp_path):
    path = write(tmp_path, "m.csv", "v\n1\n2\n\n3\nNA\n?\nNaN\nnan\n4\n")
    # the blank line 4 is skipped, not a missing value: 4 missing, the first at line 6
    with pytest.raises(ValueError, match=r"m\.csv: 4 missing 'v' value\(s\), the first at line 6"):
        load_csv_series(path, "v")
    path = write(tmp_path, "m2.csv", "t,v\n1,1\n2,\n3,3\n")  # an empty cell
    with pytest.raises(ValueError, match=r"1 missing 'v' value\(s\), the first at line 3.*interp"):
        load_csv_series(path, "v")


def test_csv_series_interpolation(tmp_path):
    path = write(tmp_path, "i.csv", "t,v\n1,\n2,NA\n3,2\n4,?\n5,\n6,8\n7,10\n8,nan\n")
    s = load_csv_series(path, "v", date="t", interpolate=True)
    # leading gap takes the first value, 2 -> 8 over three steps, trailing gap the last value
    np.testing.assert_allclose(s.values, [2, 2, 2, 4, 6, 8, 10, 10], rtol=0, atol=1e-12)
    assert s.dates.tolist() == [str(i) for i in range(1, 9)]  # rows with gaps are kept


def test_csv_series_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        load_csv_series(tmp_path / "nope.csv", "v")
    with pytest.raises(ValueError, match=r"e\.csv: the file is empty"):
        load_csv_series(write(tmp_path, "e.csv", ""), "v")
    with pytest.raises(ValueError, match=r"blank\.csv: the file is empty"):
        load_csv_series(write(tmp_path, "blank.csv", "\n  \n"), "v")
    cols = write(tmp_path, "c.csv", "Date,Passengers\n1949-01,112\n1949-02,118\n")
    with pytest.raises(
        ValueError, match=r"c\.csv: no column 'y' for target; .*'Date', 'Passengers'"
    ):
        load_csv_series(cols, "y")
    with pytest.raises(ValueError, match=r"no column 'month' for date; the columns are 'Date'"):
        load_csv_series(cols, "Passengers", date="month")
    bad = write(tmp_path, "b.csv", "t,v\n1,3\n2,3.1.4\n")
    with pytest.raises(ValueError, match=r"b\.csv line 3: 'v' value '3\.1\.4' is not a number"):
        load_csv_series(bad, "v")
    with pytest.raises(ValueError, match=r"line 2: 'v' value 'inf' is not finite"):
        load_csv_series(write(tmp_path, "inf.csv", "v\ninf\n1\n"), "v")
    with pytest.raises(ValueError, match=r"line 3: 1 field\(s\), but the header has 2"):
        load_csv_series(write(tmp_path, "f.csv", "t,v\n1,2\n3\n"), "v")
    with pytest.raises(ValueError, match=r"column 'v' \(the target\) appears 2 times"):
        load_csv_series(write(tmp_path, "d.csv", "v,v\n1,2\n3,4\n"), "v")
    with pytest.raises(ValueError, match="the first row looks like data: the file needs a header"):
        load_csv_series(write(tmp_path, "h.csv", "1,112\n2,118\n"), "v")
    with pytest.raises(ValueError, match=r"n\.csv: not UTF-8 text"):
        load_csv_series(write(tmp_path, "n.csv", "v,w\n1,é\n", encoding="latin-1"), "v")
    with pytest.raises(TypeError, match="target must be a column name"):
        load_csv_series(cols, 1)
    with pytest.raises(TypeError, match="interpolate must be True or False"):
        load_csv_series(cols, "Passengers", interpolate=1)


def test_csv_series_needs_two_values(tmp_path):
    with pytest.raises(ValueError, match=r"o\.csv: a series needs at least 2 'v' values, got 1"):
        load_csv_series(write(tmp_path, "o.csv", "v\n5\n"), "v")
    with pytest.raises(ValueError, match="at least 2 'v' values, got 0"):
        load_csv_series(write(tmp_path, "z.csv", "v\n"), "v")
    with pytest.raises(ValueError, match="at least 2 'v' values, got 1"):  # one real value
        load_csv_series(write(tmp_path, "g.csv", "v\n\n5\nNA\n"), "v", interpolate=True)


def test_csv_series_dates_must_increase_when_iso(tmp_path):
    path = write(tmp_path, "d.csv", "d,v\n1949-01,1\n1949-03,2\n1949-02,3\n")
    with pytest.raises(ValueError, match=r"d\.csv line 4: dates must increase, got '1949-02'"):
        load_csv_series(path, "v", date="d")
    path = write(tmp_path, "dup.csv", "d,v\n1950,1\n1950,2\n")
    with pytest.raises(ValueError, match="line 3: dates must increase, got '1950' after '1950'"):
        load_csv_series(path, "v", date="d")
    # not ISO (or mixed formats): kept as written, order not checked
    path = write(tmp_path, "m.csv", "d,v\nMar,1\nJan,2\n")
    assert load_csv_series(path, "v", date="d").dates.tolist() == ["Mar", "Jan"]


# ---------------------------------------------------------------- .ts files: synthetic

HEADER = "@problemName Toy\n@classLabel true a b\n@data\n"


def test_ts_univariate_multivariate_and_variable_length(tmp_path):
    text = (
        "# a comment\n\n@ProblemName Toy\n@TIMESTAMPS false\n@univariate FALSE\n"
        "@dimensions 2\n@equalLength false\n@classLabel TRUE a b\n@data\n"
        "1,2,3:4,5,6:b\n# comment among the data\n\n7, 8 :9,10: a \n"
    )
    data = load_ts(write(tmp_path, "t.ts", text))
    assert [x.shape for x in data.X] == [(3, 2), (2, 2)]
    np.testing.assert_array_equal(data.X[0], [[1, 4], [2, 5], [3, 6]])
    np.testing.assert_array_equal(data.X[1], [[7, 9], [8, 10]])
    assert data.y.tolist() == ["b", "a"] and data.classes == ["a", "b"]
    assert data.metadata["problemName"] == "Toy" and data.metadata["univariate"] is False
    assert data.metadata["equalLength"] is False and data.metadata["seriesLength"] is None


def test_ts_missing_values_and_byte_order_mark(tmp_path):
    path = write(tmp_path, "m.ts", HEADER + "1,?,3:a\n?,5,6:b\n", encoding="utf-8-sig")
    data = load_ts(path)
    assert math.isnan(data.X[0][1, 0]) and math.isnan(data.X[1][0, 0])
    assert data.X[0][[0, 2], 0].tolist() == [1.0, 3.0]
    assert data.metadata["missing"] is True and data.metadata["problemName"] == "Toy"
    assert data.metadata["seriesLength"] == 3 and data.metadata["dimensions"] == 1


def test_ts_header_defaults_from_the_data(tmp_path):
    data = load_ts(write(tmp_path, "Bare_TRAIN.ts", "@classLabel true x\n@data\n1,2:x\n3,4:x\n"))
    meta = data.metadata
    assert meta["problemName"] == "Bare_TRAIN" and meta["univariate"] is True
    assert meta["equalLength"] is True and meta["seriesLength"] == 2 and meta["missing"] is False


TS_ERRORS = [
    # (file text, error message pattern)
    ("@problemName X\n@classLabel true a\n", r"no @data line"),
    (HEADER, r"no series after @data \(line 3\)"),
    ("@classLabel true a b\n1,2:a\n@data\n", r"line 2: series before the @data line"),
    (HEADER + "1,2:a\n@missing true\n", r"line 5: header line '@missing' after @data"),
    (
        HEADER + "1,2:a\n3,4:5,6:b\n",
        r"line 5: 2 channel\(s\), but the first series \(line 4\) has 1",
    ),
    (
        "@dimensions 2\n" + HEADER + "1,2:3,4:a\n5:6:7:b\n",
        r"line 6: 3 channel\(s\), but @dimensions is 2",
    ),
    ("@dimensions 2\n" + HEADER + "1,2:a\n", r"line 5: 1 channel\(s\), but @dimensions is 2"),
    (
        "@univariate true\n" + HEADER + "1,2:3,4:a\n",
        r"line 5: 2 channel\(s\), but @univariate is true",
    ),
    ("@univariate true\n@dimensions 3\n" + HEADER, r"@univariate true contradicts @dimensions 3"),
    (HEADER + "1,2:a\n1,2:c\n", r"line 5: class label 'c' is not one of @classLabel a b"),
    (HEADER + "1,2:\n", r"line 4: class label '' is not one of @classLabel"),
    (HEADER + "1,2,3\n", r"line 4: expected values and a class label separated by ':'"),
    (HEADER + "1,x2,3:a\n", r"line 4: channel 1, value 'x2' at step 2 is not a number"),
    (HEADER + "1,2:3,,4:a\n", r"line 4: channel 2, empty value at step 2 is not a number"),
    (HEADER + "1,inf:a\n", r"line 4: infinite value"),
    (
        HEADER + "1,2:3,4,5:a\n",
        r"line 4: the channels of a series must have the same length, got lengths 2, 3",
    ),
    (
        "@seriesLength 3\n@equalLength true\n" + HEADER + "1,2,3:a\n1,2:b\n",
        r"series 2 \(line 7\) has length 2, but @seriesLength says 3",
    ),
    (
        "@equalLength true\n" + HEADER + "1,2,3:a\n1,2:b\n",
        r"series 2 \(line 6\) has length 2, but the first series says 3",
    ),
    (
        "@timeStamps true\n" + HEADER,
        r"line 1: time-stamped series \(@timeStamps true\) are not supported",
    ),
    (
        "@classLabel false\n@data\n1,2\n",
        r"line 1: unlabelled series \(@classLabel false\) are not supported",
    ),
    ("@problemName X\n@data\n1,2:a\n", r"no '@classLabel true \.\.\.' line before @data"),
    (
        "@targetLabel true\n@data\n1,2:0.5\n",
        r"line 1: regression targets \(@targetLabel true\) are not supported",
    ),
    ("@classLabel true\n@data\n", r"line 1: @classLabel true lists no class labels"),
    ("@classLabel true a a\n@data\n", r"line 1: @classLabel lists a class twice"),
    (
        "@univariate yes\n" + HEADER,
        r"line 1: @univariate must be followed by true or false, got 'yes'",
    ),
    ("@seriesLength -3\n" + HEADER, r"line 1: @seriesLength needs a positive integer"),
]


@pytest.mark.parametrize(("text", "match"), TS_ERRORS)
def test_ts_errors(tmp_path, text, match):
    path = write(tmp_path, "bad.ts", text)
    with pytest.raises(ValueError, match=match) as info:
        load_ts(path)
    assert str(info.value).startswith(str(path))  # every message names the file
    assert "\n" not in str(info.value)  # one line, fit for a command-line error


def test_ts_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.ts"):
        load_ts(tmp_path / "nothing.ts")


# ---------------------------------------------------------------- classification CSV


def test_classification_csv_label_column_by_name(tmp_path):
    path = write(tmp_path, "c.csv", "t0,label,t1,t2\n1,dog,2,3\n4, cat ,,NA\n")
    data = load_classification_csv(path)
    assert [x.shape for x in data.X] == [(3, 1), (3, 1)]
    assert data.X[0].ravel().tolist() == [1.0, 2.0, 3.0]  # the other columns, in order
    assert data.X[1][0, 0] == 4.0 and np.isnan(data.X[1][1:]).all()  # empty cells are NaN
    assert data.y.tolist() == ["dog", "cat"] and data.classes == ["cat", "dog"]
    assert data.metadata["missing"] is True and data.metadata["seriesLength"] == 3
    assert data.metadata["problemName"] == "c" and data.metadata["univariate"] is True


def test_classification_csv_defaults_to_the_last_column(tmp_path):
    path = write(tmp_path, "c.csv", "a,b,class\n1,2,10\n3,4,9\n5,6,10\n", encoding="utf-8-sig")
    data = load_classification_csv(path)
    assert data.y.tolist() == ["10", "9", "10"]
    assert data.classes == ["9", "10"]  # numeric labels sort as numbers
    assert data.X[2].ravel().tolist() == [5.0, 6.0]
    assert load_classification_csv(path, label="a").X[0].ravel().tolist() == [2.0, 10.0]


def test_classification_csv_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no\.csv"):
        load_classification_csv(tmp_path / "no.csv")
    ok = write(tmp_path, "ok.csv", "a,b,label\n1,2,x\n")
    with pytest.raises(ValueError, match=r"no column 'kind' for label; the columns are 'a', 'b'"):
        load_classification_csv(ok, label="kind")
    with pytest.raises(ValueError, match=r"one\.csv: need a label column and at least one value"):
        load_classification_csv(write(tmp_path, "one.csv", "label\nx\n"))
    with pytest.raises(ValueError, match=r"h\.csv: no data rows after the header"):
        load_classification_csv(write(tmp_path, "h.csv", "a,label\n"))
    with pytest.raises(ValueError, match=r"e\.csv line 3: empty class label in column 'label'"):
        load_classification_csv(write(tmp_path, "e.csv", "a,label\n1,x\n2, \n"))
    with pytest.raises(ValueError, match=r"v\.csv line 2: 'a' value 'one' is not a number"):
        load_classification_csv(write(tmp_path, "v.csv", "a,label\none,x\n"))
    with pytest.raises(ValueError, match=r"r\.csv line 2: 2 field\(s\), but the header has 3"):
        load_classification_csv(write(tmp_path, "r.csv", "a,b,label\n1,x\n"))
