"""The view machinery without a browser: binary tensor transport, one worker per view, supersede-and-cancel,
partial results, errors, PNG export."""
import json
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch
import traitlets as t
from ipywidgets.widgets.widget import _remove_buffers

import featwidget as fw
from featwidget.engine.progress import report
from featwidget.widgets import render
from featwidget.widgets._base import View, from_payload, image_payload, tensor_payload


class Toy(View):
    """compute() returns the knob's square; optional gates make the timing of a test deterministic."""

    compute_traits = t.List(t.Unicode(), default_value=["knob", "fail"]).tag(sync=True)
    knob = t.Int(0).tag(sync=True)
    fail = t.Unicode("").tag(sync=True)

    def __init__(self, steps=1, **kw):
        super().__init__(**kw)
        self.steps = steps
        self.started = []      # seqs whose compute began
        self.cancelled = []    # seqs stopped by fw.Cancelled
        self.published = []    # (seq, partial) of every result ever set
        self.gate = None       # threading.Event the first step waits on, if set
        self.entered = threading.Event()
        self.observe(lambda c: self.published.append((c.new.get("seq"), c.new.get("partial", False))), "result")

    def compute(self, progress):
        seq, knob = self.running_seq, self.knob
        self.started.append(seq)
        try:
            for i in range(self.steps):
                if i == 0:
                    self.entered.set()
                    if self.gate is not None:
                        self.gate.wait(10)
                report(progress, i / self.steps, {"step": i} if i == 1 else None)
            if self.fail == "featwidget":
                raise fw.FeatwidgetError("Bad knob; set fail='' to fix.")
            if self.fail == "python":
                _ = 1 / 0
        except fw.Cancelled:
            self.cancelled.append(seq)
            raise
        return {"value": knob * knob, "square": tensor_payload(torch.full((2, 2), float(knob)))}


def test_tensor_payload_round_trip_and_zero_copy():
    x = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 7
    p = tensor_payload(x)
    assert p["dtype"] == "float32" and p["shape"] == [3, 4]
    assert isinstance(p["data"], memoryview) and p["data"].nbytes == 48
    np.testing.assert_array_equal(from_payload(p), x.numpy())
    half = tensor_payload(x, "float16")
    assert half["data"].nbytes == 24
    np.testing.assert_array_equal(from_payload(half), x.numpy().astype(np.float16))
    img = image_payload(torch.tensor([[[0.0, 0.5, 1.0, 1.2]]]))
    assert img["dtype"] == "uint8" and from_payload(img).tolist() == [[[0, 128, 255, 255]]]
    with pytest.raises(fw.FeatwidgetError, match="dtype must be one of"):
        tensor_payload(x, "int64")


def test_result_tensors_travel_as_binary_buffers_not_text():
    v = Toy(knob=3)
    v.request()
    v.wait(10)
    state = v.get_state()
    _, paths, buffers = _remove_buffers(state)
    assert ["result", "square", "data"] in paths
    assert sum(memoryview(b).nbytes for b in buffers) == 4 * 4  # 2x2 float32: 4 bytes a value, no base64
    v.close()


def test_trait_change_from_python_triggers_compute_and_publishes_the_result():
    v = Toy()
    v.knob = 7
    v.wait(10)
    assert (v.status, v.error, v.progress) == ("idle", "", 1.0)
    assert v.result["value"] == 49 and v.result_seq == v.seq == v.result["seq"] == 1
    np.testing.assert_array_equal(from_payload(v.result["square"]), np.full((2, 2), 7.0, np.float32))
    v.knob = 8
    v.wait(10)
    assert v.result["value"] == 64 and v.result_seq == 2
    v.close()


def test_superseded_requests_are_cancelled_and_never_published():
    v = Toy(steps=3)
    v.gate = threading.Event()
    v.knob = 1                      # seq 1 starts and blocks inside its first step
    assert v.entered.wait(10)
    v.knob = 2                      # seq 2, 3, 4 arrive while 1 is running
    v.knob = 3
    v.knob = 4
    assert v.status == "running" and v.seq == 4
    v.gate.set()
    v.wait(10)
    assert v.cancelled == [1]               # stopped at its next progress call by fw.Cancelled
    assert v.started == [1, 4]              # 2 and 3 were skipped: only the newest queued request runs
    assert {seq for seq, _ in v.published} == {4}
    assert v.result_seq == 4 and v.result["value"] == 16 and v.status == "idle"
    v.close()


def test_slow_requests_in_a_burst_publish_only_the_newest():
    class Slow(Toy):
        def compute(self, progress):
            try:
                for i in range(20):
                    time.sleep(0.002)
                    report(progress, i / 20)
            except fw.Cancelled:
                self.cancelled.append(self.running_seq)
                raise
            return super().compute(progress)

    v = Slow()
    seen = []
    v.observe(lambda c: seen.append(c.new), "result_seq")
    for k in range(1, 30):
        v.knob = k
        time.sleep(0.003)
    v.wait(20)
    assert v.result["value"] == 29 * 29 and v.result_seq == v.seq
    assert seen == sorted(seen)             # never goes back to an older picture
    assert v.cancelled and set(seen).isdisjoint(v.cancelled)  # a cancelled request never publishes
    v.close()


def test_partial_results_stream_with_their_seq_then_the_final_one():
    v = Toy(steps=3)
    v.knob = 5
    v.wait(10)
    assert v.published == [(1, True), (1, False)]
    assert "partial" not in v.result and v.result["value"] == 25
    v.close()


@pytest.mark.parametrize("kind, message", [("featwidget", "Bad knob; set fail='' to fix."),
                                           ("python", "ZeroDivisionError: division by zero")])
def test_errors_land_in_error_and_the_view_keeps_working(kind, message):
    v = Toy(knob=2)
    v.request()
    v.wait(10)
    good = v.result
    v.fail = kind
    v.wait(10)
    assert v.status == "error" and v.error == message
    assert v.result is good and v.result_seq == 1     # the old picture stays, marked old by seq
    with pytest.raises(fw.FeatwidgetError, match="last request failed"):
        v.to_png()
    v.fail = ""
    v.wait(10)
    assert (v.status, v.error) == ("idle", "") and v.result_seq == 3 and v.result["value"] == 4
    v.close()


def test_wait_times_out_while_busy_and_the_worker_is_one_daemon_thread():
    v = Toy(steps=2)
    v.gate = threading.Event()
    v.knob = 1
    assert v.entered.wait(10)
    with pytest.raises(TimeoutError):
        v.wait(0.05)
    v.knob = 2
    assert v._worker.daemon
    workers = [th for th in threading.enumerate() if th is v._worker]
    assert len(workers) == 1
    v.gate.set()
    v.wait(10)
    v.close()
    v._worker.join(10)
    assert not v._worker.is_alive()


def _read_png(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        (crc,) = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + n
    w, h, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    assert (depth, color) == (8, 2)
    rows = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(h, 1 + 3 * w)
    assert (rows[:, 0] == 0).all()
    return rows[:, 1:].reshape(h, w, 3)


def test_png_encoder_round_trips_pixels(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(_read_png(render.png_bytes(rgb)), rgb)
    from PIL import Image as PIL  # an independent PNG decoder (pillow is a test extra)
    path = tmp_path / "x.png"
    path.write_bytes(render.png_bytes(rgb))
    np.testing.assert_array_equal(np.asarray(PIL.open(path).convert("RGB")), rgb)


def test_render_colormaps_match_the_shared_reference_values():
    v = np.array([0.0, 0.5, 1.0])
    assert render.colorize(v, "viridis").tolist() == [[68, 1, 84], [33, 145, 140], [253, 231, 37]]
    assert render.colorize(v, "diverging").tolist() == [[5, 48, 97], [255, 255, 255], [103, 0, 31]]
    assert render.colorize(np.array([-1.0, 2.0]), "gray").tolist() == [[0, 0, 0], [255, 255, 255]]
    with pytest.raises(fw.FeatwidgetError, match="known: gray"):
        render.colorize(v, "jet")


def test_render_value_ranges_match_numpy():
    d = np.arange(101, dtype=np.float64)
    assert render.value_range(d, "minmax") == (0.0, 100.0)
    assert render.value_range(d - 30, "symmetric") == (-70.0, 70.0)
    lo, hi = render.value_range(d, "percentile", 99)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(99.0)
    assert render.value_range(np.zeros(4), "minmax") == (0.0, 1.0)
    assert render.value_range(np.zeros(4), "symmetric") == (-1.0, 1.0)
    assert render.value_range(np.array([np.nan, 2.0, -1.0]), "minmax") == (-1.0, 2.0)
    rows = np.array([[0.0, 1, 2, 10], [-3, 0, 0, 1], [5, 5, 5, 5]])
    np.testing.assert_array_equal(render.value_ranges(rows, "minmax"), [[0, 10], [-3, 1], [5, 6]])
    np.testing.assert_array_equal(render.value_ranges(rows, "symmetric"), [[-10, 10], [-3, 3], [-5, 5]])
    np.testing.assert_allclose(render.value_ranges(rows, "percentile", 75), np.quantile(rows, [0.25, 0.75], axis=1).T
                               + [[0, 0], [0, 0], [0, 1]])


def test_render_overlay_places_each_unit_on_its_receptive_field():
    base = np.zeros((8, 8, 3), np.uint8)
    heat = np.array([[[255, 0, 0], [0, 255, 0]], [[0, 0, 255], [255, 255, 255]]], np.uint8)
    # 2x2 map, stride 4, unit (0,0) centred on pixel 1.5: units cover pixels 0-3 and 4-7 exactly.
    rect = render.footprint(2, 2, 8, 8, {"stride": [4, 4], "offset": [1.5, 1.5]})
    assert rect == (0.0, 0.0, 8.0, 8.0)
    out = render.overlay(base, heat, rect, 1.0)
    np.testing.assert_array_equal(out[:4, :4], np.broadcast_to(heat[0, 0], (4, 4, 3)))
    np.testing.assert_array_equal(out[4:, 4:], np.broadcast_to(heat[1, 1], (4, 4, 3)))
    # half opacity blends; pixels outside the footprint keep the base
    shifted = render.overlay(base, heat, (2.0, 0.0, 8.0, 8.0), 0.5)
    assert shifted[0, 0].tolist() == [0, 0, 0] and shifted[0, 2].tolist() == [128, 0, 0]


def test_render_grid_tiles_cells_row_major_with_gaps():
    cells = np.stack([np.full((2, 3, 3), i * 40, np.uint8) for i in range(5)])
    g = render.grid(cells, gap=1, background=7)
    cols = 2  # ceil(sqrt(5 * 2 / 3))
    assert g.shape == (3 * 3 - 1, cols * 4 - 1, 3)
    assert g[0, 0, 0] == 0 and g[0, 4, 0] == 40 and g[3, 0, 0] == 80 and g[6, 0, 0] == 160
    assert g[2, 0, 0] == 7 and g[6, 4, 0] == 7  # gap row and the empty last cell


def test_an_observer_of_result_may_start_a_new_request():
    v = Toy()

    def chain(change):  # runs on the worker thread while it publishes
        if change.new["value"] == 1:
            v.knob = 2

    v.observe(chain, "result")
    v.knob = 1
    deadline = time.monotonic() + 10
    while v.result.get("value") != 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    v.wait(10)
    assert v.result["value"] == 4 and v.seq == v.result_seq == 2
    v.close()


EXIT_WHILE_RUNNING = """
import sys, time
import featwidget as fw
demo = fw.demo.load("shapes")
view = fw.Attribution(demo.network, demo.images[0], method="smoothgrad", samples=200000)
deadline = time.monotonic() + 30
while view.progress == 0.0 and time.monotonic() < deadline:  # torch is busy on the worker thread now
    time.sleep(0.05)
print("exiting", view.status, flush=True)
"""


def test_python_exits_cleanly_while_a_view_is_computing():
    """A daemon worker still inside torch at interpreter shutdown aborts the process ("terminate called
    without an active exception"): the views cancel and join their workers at exit."""
    import subprocess
    import sys

    t0 = time.monotonic()
    run = subprocess.run([sys.executable, "-c", EXIT_WHILE_RUNNING], capture_output=True, text=True, timeout=180)
    assert "exiting running" in run.stdout, run.stdout + run.stderr
    assert run.returncode == 0 and "terminate called" not in run.stderr, (run.returncode, run.stderr[-2000:])
    assert time.monotonic() - t0 < 120


def test_a_missing_bundle_renders_a_build_hint_instead_of_breaking_the_import():
    from featwidget.widgets._base import static_file

    assert static_file("activations.js").exists()
    esm = static_file("no-such-view.js")
    assert isinstance(esm, str) and "textContent" in esm and "npm run build" in esm and "innerHTML" not in esm
    assert static_file("no-such.css") == ""


def test_the_missing_bundle_stand_in_is_a_module_that_renders_the_hint_as_text(tmp_path):
    import shutil
    import subprocess

    from featwidget.widgets._base import static_file

    node = shutil.which("node")
    assert node, "node is installed by .ci/install (the JS unit tests need it too)"
    (tmp_path / "view.mjs").write_text(static_file("no-such-view.js"))
    (tmp_path / "run.mjs").write_text(
        "globalThis.document = { createElement: (tag) => ({ tag, textContent: '' }) };\n"
        "const { default: widget } = await import('./view.mjs');\n"
        "const kids = []; widget.render({ el: { appendChild: (c) => kids.push(c) } });\n"
        "console.log(JSON.stringify(kids));\n")
    out = subprocess.run([node, str(tmp_path / "run.mjs")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (kid,) = json.loads(out.stdout)
    assert kid["tag"] == "pre" and "no-such-view.js is missing" in kid["textContent"]


def test_a_new_view_does_not_wait_for_another_views_computation_on_the_same_model():
    """View constructors run on the kernel thread: they must not run the model, which a busy view holds."""
    demo = fw.demo.load("shapes")
    busy = fw.Attribution(demo.network, demo.images[0], method="smoothgrad", samples=100000)
    deadline = time.monotonic() + 30
    while busy.progress == 0.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert busy.status == "running"
    try:
        for make in (lambda: fw.Attribution(demo.network, demo.images[1], method="gradient"),
                     lambda: fw.Occlusion(demo.network, demo.images[1]),
                     lambda: fw.Activations(demo.network, demo.images[1])):
            t0 = time.monotonic()
            view = make()
            assert time.monotonic() - t0 < 2.0, type(view).__name__  # the busy view needs minutes
            assert busy.status == "running"
            view.close()
    finally:
        busy.samples = 1  # supersedes the long request
        busy.wait(60)
        busy.close()
    assert busy.status == "idle" and busy.predictions
