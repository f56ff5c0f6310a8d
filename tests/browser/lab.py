"""Test harness: an isolated JupyterLab server driven by headless Chromium.

    with JupyterLab(nb_dir) as lab, browser_page() as page:
        open_notebook(page, lab, "views.ipynb")
        run_all_cells(page)
        kernel_exec(page, "print(1 + 1)")

The server is the ``jupyter`` of the running interpreter's environment, on
127.0.0.1 with a random port and token and its own config/data/runtime folders;
its kernels import eegkit from this checkout (``PYTHONPATH``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("EEGKIT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# user settings written before the server starts
LAB_SETTINGS = {
    # no "get notified about Jupyter news?" toast, no update checks
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    # keep every cell in the page (4.x hides off-screen cells by default)
    "@jupyterlab/notebook-extension/tracker": {"windowingMode": "none"},
}


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser_available() -> str | None:
    """None when Chromium and playwright are usable, else the reason they are not."""
    if not Path(CHROMIUM).is_file():
        return f"Chromium not found at {CHROMIUM} (install the 'chromium' package)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    return None


class JupyterLab:
    """``jupyter lab`` serving ``root_dir`` on a random port, in its own session."""

    def __init__(self, root_dir, startup_timeout: float = 60.0, extra_env: dict | None = None):
        self.root_dir = Path(root_dir)
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.base = f"http://127.0.0.1:{self.port}"
        self.home = Path(tempfile.mkdtemp(prefix="eegkit-jlab-"))
        self.startup_timeout = startup_timeout
        self.extra_env = extra_env or {}
        self.proc = None
        self.startup_s = None

    def env(self) -> dict:
        """Environment of the server and its kernels."""
        h = self.home
        pythonpath = os.pathsep.join([str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
        return dict(os.environ, JUPYTER_CONFIG_DIR=str(h / "config"), JUPYTER_DATA_DIR=str(h / "data"),
                    JUPYTER_RUNTIME_DIR=str(h / "runtime"), IPYTHONDIR=str(h / "ipython"),
                    JUPYTERLAB_SETTINGS_DIR=str(h / "lab-settings"),
                    JUPYTERLAB_WORKSPACES_DIR=str(h / "workspaces"),
                    PYTHONPATH=pythonpath, PYTHONUNBUFFERED="1", **self.extra_env)

    def __enter__(self):
        for plugin, values in LAB_SETTINGS.items():
            package, name = plugin.rsplit("/", 1)
            folder = self.home / "lab-settings" / package
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
        cmd = [str(VENV_BIN / "jupyter"), "lab", "--no-browser",
               "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0",
               f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root_dir}",
               "--ServerApp.allow_root=True",            # CI containers often run as root
               "--LabApp.expose_app_in_browser=True",    # window.jupyterapp, for the helpers below
               "--LabApp.news_url=None",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        self.log_path = self.home / "lab.log"
        t0 = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("jupyter lab exited:\n" + self.log_path.read_text()[-3000:])
            try:
                with urllib.request.urlopen(f"{self.base}/api/status?token={self.token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.__exit__()
                    raise TimeoutError(f"jupyter lab did not answer within {self.startup_timeout} s")
                time.sleep(0.2)
        self.startup_s = time.perf_counter() - t0
        return self

    def api(self, method: str, path: str):
        """Call the server's REST API."""
        req = urllib.request.Request(f"{self.base}{path}", method=method,
                                     headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
            return json.loads(body) if body else None

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc):
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            self.api("POST", "/api/shutdown")   # stops kernels, then the server
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGTERM)   # only the server's own process group
            self.proc.wait(timeout=10)
        self.proc = None
        if not os.environ.get("KEEP_LAB_HOME"):
            shutil.rmtree(self.home, ignore_errors=True)


@contextlib.contextmanager
def browser_page(viewport=(1280, 1000)):
    """A headless Chromium page; ``page.console_log`` collects console messages and page errors."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="eegkit-chromium-")
    try:
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                viewport={"width": viewport[0], "height": viewport[1]})
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.console_log = []
            page.on("console", lambda m: page.console_log.append(f"{m.type}: {m.text}"))
            page.on("pageerror", lambda e: page.console_log.append(f"pageerror: {e}"))
            try:
                yield page
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def console_errors(page) -> list:
    """Console errors and uncaught exceptions seen so far."""
    return [m for m in page.console_log if m.startswith(("error:", "pageerror:"))]


def write_notebook(path, cells) -> Path:
    """Write a notebook of code cells (strings) for the python3 kernel."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = Path(path)
    nbformat.write(nb, path)
    return path


WAIT_KERNEL_IDLE_JS = """() => {
  const app = window.jupyterapp; if (!app) return false;
  const w = app.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""


def open_notebook(page, lab: JupyterLab, name: str, timeout_ms: int = 60_000):
    """Open ``name`` (relative to the server root) from an empty workspace; wait for an idle kernel."""
    page.goto(f"{lab.base}/lab/tree/{name}?reset&token={lab.token}")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=timeout_ms)
    page.evaluate("async () => { await window.jupyterapp.started; await window.jupyterapp.restored; }")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=timeout_ms)
    page.wait_for_function(WAIT_KERNEL_IDLE_JS, timeout=timeout_ms)


def run_all_cells(page, timeout_ms: int = 60_000):
    """Run every cell; returns once the kernel is idle again."""
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(WAIT_KERNEL_IDLE_JS, timeout=timeout_ms)


KERNEL_EXEC_JS = """async (code) => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session.kernel;
  const fut = k.requestExecute({ code, store_history: false });
  let out = '';
  fut.onIOPub = (m) => {
    const t = m.header.msg_type;
    if (t === 'stream') out += m.content.text;
    else if (t === 'execute_result') out += m.content.data['text/plain'] + '\\n';
    else if (t === 'error') out += m.content.ename + ': ' + m.content.evalue + '\\n';
  };
  const reply = await fut.done;
  return { status: reply.content.status, out };
}"""


def kernel_exec(page, code: str) -> str:
    """Run code in the notebook's kernel without adding a cell; returns its printed output."""
    r = page.evaluate(KERNEL_EXEC_JS, code)
    if r["status"] != "ok":
        raise RuntimeError(r["out"])
    return r["out"]


def cell_errors(page) -> list:
    """Text of error outputs shown in the notebook."""
    return page.eval_on_selector_all(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']",
                                     "els => els.map(e => e.textContent)")
