"""Study dicts written as TOML: for studies built in code (the tuned Table 1's searches, the frontier's
per-seed studies), whose packs parse the same text again on their workers.

    spec = build_study(data)     # data: a study as a dict; spec.source is its TOML text
    text = to_toml(data)

The standard library reads TOML but does not write it, and a study needs only this much of it:
scalars, lists of scalars, tables, tables of tables and arrays of tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if math.isfinite(v) else ("inf" if v > 0 else "-inf" if v < 0 else "nan")
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def to_toml(data: Mapping[str, Any]) -> str:
    """A study dict as TOML text (scalars, lists of scalars, tables, tables of tables, arrays of
    tables): the text the packs parse again on their workers."""
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        subtables = {k: v for k, v in body.items() if isinstance(v, Mapping)}
        arrays = {k: v for k, v in body.items() if isinstance(v, list) and v and isinstance(v[0], Mapping)}
        scalars = {k: v for k, v in body.items() if k not in subtables and k not in arrays}
        if prefix and (scalars or not subtables and not arrays):
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in scalars.items())
        for k, v in subtables.items():
            table(f"{prefix}.{k}" if prefix else k, v)
        for k, entries in arrays.items():
            for entry in entries:
                lines.append(f"[[{prefix + '.' if prefix else ''}{k}]]")
                lines.extend(f"{ek} = {_toml_value(ev)}" for ek, ev in entry.items())

    table("", data)
    return "\n".join(lines) + "\n"


def build_study(data: Mapping[str, Any]):
    """The study of `data` (`study_from_dict`), its source the TOML text of `data`; checked to be the
    study that text parses to, since the packs' workers rebuild it from the text."""
    from sweeper.study.spec import parse_study, study_from_dict

    text = to_toml(data)
    spec = study_from_dict({**data, "source": text})
    parsed = parse_study(text, f"<{spec.name}>")
    if replace(parsed, path=None).to_dict() != spec.to_dict():
        raise RuntimeError(f"study {spec.name}: its TOML text does not parse back to the same study")
    return spec
