"""sweeper.jsonio: the one strict-JSON convention (non-finite floats as "NaN", "Infinity", "-Infinity")."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pytest

from sweeper import jsonio
from sweeper.jsonio import dumps, from_strict, to_strict


def same_float(a: float, b: float) -> bool:
    """Equal as IEEE doubles: NaN equals NaN, and -0.0 differs from 0.0."""
    return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))


def refuse(token):
    raise AssertionError(f"non-standard JSON token {token}")


def test_nonfinite_floats_round_trip_through_strict_text():
    value = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "zero": -0.0, "big": 1e308, "tiny": 5e-324}
    text = dumps(value)
    raw = json.loads(text, parse_constant=refuse)
    assert (raw["nan"], raw["inf"], raw["-inf"]) == ("NaN", "Infinity", "-Infinity")
    back = from_strict(raw)
    for key, x in value.items():
        assert same_float(back[key], x), key


def test_numpy_scalars_and_arrays_become_python_values():
    value = {"f32": np.float32(1.5), "f64": np.float64(math.nan), "i": np.int64(7), "b": np.bool_(True),
             "a": np.array([[1.0, np.inf], [-np.inf, 2.0]]), "ints": np.arange(3)}
    out = to_strict(value)
    assert out == {"f32": 1.5, "f64": "NaN", "i": 7, "b": True, "a": [[1.0, "Infinity"], ["-Infinity", 2.0]],
                   "ints": [0, 1, 2]}
    assert type(out["f32"]) is float and type(out["i"]) is int and type(out["b"]) is bool
    assert all(type(v) is int for v in out["ints"])
    json.dumps(out, allow_nan=False)


def test_tuples_become_lists_and_nesting_is_kept():
    value = {"t": (1, (2.5, math.nan)), "l": [{"x": (None, "s", False)}], "empty": {}}
    out = to_strict(value)
    assert out == {"t": [1, [2.5, "NaN"]], "l": [{"x": [None, "s", False]}], "empty": {}}
    back = from_strict(out)
    assert back["t"][0] == 1 and back["t"][1][0] == 2.5 and math.isnan(back["t"][1][1])
    assert back["l"] == [{"x": [None, "s", False]}]


def test_bool_stays_bool_and_int_stays_int():
    assert to_strict([True, False, 0, 1, 2**70]) == [True, False, 0, 1, 2**70]
    assert [type(v) for v in to_strict([True, 1])] == [bool, int]


def test_what_json_cannot_hold_is_refused_naming_the_place():
    with pytest.raises(TypeError, match=r"\$\.a\[1\]: object is not JSON"):
        to_strict({"a": [1, object()]})
    with pytest.raises(TypeError, match=r"\$\.outer\.inner: JSON object keys must be strings, got 1"):
        to_strict({"outer": {"inner": {1: 2}}})
    with pytest.raises(TypeError, match=r"\$\[0\]\[2\]: set"):
        to_strict([(1, 2, {3})])
    with pytest.raises(TypeError, match=r"\$\.when: datetime"):
        dumps({"when": dt.datetime(2026, 1, 1)})


def test_nonfinite_none_gives_null_for_plots():
    value = {"y": [1.0, math.nan, math.inf, -math.inf], "a": np.array([np.nan, 2.0]), "s": np.float64(-np.inf)}
    out = to_strict(value, nonfinite=None)
    assert out == {"y": [1.0, None, None, None], "a": [None, 2.0], "s": None}
    assert "null" in json.dumps(out, allow_nan=False)
    assert to_strict(math.nan, nonfinite=None) is None and to_strict(2.0, nonfinite=None) == 2.0


def test_from_strict_reads_tokens_anywhere_and_leaves_other_strings():
    back = from_strict({"a": ["NaN", "nan", "Infinity", "-Infinity", "text"], "b": {"c": "NaN"}, "n": None})
    assert math.isnan(back["a"][0]) and back["a"][1] == "nan" and back["a"][2:] == [math.inf, -math.inf, "text"]
    assert math.isnan(back["b"]["c"]) and back["n"] is None
    assert set(jsonio.TOKENS) == {"NaN", "Infinity", "-Infinity"}


def test_dumps_is_strict_unicode_text_with_an_indent_choice():
    assert dumps({"k": "ü", "v": [math.nan]}, indent=None) == '{"k": "ü", "v": ["NaN"]}'
    assert dumps({"a": 1}) == '{\n  "a": 1\n}'
