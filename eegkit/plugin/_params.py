"""Stage parameter declarations (from ``[stage.params]``) and their validation."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._check import check_keys, check_option, did_you_mean, short_repr, validate_type
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
                self._check_range(v, f"{self.name}[{i}]", where)
            return out
        value = _coerce(self.type, value, label)
        self._check_range(value, self.name, where)
        return value

    def _check_range(self, value, name, where):
        """Raise ParameterError unless ``value`` is among the choices and within min/max."""
        if self.choices is not None:
            check_option(name, value, self.choices, where)
        label = f"{where}: parameter '{name}'"
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


def _show(value):
    """Type name and bounded repr of a value, e.g. ``str 'four'``."""
    return f"{type(value).__name__} {short_repr(value)}"


def _coerce(type_name, value, label):
    """``value`` as ``type_name`` (an integral float becomes an int), or raise ParameterError."""
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
    check_keys(decl, SPEC_KEYS, label, error=ManifestError)
    ptype = check_option("type", decl.get("type"), PARAM_TYPES, label, what="key", error=ManifestError)
    if "default" not in decl:
        raise ManifestError(f"{label}: 'default' is required")
    for key in ("min", "max"):
        validate_type(decl.get(key), (int, float, None), f"'{key}'", label, type_name="a number",
                      error=ManifestError)
    choices = validate_type(decl.get("choices"), (list, None), "'choices'", label,
                            type_name="a list", error=ManifestError)
    for key in ("unit", "description"):
        validate_type(decl.get(key, ""), str, f"'{key}'", label, type_name="a string",
                      error=ManifestError)
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
    for key in given:
        if key not in specs:
            allowed = ", ".join(specs) or "none"
            raise ParameterError(f"{where}: unknown parameter {short_repr(key)}; allowed are "
                                 f"{allowed}.{did_you_mean(key, specs)}")
    return {name: spec.validate(given[name], where) if name in given else _copy(spec.default)
            for name, spec in specs.items()}


def _copy(value):
    """A list default copied, so one stage's list never aliases another's."""
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
