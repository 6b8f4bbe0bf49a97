"""The machinery every view shares (DESIGN.md section 5, .helpers/CONTRACT.md).

How to add a view
-----------------
1. Python: subclass ``View`` in ``featwidget/widgets/<view>.py``::

       class Occlusion(View):
           _esm = static_file("occlusion.js")
           compute_traits = List(["size", "stride", "fill"]).tag(sync=True)   # these trigger compute()
           size = Int(16).tag(sync=True)
           stride = Int(8).tag(sync=True)
           fill = Unicode("gray").tag(sync=True)
           colormap = Unicode("viridis").tag(sync=True)  # display-only: not in compute_traits

           def __init__(self, net, image, **kw):
               net, x, hint = adopt(net, image)             # plain nn.Module -> default wrap + hint
               super().__init__(hint=hint, **kw)
               self.net, self.x = net, x
               self.request()                              # first picture

           def compute(self, progress):
               heat = fw.occlusion(self.net, self.x, size=self.size, stride=self.stride, fill=self.fill,
                                   progress=progress)          # progress(f, partial) streams + cancels
               return {"heatmap": tensor_payload(heat[0, 0])}

           def render(self):                                 # optional, for to_png(): (H, W, 3) uint8
               h = from_payload(self.result["heatmap"])
               return render.colorize(render.rescale(h, *render.value_range(h, "minmax")), self.colormap)

   ``compute`` runs on the view's worker thread, reads the traits, calls engine functions only and
   returns a dict (tensors through ``tensor_payload``). The base numbers requests (``seq``), cancels a
   superseded one at its next ``progress`` call (the engine raises ``fw.Cancelled``), publishes only the
   newest result (``result`` with ``result["seq"]`` and ``result_seq``), streams partial results passed
   to ``progress(f, partial)`` (override ``partial_result`` to turn the engine's partial into a dict), and
   puts any exception into ``error`` with ``status == "error"``; the next request works normally.
2. JS: ``js/src/<view>.js`` exporting ``default { render }`` built from ``js/src/lib/`` (see js/README.md);
   ``npm run build`` in ``js/`` writes ``featwidget/static/<view>.js``.

Threads: trait changes arrive on the kernel thread (from the front end or from Python code); they only
enqueue a request, so the kernel stays responsive. One daemon worker per view does the work.
"""
from __future__ import annotations

import atexit
import json
import pathlib
import queue
import threading
import time
import weakref

import anywidget
import numpy as np
import torch
import traitlets as t

from ..engine import Cancelled, FeatwidgetError, Network, as_network
from . import render

STATIC = pathlib.Path(__file__).resolve().parent.parent / "static"
_TORCH = {"float32": torch.float32, "float16": torch.float16, "uint8": torch.uint8}
_NUMPY = {"float32": np.float32, "float16": np.float16, "uint8": np.uint8}
_PARTIAL_EVERY_S = 0.1  # at most ~10 partial pictures a second: the wire, not the engine, is the limit
_PROGRESS_EVERY_S = 0.05
_EXIT_WAIT_S = 10.0  # at interpreter exit, how long to wait for a running computation to stop

DEFAULT_WRAP_HINT = (
    "Pass mean/std to fw.wrap: this plain nn.Module was wrapped with defaults (mean 0, std 1, input size from "
    "the image). If it was trained on normalized inputs, use fw.wrap(model, input_size=(C, H, W), mean=[...], "
    "std=[...], classes=[...]) (or preset='imagenet')."
)


def static_file(name: str) -> pathlib.Path | str:
    """A bundle built from js/. A missing one must not break ``import featwidget`` (the engine works without
    a front end): the view then renders a message saying how to build it."""
    path = STATIC / name
    if path.exists():
        return path
    message = (f"featwidget: the front-end file {name} is missing from {STATIC}. Build it with "
               f"`npm ci && npm run build` in js/ (or run `bash .ci/install`), then restart the kernel.")
    if name.endswith(".css"):
        return ""
    return ("export default { render({ el }) { const p = document.createElement('pre'); "
            f"p.textContent = {json.dumps(message)}; el.appendChild(p); }} }};")


def tensor_payload(x, dtype: str = "float32") -> dict:
    """A tensor as ``{"dtype", "shape", "data"}``; ``data`` is a zero-copy byte view sent as a binary buffer."""
    if dtype not in _TORCH:
        raise FeatwidgetError(f"dtype must be one of {', '.join(_TORCH)}, got {dtype!r}.")
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    arr = x.detach().to("cpu", _TORCH[dtype]).contiguous().numpy()
    return {"dtype": dtype, "shape": list(arr.shape), "data": memoryview(arr.reshape(-1).view(np.uint8))}


def from_payload(p: dict) -> np.ndarray:
    """The inverse of ``tensor_payload`` (for to_png and tests)."""
    return np.frombuffer(p["data"], dtype=_NUMPY[p["dtype"]]).reshape(p["shape"])


def image_payload(x: torch.Tensor) -> dict:
    """An image in [0, 1] as uint8 (C, H, W): a quarter of the float bytes, and pixels need no more."""
    return tensor_payload((x.detach().float().clamp(0, 1) * 255).round(), "uint8")


def adopt(model, image=None):
    """``(Network, image batch of one or None, hint)`` from an ``fw.Network`` or a plain ``nn.Module``.

    A plain module gets ``fw.wrap`` defaults sized to the image, and the hint tells the user to pass mean/std.
    """
    x = None
    if image is not None:
        x = image if isinstance(image, torch.Tensor) else torch.as_tensor(np.asarray(image))
        if x.dim() == 3:
            x = x.unsqueeze(0)
    hint = ""
    if not isinstance(model, Network):
        if x is None:
            raise FeatwidgetError("A plain nn.Module needs an image to size it; or pass fw.wrap(model, input_size=...).")
        hint = DEFAULT_WRAP_HINT
    net = as_network(model, x)
    if x is not None:
        x = net.check(x.to(net.device))  # a view is a UI: follow the model to its device instead of refusing
        if x.shape[0] != 1:
            raise FeatwidgetError(f"Pass one image (C, H, W) or a batch of one; got a batch of {x.shape[0]}.")
    return net, x, hint



def split_target(target):
    """A view's ``target=`` as ``(class index for the target select, or -1; a custom fw target or None)``."""
    from ..engine import Target

    if isinstance(target, Target):
        return -1, target
    return (-1 if target is None else int(target)), None


def top_predictions(net: Network, x: torch.Tensor, k: int = 5) -> list[dict]:
    """The top-k classes of a classifier for one image, as the front end's prediction list ([] otherwise)."""
    if len(net.output_shape) != 1:
        return []
    return [{"index": i, "label": label, "prob": p} for i, label, p in net.predict(x, k=k)[0]]


def fill_predictions(view) -> None:
    """Set ``view.predictions`` once, from ``compute`` on the worker: in a constructor it would run the
    model on the kernel thread, which waits while another view's computation holds the same model."""
    if not view.predictions:
        view.predictions = top_predictions(view.net, view.x)


class View(anywidget.AnyWidget):
    _css = static_file("featwidget.css")

    status = t.Unicode("idle").tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    progress = t.Float(0.0).tag(sync=True)
    seq = t.Int(0).tag(sync=True)
    result_seq = t.Int(-1).tag(sync=True)
    result = t.Dict().tag(sync=True)
    hint = t.Unicode("").tag(sync=True)
    # Names of the traits whose change starts a new compute; the front end reads it too, to dim the
    # picture the moment such a control moves.
    compute_traits = t.List(t.Unicode(), default_value=[]).tag(sync=True)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        # Re-entrant: an observer of `result` runs on the worker while it publishes and may start a request.
        self._lock = threading.RLock()
        self._done = threading.Condition(self._lock)
        self._latest = 0
        self._finished = 0
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None
        self._last_partial = 0.0
        self._last_progress = 0.0
        self.running_seq = 0  # the seq compute() is working for (read it there, not the `seq` trait)
        _live.add(self)
        self.observe(self._on_compute_trait, names=list(self.compute_traits))

    # ------------------------------------------------------------------ for subclasses
    def compute(self, progress) -> dict:
        raise NotImplementedError

    def partial_result(self, partial) -> dict | None:
        """Turn an engine's partial result into a result dict (None: nothing to show yet)."""
        return partial if isinstance(partial, dict) else None

    def render(self) -> np.ndarray:
        """The current result as an (H, W, 3) uint8 picture, for ``to_png``."""
        raise NotImplementedError(f"{type(self).__name__} has no headless rendering.")

    # ------------------------------------------------------------------ requests
    def _on_compute_trait(self, change):
        self.request()

    def request(self) -> int:
        """Start a new computation that supersedes any running one; returns its seq."""
        with self._lock:
            self._latest += 1
            seq = self._latest
        with self.hold_sync():
            self.seq = seq
            self.status = "running"
            self.progress = 0.0
        self._queue.put(seq)
        self._ensure_worker()
        return seq

    def _ensure_worker(self):
        if self._worker is None or not self._worker.is_alive():
            self._worker = threading.Thread(
                target=_work, args=(weakref.ref(self), self._queue), name=f"featwidget-{type(self).__name__}",
                daemon=True)
            self._worker.start()

    def _is_latest(self, seq: int) -> bool:
        return seq == self._latest

    def _run(self, seq: int) -> None:
        def progress(fraction, partial=None):
            if not self._is_latest(seq):
                return False
            now = time.monotonic()
            if partial is not None and now - self._last_partial >= _PARTIAL_EVERY_S:
                shown = self.partial_result(partial)
                if shown is not None:
                    self._last_partial = now
                    self._publish(seq, {**shown, "partial": True}, final=False, fraction=fraction)
                    return True
            if now - self._last_progress >= _PROGRESS_EVERY_S:
                self._last_progress = now
                self.progress = float(fraction)
            return True

        self.running_seq = seq
        try:
            out = self.compute(progress)
        except Cancelled:
            pass  # superseded; the newer request is already queued
        except Exception as e:  # shown in the banner; the worker lives on for the next request
            if self._is_latest(seq):
                msg = str(e) if isinstance(e, FeatwidgetError) else f"{type(e).__name__}: {e}"
                with self.hold_sync():
                    self.error = msg
                    self.status = "error"
                    self.progress = 0.0
        else:
            self._publish(seq, out, final=True)
        finally:
            with self._done:
                self._finished = max(self._finished, seq)
                self._done.notify_all()

    def _publish(self, seq: int, out: dict, final: bool, fraction: float = 1.0) -> None:
        with self._lock:  # checked and published together: a newer request cannot slip in between
            if seq != self._latest:
                return
            with self.hold_sync():
                self.result = {**out, "seq": seq}
                self.result_seq = seq
                self.progress = float(fraction)
                if final:
                    self.error = ""
                    self.status = "idle"

    # ------------------------------------------------------------------ conveniences
    def wait(self, timeout: float = 60.0) -> "View":
        """Block until the newest request has finished (published, failed or been superseded)."""
        deadline = time.monotonic() + timeout
        with self._done:
            while self._finished < self._latest:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{type(self).__name__} still busy after {timeout} s (seq {self._latest}).")
                self._done.wait(left)
        return self

    def to_png(self, path=None, timeout: float = 60.0) -> bytes:
        """Render the current result to PNG bytes (and write them to ``path`` if given); no browser needed."""
        self.wait(timeout)
        if self.status == "error":
            raise FeatwidgetError(f"Nothing to export: the last request failed: {self.error}")
        data = render.png_bytes(self.render())
        if path is not None:
            pathlib.Path(path).write_bytes(data)
        return data

    def close(self):
        q = getattr(self, "_queue", None)  # absent when __init__ failed before the base set it up
        if q is not None:
            q.put(None)
        super().close()


_live: "weakref.WeakSet[View]" = weakref.WeakSet()


@atexit.register
def _stop_workers() -> None:
    """Cancel running computations and let the workers finish before the interpreter tears down: a daemon
    thread still inside torch when Python exits aborts the process ("terminate called without an active
    exception")."""
    workers = []
    for view in list(_live):
        with view._lock:
            view._latest += 1  # supersedes the running request: its next progress check raises Cancelled
        view._queue.put(None)
        if view._worker is not None and view._worker.is_alive():
            workers.append(view._worker)
    deadline = time.monotonic() + _EXIT_WAIT_S
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))


def _work(ref, q: queue.Queue) -> None:
    # Holds the view only while working, so an unused view can be garbage collected and its thread ends.
    while True:
        try:
            seq = q.get(timeout=5.0)
        except queue.Empty:
            if ref() is None:
                return
            continue
        while seq is not None:  # jump to the newest queued request: older ones are superseded anyway
            try:
                seq = q.get_nowait()
            except queue.Empty:
                break
        view = ref()
        if seq is None or view is None:
            return
        if view._is_latest(seq):
            view._run(seq)
        else:
            with view._done:
                view._finished = max(view._finished, seq)
                view._done.notify_all()
        del view


class HeatmapView(View):
    """A view that draws a signed heatmap over the image. Its display traits are applied in the browser: a
    change redraws there and starts no computation."""

    sign = t.Unicode("all").tag(sync=True)                # "all" | "positive" | "negative" | "absolute"
    colormap = t.Unicode("diverging").tag(sync=True)
    normalization = t.Unicode("symmetric").tag(sync=True)
    percentile = t.Float(99.0).tag(sync=True)
    opacity = t.Float(0.6).tag(sync=True)
