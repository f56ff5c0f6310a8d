"""Manifest TOML written from Python values (``%%eegkit_stage``, ``eegkit.testing``):
the values manifests use — strings, numbers, booleans, arrays, inline tables."""

from __future__ import annotations

import json
import math

from .._errors import ParameterError


def toml_value(value) -> str:
    """One TOML value; raises ParameterError for anything a manifest cannot hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return "nan" if value != value else repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise ParameterError(f"cannot write {value!r} ({type(value).__name__}) into plugin.toml; "
                         f"use numbers, strings, booleans, lists and tables")


def toml_document(doc: dict) -> str:
    """TOML text of a manifest dict: tables, arrays of tables, inline values below."""
    lines = []
    for key, value in doc.items():
        if isinstance(value, dict):
            lines += [f"[{key}]", *(f"{k} = {toml_value(v)}" for k, v in value.items()), ""]
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for table in value:
                lines += [f"[[{key}]]", *(f"{k} = {toml_value(v)}" for k, v in table.items()), ""]
        else:
            lines.insert(0, f"{key} = {toml_value(value)}")
    return "\n".join(lines)
