"""The compiled ``process`` of every native stage: one call through a function pointer.

A native stage's state tuple is one read-only ``uint64`` array, its *handle*:
``[process function, C state, eegkit_last_error function, the handle's own address]``.
Everything the call needs travels as arguments, so this kernel is compiled once for
every native library, is cached on disk, and fuses with numba stages (the fused
chain calls it like any other kernel).

The host warms kernels up on *copies* of their state; a native state lives outside
the array, so a copy cannot be honoured. The last slot tells a copy from the
original (its address differs), and a call on a copy does nothing: the library's
``process`` is never called during warm-up.
"""

from __future__ import annotations

import ctypes

from .. import _numba
from .._errors import StageError

call = _numba.native_call()
LABELS: dict = {}  # C state address -> "stage type (library path)", for error messages


class NativeKernelError(StageError):
    """A native kernel returned a non-zero code; the message is the library's own."""

    def __init__(self, rc, state=0, last_error=0):
        if isinstance(rc, str):  # unpickled, or raised with a text
            super().__init__(rc)
            return
        label = LABELS.get(int(state), "native kernel")
        text = error_text(last_error, state)
        super().__init__(f"{label}: process returned {int(rc)}"
                         + (f": {text}" if text else " (the library gave no error text)"))


def error_text(last_error, state) -> str:
    """What ``eegkit_last_error(state)`` says ('' when the library has none)."""
    if not last_error:
        return ""
    proto = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)
    raw = proto(int(last_error))(int(state) or None)
    return raw.decode("utf-8", "replace")[:500] if raw else ""


def process(x, handle):
    """Run the library's ``process`` on ``x`` in place (nothing on a copy of the handle)."""
    if handle[3] != handle.ctypes.data:
        return
    rc = call(handle[0], handle[1], x.ctypes.data, x.shape[0], x.shape[1])
    if rc != 0:
        raise NativeKernelError(rc, handle[1], handle[2])
