"""Process isolation: one stage runs in a child process fed through shared memory.

Opt in per stage with ``isolation = "process"`` in the manifest's ``[[stage]]``,
``"isolation": "process"`` in pipeline JSON, or ``Pipeline.add(..., isolation="process")``.

The parent never imports the plugin's code. The child (a fresh interpreter) imports
it, runs ``setup`` and the warm-up, and then, per chunk, processes the block the
parent wrote into a shared-memory segment; a 9-byte message over a socket says
"go", a 17-byte one says "done" (nothing is pickled per chunk). A child that
segfaults, exits, raises or misses the per-chunk deadline (``isolation_timeout``)
makes only its stage fail: the stage is disabled like any failing stage, and
``stage.enable()`` starts a new child. POSIX only.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
import time
import traceback
import weakref
from multiprocessing import shared_memory
from multiprocessing.connection import Connection

import numpy as np

from .._check import check_option
from .._errors import ParameterError, StageError
from .._paths import child_env
from ..plugin._manifest import ISOLATION

DEFAULT_TIMEOUT = 1.0    # s per chunk; EEGKIT_ISOLATION_TIMEOUT overrides
SETUP_TIMEOUT = 120.0    # s to start the child, import the plugin and compile
MIN_SAMPLES = 1024       # initial shared-memory capacity, in samples per channel

# requests (parent -> child): opcode, integer argument, optional pickled payload
OP_SETUP, OP_RUN, OP_INPUT, OP_OUTPUT, OP_GET_STATE, OP_SET_STATE, OP_EXIT = range(7)
# replies (child -> parent): code, rows, columns, optional pickled payload
R_OK, R_INPLACE, R_NEW, R_GROW, R_ERROR = range(5)
_REQ = struct.Struct("<Bq")
_REP = struct.Struct("<Bqq")


MAX_TIMEOUT = 3600.0  # a longer per-chunk deadline is no deadline (and inf overflows waits)


def default_timeout() -> float:
    """Per-chunk deadline of isolated stages (``EEGKIT_ISOLATION_TIMEOUT`` or 1 s)."""
    try:
        return float(os.environ.get("EEGKIT_ISOLATION_TIMEOUT", DEFAULT_TIMEOUT))
    except ValueError:
        return DEFAULT_TIMEOUT


def load_code(plugins, stage_type: str, where: str, isolation=None, timeout=None):
    """The code of a stage type, in this process or isolated in a child process.

    Parameters
    ----------
    plugins : PluginManager
    stage_type : str
    where : str
        Names the stage in error messages.
    isolation : {"none", "process"}, optional
        Default: the manifest's ``isolation`` for that stage.
    timeout : float, optional
        Per-chunk deadline in seconds of an isolated stage.
    """
    _, spec = plugins.spec(stage_type, where)
    mode = check_option("isolation", spec.isolation if isolation is None else isolation,
                        ISOLATION, where)
    if timeout is not None:
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                or not 0 < timeout <= MAX_TIMEOUT):
            raise ParameterError(f"{where}: isolation_timeout must be a number of seconds above 0 "
                                 f"and at most {MAX_TIMEOUT:g}, got {timeout!r}")
        if mode != "process":
            raise ParameterError(f"{where}: isolation_timeout={timeout!r} needs isolation='process'")
    if mode == "process":
        rec, spec = plugins.spec(stage_type, where)
        return IsolatedCode(rec.manifest, spec, timeout=timeout)
    return plugins.load(stage_type, where)


class IsolatedCode:
    """Stage code that runs in a child process (implements ``eegkit.plugin._loader.Code``).

    ``setup`` starts the child when needed and runs the plugin's setup and warm-up
    there; it returns an empty state (the state lives in the child). ``process``
    hands one block to the child and waits at most ``timeout`` seconds.
    """

    isolated = True
    isolation = "process"
    parallel = None  # the child runs its own kernel

    def __init__(self, manifest, spec, timeout=None, setup_timeout: float = SETUP_TIMEOUT):
        from ..plugin._loader import plugin_digest

        if os.name != "posix":
            raise ParameterError(f"stage type '{spec.type}': isolation='process' needs a POSIX "
                                 f"system (Linux, macOS)")
        self.spec = spec
        self.manifest = manifest
        self.digest = plugin_digest(manifest)
        self.timeout = default_timeout() if timeout is None else float(timeout)
        self.setup_timeout = float(setup_timeout)
        self.in_place = False
        self._child = None
        self._finalizer = None
        self._start()  # now: the child imports while the rest of the pipeline is built

    def _start(self):
        self.close()
        self._child = _Child(self.manifest, self.spec)
        self._finalizer = weakref.finalize(self, self._child.close)

    @property
    def pid(self):
        """Process id of the child, or None."""
        return None if self._child is None else self._child.proc.pid

    def setup(self, info, **params):
        """Start the child if needed; run setup and warm-up there; return ``((), out_info)``."""
        if self._child is None or not self._child.alive():
            self._start()
        out_info, self.in_place = self._child.setup(info, params, self.setup_timeout)
        return (), out_info

    def process(self, x, *state):
        """Process ``x`` in the child (in place, or return the child's new block)."""
        if self._child is None:
            raise StageError(f"isolated stage '{self.spec.type}': its child process is not running")
        return self._child.run(x, self.timeout)

    def get_state(self):
        """``(current, initial, names)`` of the child's state (for hot reload); ``names``
        maps state names to positions, None when its setup returned a plain tuple."""
        return self._child.call(OP_GET_STATE, None, self.timeout + 5.0)

    def set_state(self, items: dict) -> None:
        """Copy ``{position: array}`` into the child's state arrays."""
        self._child.call(OP_SET_STATE, items, self.timeout + 5.0)

    def close(self) -> None:
        """Stop the child and free the shared memory."""
        if self._finalizer is not None:
            self._finalizer()
        self._child = self._finalizer = None

    def __repr__(self):
        return f"<IsolatedCode {self.spec.type} pid={self.pid} timeout={self.timeout:g}s>"


class _Child:
    """Parent side of one child process: socket, shared memory, deadlines."""

    def __init__(self, manifest, spec):
        self.where = f"isolated stage type '{spec.type}'"
        ours, theirs = socket.socketpair()
        env = child_env()
        code = (f"from eegkit.runtime._isolate import child_main; "
                f"child_main({theirs.fileno()}, {os.getpid()})")
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=[theirs.fileno()],
                                         env=env, stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.shm = {"in": None, "out": None}
        self.arr = {"in": None, "out": None}
        self.out_block = np.empty(0)
        self.rows = 0
        self.dtype = None
        self.ready = False  # the child has imported the plugin
        init = {"manifest": manifest, "spec": spec, "sys_path": list(sys.path)}
        self.conn.send_bytes(_REQ.pack(OP_SETUP, -1) + pickle.dumps(init))

    def alive(self) -> bool:
        return self.proc.poll() is None and not self.conn.closed

    # -- requests ----------------------------------------------------------------------
    def setup(self, info, params, timeout):
        if not self.ready:  # the import's outcome comes first
            try:
                self._reply(timeout)
            except StageError:
                self.close()
                raise
            self.ready = True
        self.rows, self.dtype = info.n_channels, np.dtype(info.dtype)
        if self.shm["in"] is None or self.arr["in"].dtype != self.dtype:
            self._new_segment("in", self.rows * MIN_SAMPLES)
        payload = {"info": info, "params": params, "input": self.shm["in"].name,
                   "size": self.arr["in"].size, "dtype": self.dtype.str}
        return self.call(OP_SETUP, payload, timeout)

    def call(self, op, payload, timeout):
        """A control request (pickled; never per chunk); returns the reply's payload."""
        self._send(op, 0, payload)
        code, _, _, data = self._reply(timeout)
        if code != R_OK:
            raise StageError(f"{self.where}: unexpected reply {code} from its child process")
        return data

    def run(self, x, timeout):
        rows, n = x.shape
        need = rows * n
        if self.arr["in"] is None or need > self.arr["in"].size or x.dtype != self.dtype:
            self._grow("in", max(need, 2 * self.arr["in"].size if self.arr["in"] is not None else 0),
                       x.dtype)
        shared = self.arr["in"][:need].reshape(rows, n)
        np.copyto(shared, x)
        self._send(OP_RUN, n)
        code, rows_out, cols, _ = self._reply(timeout)
        if code == R_GROW:
            self._grow("out", rows_out * cols, x.dtype)
            code, rows_out, cols, _ = self._reply(timeout)
        if code == R_INPLACE:
            np.copyto(x, shared)
            return None
        if code != R_NEW:
            raise StageError(f"{self.where}: unexpected reply {code} from its child process")
        size = rows_out * cols
        if self.out_block.size < size or self.out_block.dtype != x.dtype:
            self.out_block = np.empty(max(size, 256), dtype=x.dtype)
        out = self.out_block[:size].reshape(rows_out, cols)
        np.copyto(out, self.arr["out"][:size].reshape(rows_out, cols))
        return out

    def _send(self, op, arg, payload=None):
        data = _REQ.pack(op, arg) if payload is None else _REQ.pack(op, arg) + pickle.dumps(payload)
        try:
            self.conn.send_bytes(data)
        except OSError:
            raise StageError(f"{self.where}: its child process is gone ({self._death()})") from None

    def _reply(self, timeout):
        """Wait for the child's answer; kill it when the deadline passes."""
        try:
            ready = self.conn.poll(timeout)
            msg = self.conn.recv_bytes() if ready else None
        except (EOFError, OSError):
            raise StageError(f"{self.where}: its child process died ({self._death()})") from None
        if msg is None:
            pid = self.proc.pid
            self.close()
            raise StageError(f"{self.where}: no answer from its child process within {timeout:g} s "
                             f"(isolation_timeout); the child (pid {pid}) was killed")
        code, rows, cols = _REP.unpack_from(msg)
        data = pickle.loads(msg[_REP.size:]) if len(msg) > _REP.size else None
        if code == R_ERROR:
            kind, text, tb = data
            exc = StageError(f"{self.where}: in its child process: {kind}: {text}")
            if hasattr(exc, "add_note"):
                exc.add_note(f"traceback in the child process:\n{tb}")
            raise exc
        return code, rows, cols, data

    def _death(self) -> str:
        try:
            rc = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "no longer answering"
        if rc < 0:
            try:
                return f"killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"killed by signal {-rc}"
        return f"exited with code {rc}"

    # -- shared memory ---------------------------------------------------------------
    def _new_segment(self, which, size, dtype=None):
        dtype = np.dtype(dtype or self.dtype)
        self._free(which)
        shm = shared_memory.SharedMemory(create=True, size=max(int(size), 1) * dtype.itemsize)
        self.shm[which] = shm
        self.arr[which] = np.ndarray((max(int(size), 1),), dtype=dtype, buffer=shm.buf)

    def _grow(self, which, size, dtype):
        """A larger segment; the child maps it before the next block."""
        self.dtype = np.dtype(dtype) if which == "in" else self.dtype
        self._new_segment(which, max(size, MIN_SAMPLES), dtype)
        op = OP_INPUT if which == "in" else OP_OUTPUT
        self._send(op, self.arr[which].size, (self.shm[which].name, np.dtype(dtype).str))
        if which == "in":
            code = self._reply(10.0)[0]
            if code != R_OK:
                raise StageError(f"{self.where}: the child process could not map its input")

    def _free(self, which):
        shm, self.shm[which], self.arr[which] = self.shm[which], None, None
        if shm is not None:
            try:
                shm.close()
            except BufferError:  # a view is still alive somewhere; the mapping goes with it
                pass
            try:
                shm.unlink()
            except FileNotFoundError:
                pass

    def close(self):
        """Ask the child to exit, kill it if it does not, free the segments."""
        if self.proc.poll() is None:
            try:
                self.conn.send_bytes(_REQ.pack(OP_EXIT, 0))
                self.proc.wait(timeout=0.5)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.conn.closed:
            self.conn.close()
        self._free("in")
        self._free("out")


# -- child side ------------------------------------------------------------------------
class _Mapped:
    """A shared-memory segment mapped without registering it with a resource tracker
    (the parent owns and unlinks it; a tracker here would unlink it on exit)."""

    def __init__(self, name: str):
        try:
            import _posixshmem

            fd = _posixshmem.shm_open("/" + name.lstrip("/"), os.O_RDWR, mode=0o600)
            try:
                self.buf = mmap.mmap(fd, os.fstat(fd).st_size)
            finally:
                os.close(fd)
            self._shm = None
        except ImportError:  # pragma: no cover - platforms without _posixshmem
            from multiprocessing import resource_tracker

            self._shm = shared_memory.SharedMemory(name=name)
            resource_tracker.unregister(self._shm._name, "shared_memory")
            self.buf = self._shm.buf


def child_main(fd: int, parent: int) -> None:
    """Entry point of a child process: serve requests on socket ``fd`` until EOF."""
    import threading

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    conn = Connection(fd)

    def watchdog():  # a hung kernel never reads EOF: leave when the parent is gone
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    server = _Server()
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the parent is gone
        op, arg = _REQ.unpack_from(msg)
        if op == OP_EXIT:
            return
        try:
            if op == OP_RUN:
                reply = server.run(arg)
                if reply[0] == R_GROW:
                    conn.send_bytes(_REP.pack(*reply))
                    op2, size = _REQ.unpack_from(msg2 := conn.recv_bytes())
                    server.map_output(pickle.loads(msg2[_REQ.size:]), size)
                    reply = server.write_output()
                conn.send_bytes(_REP.pack(*reply))
                continue
            payload = pickle.loads(msg[_REQ.size:]) if len(msg) > _REQ.size else None
            data = server.control(op, arg, payload)
            conn.send_bytes(_REP.pack(R_OK, 0, 0) + pickle.dumps(data))
        except Exception as exc:  # noqa: BLE001 - plugin code: report, keep serving
            text = (type(exc).__name__, str(exc), traceback.format_exc())
            conn.send_bytes(_REP.pack(R_ERROR, 0, 0) + pickle.dumps(text))


class _Server:
    """The stage inside the child: a real in-process Stage over shared memory."""

    def __init__(self):
        self.stage = None
        self.inp = self.out = None
        self.in_arr = self.out_arr = None
        self.pending = None
        self.initial = ()

    def control(self, op, arg, payload):
        if op == OP_SETUP and arg == -1:
            sys.path[:0] = [p for p in payload["sys_path"] if p not in sys.path]
            from ..plugin._loader import load_stage_code

            self.code = load_stage_code(payload["manifest"], payload["spec"])
            return None
        if op == OP_SETUP:
            return self.setup(payload)
        if op == OP_INPUT:
            self.map_input(*payload, arg)
            return None
        if op == OP_GET_STATE:
            return self.stage.state, self.initial, self.stage.state_names
        if op == OP_SET_STATE:
            for i, value in payload.items():
                np.copyto(self.stage.state[i], value, casting="same_kind")
            return None
        raise StageError(f"unknown request {op}")

    def setup(self, payload):
        from ._stage import Stage

        self.map_input(payload["input"], payload["dtype"], payload["size"])
        stage = Stage(self.code, id="isolated", input="source", params=payload["params"])
        stage.prepare(payload["info"])
        self.stage = stage  # only now: a failed setup keeps the previous state running
        self.initial = tuple(np.array(s, copy=True) if isinstance(s, np.ndarray) else s
                             for s in stage.state)
        return stage.out_info, stage.in_place

    def map_input(self, name, dtype, size):
        self.inp = _Mapped(name)
        self.in_arr = np.ndarray((size,), dtype=np.dtype(dtype), buffer=self.inp.buf)

    def map_output(self, spec, size):
        name, dtype = spec
        self.out = _Mapped(name)
        self.out_arr = np.ndarray((size,), dtype=np.dtype(dtype), buffer=self.out.buf)

    def run(self, n):
        stage = self.stage
        rows = stage.in_info.n_channels
        x = self.in_arr[:rows * n].reshape(rows, n)
        out = stage.code.process(x, *stage.state)
        if out is None:
            return R_INPLACE, rows, n
        self.pending = stage._check_output(out, x)
        if self.out_arr is None or self.pending.size > self.out_arr.size:
            return R_GROW, self.pending.shape[0], self.pending.shape[1]
        return self.write_output()

    def write_output(self):
        out, self.pending = self.pending, None
        self.out_arr[:out.size].reshape(out.shape)[...] = out
        return R_NEW, out.shape[0], out.shape[1]
