"""Real-browser harness: a JupyterLab 4 server on 127.0.0.1 driven by Debian's Chromium (DESIGN.md section 8).

One server serves both front ends: JupyterLab at /lab/tree/<nb> and Notebook 7 at /notebooks/<nb> (the
`notebook` server extension is enabled beside `jupyterlab`). Everything runs offline: the widget front ends
(anywidget, ipywidgets) ship as prebuilt lab extensions inside their wheels.

See tests/browser/README.md for how to write a browser test with these helpers.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Kernel start plus `import torch` on a shared 2-core machine can take a while; everything else is quick.
KERNEL_TIMEOUT_S = 90
RUN_TIMEOUT_S = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class JupyterServer:
    url: str
    root: Path
    process: subprocess.Popen
    log: Path
    _logfile: object = field(repr=False, default=None)

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # Kernels run in sessions of their own: shut them down through the API before the server.
            try:
                with urllib.request.urlopen(self.url + "/api/kernels", timeout=5) as r:
                    kernels = json.loads(r.read())
                for k in kernels:
                    req = urllib.request.Request(f"{self.url}/api/kernels/{k['id']}", method="DELETE")
                    urllib.request.urlopen(req, timeout=10).close()
            except OSError:
                pass
            # The server runs in its own process group so its kernels go down with it.
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(timeout=5)
        if self._logfile is not None:
            self._logfile.close()


def _lab_settings(settings_dir: Path) -> None:
    """User settings that make notebooks deterministic to drive from a test."""
    # Windowed notebooks do not attach off-screen cells to the DOM; tests query every output.
    tracker = settings_dir / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings"
    tracker.parent.mkdir(parents=True, exist_ok=True)
    tracker.write_text(json.dumps({"windowingMode": "none"}))
    # No "would you like news?" toast over the notebook.
    news = settings_dir / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True, exist_ok=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))


def start_server(base: Path, timeout: float = 90.0) -> JupyterServer:
    """Start `jupyter lab` on a free 127.0.0.1 port with throw-away config, runtime, settings and root dirs."""
    base = Path(base)
    root, config, runtime, settings, workspaces = (base / d for d in ("root", "config", "runtime", "settings", "ws"))
    for d in (root, config, runtime, settings, workspaces):
        d.mkdir(parents=True, exist_ok=True)
    _lab_settings(settings)
    port = free_port()
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(runtime),
        JUPYTERLAB_SETTINGS_DIR=str(settings),
        JUPYTERLAB_WORKSPACES_DIR=str(workspaces),
        # Kernel specs may start plain `python`: make it this interpreter (a venv need not be activated).
        PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
        # A kernel must not fight the test process for the two cores.
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    cmd = [
        sys.executable, "-m", "jupyter", "lab",
        "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.disable_check_xsrf=True",
        f"--ServerApp.root_dir={root}", "--allow-root",
        # Tests drive the app through window.jupyterapp (commands, the current notebook's kernel).
        "--LabApp.expose_app_in_browser=True", "--JupyterNotebookApp.expose_app_in_browser=True",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    log = base / "jupyter.log"
    logfile = open(log, "wb")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=logfile, stderr=subprocess.STDOUT,
                            start_new_session=True)
    server = JupyterServer(f"http://127.0.0.1:{port}", root, proc, log, logfile)
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            server.stop()
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}:\n{server.log_tail()}")
        try:
            with urllib.request.urlopen(server.url + "/api", timeout=2) as r:
                if r.status == 200 and "version" in json.loads(r.read()):
                    return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"jupyter lab did not answer on {server.url}/api in {timeout:.0f} s:\n"
                               f"{server.log_tail()}")
        time.sleep(0.25)


def page_config(server: JupyterServer, path: str = "/lab") -> dict:
    """The page config a front end gets from this server (federated extensions, disabled ones, options)."""
    import re

    with urllib.request.urlopen(server.url + path, timeout=30) as r:
        html = r.read().decode()
    m = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', html, re.S)
    if m is None:
        raise AssertionError(f"no jupyter-config-data in {path}")
    return json.loads(m.group(1))


def write_notebook(root: Path, name: str, cells: list[str]) -> Path:
    """Write a python3 notebook with one code cell per string; returns its path."""
    nb = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python"},
        },
        "cells": [
            {"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "execution_count": None,
             "outputs": [], "source": src}
            for i, src in enumerate(cells)
        ],
    }
    path = Path(root) / f"{name}.ipynb"
    path.write_text(json.dumps(nb, indent=1))
    return path


# --- JavaScript run inside the page (the app object is exposed by expose_app_in_browser) ---

_JS_KERNEL_IDLE = """() => {
  const app = window.jupyterapp;
  const w = app && app.shell && app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.session && ctx.session.kernel;
  return !!(k && w.content && w.content.model && w.context && w.context.isReady && ctx.isReady &&
            k.status === 'idle' && k.connectionStatus === 'connected');
}"""

# Run all cells of the current notebook; activating it first makes it the notebook tracker's current
# widget, which the command acts on.
_JS_RUN_ALL = """() => {
  const app = window.jupyterapp, w = app.shell.currentWidget;
  app.shell.activateById(w.id);
  // Not awaited: the command resolves only when every cell has run; run_all waits on the cells instead.
  app.commands.execute('notebook:run-all-cells').catch((e) => console.error('run-all-cells failed', e));
  return true;
}"""

# Whether any code cell has started (or finished) running since the run was requested.
_JS_CELLS_STARTED = """() => {
  const w = window.jupyterapp.shell.currentWidget, cells = w.content.model.cells;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    if (c.executionCount !== null && c.executionCount !== undefined) return true;
    if (c.executionState === 'running' || c.outputs.length > 0) return true;
  }
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'busy';
}"""

_JS_DIAGNOSE = """() => {
  const app = window.jupyterapp, w = app && app.shell.currentWidget;
  if (!w) return 'no current widget';
  const k = w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  const cells = w.content && w.content.model ? w.content.model.cells : null, counts = [];
  for (let i = 0; cells && i < cells.length; i++) { const c = cells.get(i); counts.push(c.executionCount); }
  return `widget ${w.title.label}, kernel ${k ? k.status + '/' + k.connectionStatus : 'none'}, ` +
         `execution counts ${JSON.stringify(counts)}`;
}"""

_JS_CELLS_DONE = """(n) => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w.sessionContext.session && w.sessionContext.session.kernel;
  if (!k || k.status !== 'idle') return false;
  const cells = w.content.model.cells;
  let done = 0;
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    // A failing cell stops run-all: the cells after it never get an execution count.
    if (c.outputs.toJSON().some((o) => o.output_type === 'error')) return true;
    if (c.executionCount !== null && c.executionCount !== undefined) done++;
  }
  return done >= n;
}"""

_JS_CELL_ERRORS = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const cells = w.content.model.cells, errors = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') errors.push(`cell ${i}: ${o.ename}: ${o.evalue}\\n` + (o.traceback || []).join('\\n'));
    }
  }
  return errors;
}"""

_JS_EXECUTE = """async (code) => {
  const w = window.jupyterapp.shell.currentWidget;
  const kernel = w.sessionContext.session.kernel;
  const future = kernel.requestExecute({code, stop_on_error: true, store_history: false});
  const out = {stdout: '', stderr: '', error: null};
  future.onIOPub = (msg) => {
    const t = msg.header.msg_type, c = msg.content;
    if (t === 'stream') out[c.name] += c.text;
    else if (t === 'error') out.error = `${c.ename}: ${c.evalue}\\n` + c.traceback.join('\\n');
    else if (t === 'execute_result') out.stdout += (c.data['text/plain'] || '') + '\\n';
  };
  const reply = await future.done;
  if (reply.content.status !== 'ok' && !out.error) out.error = `${reply.content.ename}: ${reply.content.evalue}`;
  return out;
}"""

_JS_CANVAS_URL = """(el) => el.toDataURL('image/png')"""

_JS_CANVAS_PIXELS = """(el) => {
  const ctx = el.getContext('2d');
  const d = ctx.getImageData(0, 0, el.width, el.height).data;
  return {width: el.width, height: el.height, data: Array.from(d)};
}"""

_JS_SET_RANGE = """(el, value) => {
  // Go through the native setter so frameworks that track the value see a real change.
  const setter = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;
  setter.call(el, String(value));
  el.dispatchEvent(new Event('input', {bubbles: true}));
  el.dispatchEvent(new Event('change', {bubbles: true}));
  return el.value;
}"""

_JS_VIEW_SETTLED = """([el, status, minSeq]) => {
  const seq = Number(el.getAttribute('data-seq'));
  return el.getAttribute('data-status') === status && seq >= minSeq;
}"""


def _ansi_free(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


@dataclass
class Notebook:
    """An open notebook in a browser page; `ui` is "lab" (JupyterLab) or "notebook" (Notebook 7)."""

    page: object
    server: JupyterServer
    name: str
    ui: str
    n_cells: int

    def wait_kernel_idle(self, timeout: float = KERNEL_TIMEOUT_S) -> None:
        self.page.wait_for_function(_JS_KERNEL_IDLE, timeout=timeout * 1000)

    def run_all(self, timeout: float = RUN_TIMEOUT_S) -> None:
        """Run every cell (through the app's command, not a keyboard shortcut) and fail on any error output."""
        from playwright.sync_api import TimeoutError as PlaywrightTimeout

        self.wait_kernel_idle()
        # On a loaded machine the app can still drop a run requested right after start-up; a run that
        # started leaves a trace (an execution count, an output, a busy kernel), so retrying is safe.
        for attempt in range(3):
            self.page.evaluate(_JS_RUN_ALL)
            try:
                self.page.wait_for_function(_JS_CELLS_STARTED, timeout=30_000)
                break
            except PlaywrightTimeout:
                continue
        try:
            self.page.wait_for_function(_JS_CELLS_DONE, arg=self.n_cells, timeout=timeout * 1000)
        except PlaywrightTimeout as e:
            raise AssertionError(f"notebook {self.name} did not finish running in {timeout:.0f} s: "
                                 f"{self.page.evaluate(_JS_DIAGNOSE)}") from e
        finally:
            errors = self.page.evaluate(_JS_CELL_ERRORS)
            if errors:
                raise AssertionError("notebook cell failed:\n" + _ansi_free("\n".join(errors)))

    def execute(self, code: str, timeout: float = 60) -> str:
        """Run `code` in the notebook's kernel (no new cell); returns stdout, raises on a Python error.

        Widgets created by the notebook's cells are live in that kernel, so `view.layer = "x"` here changes
        the view on the page just like typing it in a cell would.
        """
        self.page.set_default_timeout(timeout * 1000)
        out = self.page.evaluate(_JS_EXECUTE, code)
        if out["error"]:
            raise AssertionError(f"kernel code failed:\n{code}\n{_ansi_free(out['error'])}")
        return out["stdout"]

    def wait_for(self, expression: str, expected: str, timeout: float = 30) -> str:
        """Poll until `print(expression)` in the kernel prints `expected`; returns it.

        A drag's last value can reach the kernel a little after the mouse is released: ipywidgets holds
        back a model update while earlier ones are unanswered. Read kernel state after UI input with this.
        """
        deadline = time.monotonic() + timeout
        while True:
            got = self.execute(f"print({expression})").strip()
            if got == expected:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"kernel: {expression} is {got!r}, expected {expected!r} after {timeout} s")
            time.sleep(0.2)

    def close(self) -> None:
        """Shut the notebook's kernel down (its views may still be computing: free the CPU for the next
        test) and close the page."""
        try:
            self.page.evaluate("""async () => {
              const w = window.jupyterapp.shell.currentWidget;
              if (w && w.sessionContext && w.sessionContext.session) await w.sessionContext.session.shutdown();
            }""")
        except Exception:
            pass  # a page that already broke must still be closed
        self.page.context.close()

    def locator(self, selector: str):
        return self.page.locator(selector)


def canvas_png(locator) -> bytes:
    """The canvas' current picture as PNG bytes (what the user sees, at canvas resolution)."""
    import base64

    url = locator.evaluate(_JS_CANVAS_URL)
    return base64.b64decode(url.split(",", 1)[1])


def canvas_hash(locator) -> str:
    """A digest of the canvas pixels; two different pictures give different digests."""
    return hashlib.sha256(canvas_png(locator)).hexdigest()


def canvas_pixels(locator):
    """The canvas pixels as a uint8 array (height, width, 4) RGBA."""
    import numpy as np

    d = locator.evaluate(_JS_CANVAS_PIXELS)
    return np.asarray(d["data"], dtype=np.uint8).reshape(d["height"], d["width"], 4)


def set_range(locator, value) -> str:
    """Set a range input's value and fire `input` then `change`, as a finished drag would."""
    return locator.evaluate(_JS_SET_RANGE, value)


def drag_range(page, locator, fraction: float, steps: int = 8) -> str:
    """Drag a range input's thumb with the mouse from its current position to `fraction` of its track.

    Returns the input's value after the drag. A real drag fires a burst of `input` events and one `change`.
    """
    locator.scroll_into_view_if_needed()
    box = locator.bounding_box()
    lo, hi, value = (float(locator.evaluate(f"el => el.{a} || {d}")) for a, d in
                     (("min", 0), ("max", 100), ("value", 0)))
    start = (value - lo) / (hi - lo) if hi > lo else 0.0
    # The thumb centre travels over the track minus one thumb width (about the input's height).
    inset = min(box["height"], box["width"] / 4) / 2
    span = box["width"] - 2 * inset
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + inset + start * span, y)
    page.mouse.down()
    page.mouse.move(box["x"] + inset + fraction * span, y, steps=steps)
    page.mouse.up()
    return locator.input_value()


def view_state(locator) -> dict:
    """`{"status": ..., "seq": ...}` of a view root element (`.fw-view`)."""
    return locator.evaluate(
        "el => ({status: el.getAttribute('data-status'), seq: Number(el.getAttribute('data-seq'))})")


def wait_view(locator, status: str = "idle", min_seq: int = 0, timeout: float = 60) -> dict:
    """Wait until a view root shows `data-status == status` and `data-seq >= min_seq`; returns its state."""
    handle = locator.element_handle(timeout=timeout * 1000)
    locator.page.wait_for_function(_JS_VIEW_SETTLED, arg=[handle, status, min_seq], timeout=timeout * 1000)
    return view_state(locator)


def open_notebook(browser, server: JupyterServer, cells: list[str], name: str, ui: str = "lab",
                  run: bool = True, timeout: float = RUN_TIMEOUT_S) -> Notebook:
    """Write `cells` as <root>/<name>.ipynb, open it in a new browser page and (by default) run all cells.

    `ui="lab"` opens /lab/tree/<name>.ipynb (JupyterLab 4); `ui="notebook"` opens /notebooks/<name>.ipynb
    (Notebook 7). Fails with the cell's traceback if a cell raises.
    """
    if ui not in ("lab", "notebook"):
        raise ValueError(f"ui must be 'lab' or 'notebook', not {ui!r}")
    write_notebook(server.root, name, cells)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(timeout * 1000)
    # A workspace of its own per notebook: the default workspace would restore notebooks that earlier
    # tests opened, and a command could then act on one of those instead.
    path = f"/lab/workspaces/{name}/tree/{name}.ipynb" if ui == "lab" else f"/notebooks/{name}.ipynb"
    page.goto(server.url + path)
    nb = Notebook(page, server, name, ui, len(cells))
    nb.wait_kernel_idle()
    if run:
        nb.run_all(timeout)
    return nb
