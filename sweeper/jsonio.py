"""Strict JSON: what any parser reads, NaN and infinities included.

One convention everywhere sweeper writes JSON (the database's JSON columns, `--json` output, the
dashboard's downloads): a non-finite float is the string "NaN", "Infinity" or "-Infinity", and
`from_strict` turns those strings back into floats. numpy scalars and arrays become Python numbers and
lists; tuples become lists. Plots are the one exception: `to_strict(x, nonfinite=None)` gives null,
which Plotly draws as a gap.
"""

from __future__ import annotations

import json
import math
import numbers
from typing import Any

TOKENS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_MISSING = object()


def _token(x: float) -> str:
    return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")


def to_strict(value: Any, *, nonfinite: Any = _MISSING, path: str = "$") -> Any:
    """`value` made strict-JSON-able. Non-finite floats become their token (or `nonfinite` if given).

    Raises TypeError, naming the place, for what JSON cannot hold (non-string keys, arbitrary objects).
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "tolist") and not isinstance(value, numbers.Number):  # numpy arrays
        value = value.tolist()
    elif hasattr(value, "item") and not isinstance(value, (int, float)):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isfinite(value):
            return value
        return _token(value) if nonfinite is _MISSING else nonfinite
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path}: JSON object keys must be strings, got {key!r}")
            out[key] = to_strict(item, nonfinite=nonfinite, path=f"{path}.{key}")
        return out
    if isinstance(value, (list, tuple)):
        return [to_strict(item, nonfinite=nonfinite, path=f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path}: {type(value).__name__} is not JSON ({value!r})")


def from_strict(value: Any) -> Any:
    """Inverse of `to_strict`: the strings "NaN", "Infinity", "-Infinity" become floats again."""
    if isinstance(value, str):
        return TOKENS.get(value, value)
    if isinstance(value, dict):
        return {key: from_strict(item) for key, item in value.items()}
    if isinstance(value, list):
        return [from_strict(item) for item in value]
    return value


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text of `value` (see `to_strict`)."""
    return json.dumps(to_strict(value), indent=indent, allow_nan=False, ensure_ascii=False)
