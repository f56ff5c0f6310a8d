"""What a stage's ``setup`` returns, and the one function that reads every accepted shape.

A plugin's ``setup`` may return None, a plain tuple, ``(tuple, StreamInfo)`` (plugin API
1.0), or a :class:`Setup`, which names what each array is for: coefficients (designed
from the parameters), running state (carried over a hot reload, by name) and scratch
(never carried). The kernel is still called ``process(x, *coefs, *state, *scratch)``,
so a compiled signature does not depend on which shape ``setup`` used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._errors import StageError
from .._info import StreamInfo


@dataclass(frozen=True)
class Setup:
    """What a stage's ``setup`` may return: its kernel's arguments, by role.

    ``process`` is called as ``process(x, *coefs, *state.values(), *scratch)``: the
    order of the arguments is the order written here, so a kernel's signature is the
    same as with a plain tuple. Returning a plain tuple stays accepted.

    Parameters
    ----------
    coefs : tuple
        Values designed from the parameters (filter coefficients, tables, sizes);
        after a hot reload they always come from the new ``setup``.
    state : dict of str to ndarray, or tuple of ndarray
        Running state that ``process`` updates in place (filter memories, ring
        buffers, counters). On a hot reload an array is carried over when the new
        ``setup`` returns one of the same name (dict key, or position in a tuple),
        shape and dtype; otherwise it starts fresh and the reload says so.
    scratch : tuple
        Work arrays whose content does not matter between chunks (never carried).
    out : StreamInfo, optional
        The output stream when it differs from the input (spectra, features);
        None (default) keeps the input's description.

    Examples
    --------
    An exponential smoother: one coefficient, one running-state array per channel.

    >>> import numpy as np, eegkit
    >>> def setup(info, alpha):
    ...     return eegkit.Setup(coefs=(alpha,), state={"y": np.zeros(info.n_channels)})
    >>> def process(x, alpha, y):  # process(x, *coefs, *state.values(), *scratch)
    ...     for i in range(x.shape[1]):
    ...         y += alpha * (x[:, i] - y)
    ...         x[:, i] = y
    """

    coefs: tuple = ()
    state: object = ()
    scratch: tuple = ()
    out: StreamInfo | None = None


@dataclass(frozen=True)
class Prepared:
    """A normalised ``setup`` result: kernel arguments, output info, and where the named
    running state sits among the arguments (``names`` None for plain tuples)."""

    args: tuple
    out_info: StreamInfo
    names: dict | None = None  # state name -> position in args


def normalize_setup(result, info: StreamInfo, where: str) -> Prepared:
    """Read any accepted ``setup`` return shape; raise StageError naming ``where`` otherwise."""
    names = None
    if result is None:
        args, out = (), info
    elif isinstance(result, Setup):
        args, names, out = _from_setup(result, where)
        out = info if out is None else out
    elif (isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], tuple)
            and isinstance(result[1], StreamInfo)):
        args, out = result
    elif isinstance(result, tuple):
        args, out = result, info
    else:
        raise StageError(f"{where}: setup must return a tuple of state, (state_tuple, "
                         f"StreamInfo) or eegkit.Setup(...); got {type(result).__name__}")
    if out.dtype != info.dtype:
        out = out.replace(dtype=info.dtype)
    return Prepared(tuple(args), out, names)


def _from_setup(result: Setup, where: str):
    """Arguments, state positions and output info of a :class:`Setup`."""
    parts = {}
    for role in ("coefs", "scratch"):
        value = getattr(result, role)
        if not isinstance(value, (tuple, list)):
            raise StageError(f"{where}: Setup({role}=...) must be a tuple, got "
                             f"{type(value).__name__}")
        parts[role] = tuple(value)
    state = result.state
    if isinstance(state, dict):
        items = list(state.items())
    elif isinstance(state, (tuple, list)):
        items = [(f"state[{i}]", v) for i, v in enumerate(state)]
    else:
        raise StageError(f"{where}: Setup(state=...) must be a dict of name -> array or a "
                         f"tuple of arrays, got {type(state).__name__}")
    for name, value in items:
        if not isinstance(name, str) or not name:
            raise StageError(f"{where}: Setup(state=...) names must be non-empty strings, "
                             f"got {name!r}")
        if not isinstance(value, np.ndarray):  # numba passes scalars by value: never updated
            raise StageError(f"{where}: Setup(state=...) entry '{name}' must be a NumPy array "
                             f"that process updates in place, got {type(value).__name__}; "
                             f"put constants in coefs")
    if result.out is not None and not isinstance(result.out, StreamInfo):
        raise StageError(f"{where}: Setup(out=...) must be a StreamInfo or None, got "
                         f"{type(result.out).__name__}")
    first = len(parts["coefs"])
    names = {name: first + i for i, (name, _) in enumerate(items)}
    args = parts["coefs"] + tuple(v for _, v in items) + parts["scratch"]
    return args, names, result.out
