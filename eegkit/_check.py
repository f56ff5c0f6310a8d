"""Validation helpers: the one place error sentences about bad values are worded.

Every "Allowed values are ..." message (:func:`check_option`), every "Did you mean ...?"
hint (:func:`did_you_mean`, :func:`check_keys`), every integer check (:func:`ensure_int`,
:func:`positive_int`) and every bounded repr of a value a user or a file handed us
(:func:`short_repr`) comes from here, so the same mistake reads the same in a manifest,
a pipeline document, a stage call, a widget or the CLI. Shaped after MNE-Python's
``mne/utils/check.py`` (``_check_option``, ``_validate_type``, ``_ensure_int``).

Each helper raises :class:`~eegkit._errors.ParameterError` unless the caller passes
``error=`` (``ManifestError`` for ``plugin.toml``, ``PipelineError`` for pipeline JSON).
``where`` names the culprit (file, stage, function) and is put first, followed by ``": "``.
Leaf module: imports only ``_errors``.
"""

from __future__ import annotations

import difflib
import operator
import reprlib

from ._errors import ParameterError

# Bounded in length and depth: values come from JSON, TOML or a notebook and may be huge
# or deeply nested; an error message must stay readable (and cheap to build).
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


def short_repr(obj) -> str:
    """``repr(obj)`` cut to a readable length (long strings, big or deep containers)."""
    return _REPR.repr(obj)


def did_you_mean(word, candidates, *, say_for: bool = False) -> str:
    """`` Did you mean 'x'?`` naming the closest candidate (``... for 'word'?`` with
    ``say_for``), or ``""`` when none is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in candidates], n=1)
    if not close:
        return ""
    return f" Did you mean '{close[0]}' for {short_repr(word)}?" if say_for else \
        f" Did you mean '{close[0]}'?"


def _prefix(where):
    """``"where: "`` or nothing."""
    return f"{where}: " if where else ""


def _allowed_text(allowed, others=None) -> str:
    """``Allowed values are 'a', 'b', and 'c'`` (MNE's sentence, with ``others`` last)."""
    items = [repr(v) for v in allowed] + ([others] if others else [])
    if len(items) == 1:
        return f"The only allowed value is {items[0]}"
    if len(items) == 2:
        return f"Allowed values are {items[0]} and {items[1]}"
    return f"Allowed values are {', '.join(items[:-1])}, and {items[-1]}"


def option_error(name, value, allowed, where=None, *, others=None, what="parameter",
                 error=ParameterError):
    """The error for ``value`` outside ``allowed`` (``others`` describes further allowed values)."""
    hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
    invalid = f"{_prefix(where)}invalid value" if where else "Invalid value"
    return error(f"{invalid} for the '{name}' {what}. "
                 f"{_allowed_text(allowed, others)}, but got {short_repr(value)} instead.{hint}")


def check_option(name, value, allowed, where=None, *, what="parameter", error=ParameterError):
    """Return ``value`` if it is one of ``allowed``, else raise.

    Parameters
    ----------
    name : str
        The parameter (or manifest/JSON key) checked, as the user wrote it.
    value : object
        What the user gave.
    allowed : sequence
        The allowed values, in the order to list them.
    where : str, optional
        The culprit: file, stage or function, e.g. ``"start()"``.
    what : str
        What ``name`` is to the user: ``"parameter"`` or ``"key"``.
    error : type
        Exception class raised.

    Raises
    ------
    ParameterError
        (or ``error``) "Invalid value for the 'x' parameter. Allowed values are 'a'
        and 'b', but got 'c' instead.", with a spelling hint when one is close.
    """
    try:
        if value in allowed:
            return value
    except TypeError:  # an unhashable value against a set or dict
        pass
    raise option_error(name, value, allowed, where, what=what, error=error)


def validate_type(value, types, name, where=None, *, type_name=None, error=ParameterError):
    """Return ``value`` if it is an instance of ``types`` (bool is never a number), else raise.

    Parameters
    ----------
    value : object
        What the user gave.
    types : type or tuple of type
        Accepted types; ``None`` in the tuple accepts None.
    name : str
        The parameter or key checked.
    where : str, optional
        The culprit, put first.
    type_name : str, optional
        What to call the accepted types in the message (default: their names).
    error : type
        Exception class raised.
    """
    types = types if isinstance(types, tuple) else (types,)
    check = tuple(type(None) if t is None else t for t in types)
    numeric = any(t in (int, float, complex) for t in check) and bool not in check
    if isinstance(value, check) and not (numeric and isinstance(value, bool)):
        return value
    if type_name is None:
        names = ["None" if t is None else t.__name__ for t in types]
        type_name = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
    raise error(f"{_prefix(where)}{name} must be {type_name}, got "
                f"{type(value).__name__} {short_repr(value)}")


def ensure_int(value, name, where=None, min=None, *, what=None, error=ParameterError) -> int:
    """Return ``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool)
    no smaller than ``min``, else raise ``error``.

    Parameters
    ----------
    value : object
        What the user gave.
    name : str
        The parameter checked, e.g. ``"chunk"`` or ``"--chunk"``.
    where : str, optional
        The culprit, put first: ``"start(): chunk must be ..."``.
    min : int, optional
        Smallest allowed value.
    what : str, optional
        What the value must be, for the message (default: "an integer >= min").
    error : type
        Exception class raised.
    """
    if what is None:
        what = ("a positive integer" if min == 1 else "a non-negative integer" if min == 0
                else "an integer" if min is None else f"an integer >= {min}")
    try:
        # a bool is an int to Python, but True for a sample count is a mistake
        if isinstance(value, bool):
            raise TypeError
        number = int(operator.index(value))
    except TypeError:
        number = None
    if number is None or (min is not None and number < min):
        raise error(f"{_prefix(where)}{name} must be {what}, got {short_repr(value)}")
    return number


def positive_int(value, name, where=None, *, what="a positive integer",
                 error=ParameterError) -> int:
    """Return ``value`` as an ``int`` if it is an integer >= 1, else raise (see :func:`ensure_int`)."""
    return ensure_int(value, name, where, min=1, what=what, error=error)


def check_keys(keys, allowed, where=None, *, within="", error=ParameterError) -> None:
    """Raise ``error`` naming every key not in ``allowed``, the allowed keys and spelling hints.

    ``within`` follows the key list, e.g. ``" in [plugin]"``.
    """
    unknown = [k for k in keys if k not in allowed]
    if unknown:
        hints = "".join(did_you_mean(k, allowed, say_for=len(unknown) > 1) for k in unknown)
        raise error(f"{_prefix(where)}unknown key(s) {short_repr(unknown)}{within}; allowed are "
                    f"{', '.join(allowed) or 'none'}.{hints}")
