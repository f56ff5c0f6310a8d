"""Stage parameter declarations (from ``[stage.params]``) and their validation."""

from __future__ import annotations

import math
import reprlib
from dataclasses import dataclass, field

from .._errors import ManifestError, ParameterError

PARAM_TYPES = ("int", "float", "bool", "str", "list[int]", "list[float]", "list[str]")
SPEC_KEYS = ("type", "default", "min", "max", "choices", "unit", "description")


@dataclass(frozen=True)
class ParamSpec:
    """One declared stage parameter."""

    name: str
    type: str
    default: object = None
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    unit: str = ""
    description: str = ""
    extra: dict = field(default_factory=dict, compare=False)

    def validate(self, value, where: str):
        """Return ``value`` coerced to this parameter's type, or raise ParameterError.

        ``where`` names the culprit, e.g. ``"stage 'bp' (filters.bandpass)"``.
        """
        label = f"{where}: parameter '{self.name}'"
        if self.type.startswith("list["):
            item_type = self.type[5:-1]
            if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
                raise ParameterError(f"{label} expects {self.type}, got {_show(value)}")
            out = [_coerce(item_type, v, f"{label}[{i}]") for i, v in enumerate(value)]
            for i, v in enumerate(out):
                self._check_range(v, f"{label}[{i}]")
            return out
        value = _coerce(self.type, value, label)
        self._check_range(value, label)
        return value

    def _check_range(self, value, label):
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(c) for c in self.choices)
            raise ParameterError(f"{label}: allowed values are {allowed}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            unit = f" {self.unit}" if self.unit else ""
            if self.min is not None and value < self.min:
                raise ParameterError(f"{label} must be >= {self.min}{unit}, got {value!r}")
            if self.max is not None and value > self.max:
                raise ParameterError(f"{label} must be <= {self.max}{unit}, got {value!r}")

    def to_dict(self) -> dict:
        """Declaration as a plain dict (for listings and widgets)."""
        d = {"type": self.type, "default": self.default}
        for key in ("min", "max", "choices"):
            if getattr(self, key) is not None:
                d[key] = list(self.choices) if key == "choices" else getattr(self, key)
        if self.unit:
            d["unit"] = self.unit
        if self.description:
            d["description"] = self.description
        return d


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def _show(value):
    # reprlib: bounded in length and depth (a value from JSON may be huge or deeply nested)
    return f"{type(value).__name__} {_REPR.repr(value)}"


def _coerce(type_name, value, label):
    if type_name == "bool":
        if isinstance(value, bool):
            return value
    elif type_name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif type_name == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int beyond the float range
                number = math.inf
            if math.isfinite(number):  # NaN would pass every min/max check
                return number
            raise ParameterError(f"{label} expects a finite float, got {_show(value)}")
    elif type_name == "str":
        if isinstance(value, str):
            return value
    raise ParameterError(f"{label} expects {type_name}, got {_show(value)}")


def parse_param(name: str, decl, where: str) -> ParamSpec:
    """Build a ParamSpec from a manifest's inline table, or raise ManifestError."""
    label = f"{where}: parameter '{name}'"
    if not name.isidentifier() or name == "info" or name.startswith("_"):
        raise ManifestError(f"{label}: name must be a Python identifier other than 'info' "
                            f"and not start with '_'")
    if not isinstance(decl, dict):
        raise ManifestError(f"{label}: expected a table like "
                            f"{{ type = \"float\", default = 1.0 }}, got {_show(decl)}")
    unknown = sorted(set(decl) - set(SPEC_KEYS))
    if unknown:
        raise ManifestError(f"{label}: unknown key(s) {unknown}; allowed are {', '.join(SPEC_KEYS)}")
    ptype = decl.get("type")
    if ptype not in PARAM_TYPES:
        raise ManifestError(f"{label}: 'type' must be one of {', '.join(PARAM_TYPES)}, got {ptype!r}")
    if "default" not in decl:
        raise ManifestError(f"{label}: 'default' is required")
    for key in ("min", "max"):
        v = decl.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ManifestError(f"{label}: '{key}' must be a number, got {_show(v)}")
    choices = decl.get("choices")
    if choices is not None and not isinstance(choices, list):
        raise ManifestError(f"{label}: 'choices' must be a list, got {_show(choices)}")
    for key in ("unit", "description"):
        if not isinstance(decl.get(key, ""), str):
            raise ManifestError(f"{label}: '{key}' must be a string, got {_show(decl[key])}")
    spec = ParamSpec(name=name, type=ptype, default=decl["default"], min=decl.get("min"),
                     max=decl.get("max"), choices=tuple(choices) if choices is not None else None,
                     unit=decl.get("unit", ""), description=decl.get("description", ""))
    try:
        default = spec.validate(decl["default"], where)
    except ParameterError as exc:
        raise ManifestError(f"{exc} (the declared default)") from None
    return ParamSpec(**{**spec.__dict__, "default": default})


def validate_params(specs: dict, given: dict, where: str) -> dict:
    """Check ``given`` against ``specs``; return every parameter with defaults filled in."""
    import difflib

    for key in given:
        if key not in specs:
            hint = difflib.get_close_matches(key, list(specs), n=1)
            allowed = ", ".join(specs) or "none"
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ParameterError(f"{where}: unknown parameter '{key}'; allowed are {allowed}.{extra}")
    return {name: spec.validate(given[name], where) if name in given else _copy(spec.default)
            for name, spec in specs.items()}


def _copy(value):
    return list(value) if isinstance(value, list) else value


def default_drift(specs: dict, setup) -> list:
    """Where a ``setup`` function's keyword defaults disagree with the manifest.

    The host passes every declared parameter, so a Python default is never used; one
    that differs from the declared default only misleads readers (and direct callers).
    Returns one sentence per disagreement (empty when there is none).
    """
    import inspect

    try:
        sig = inspect.signature(setup)
    except (TypeError, ValueError):  # a builtin or C function: nothing to compare
        return []
    name = getattr(setup, "__name__", "setup")
    takes_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    found = []
    for key, spec in specs.items():
        param = sig.parameters.get(key)
        if param is None:
            if not takes_any:
                found.append(f"{name}() has no parameter '{key}', which plugin.toml declares; "
                             f"setup will fail with a TypeError")
            continue
        if param.default is param.empty or _plain(param.default) == _plain(spec.default):
            continue
        found.append(f"{name}() has {key}={param.default!r} but plugin.toml declares default "
                     f"{spec.default!r}; the host always passes the manifest's value, so make "
                     f"them equal or drop the Python default")
    return found


def _plain(value):
    """Tuples as lists (TOML has no tuples), recursively, for comparing defaults."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
