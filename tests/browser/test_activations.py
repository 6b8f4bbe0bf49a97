"""fw.Activations in a real browser (issue 3): sliders redraw, errors show and clear, user text stays text.

One JupyterLab notebook is shared by the tests of this module (opening one costs a kernel start and a demo
load); each test leaves the views in a valid state. The Notebook 7 test opens its own notebook.
"""
import json

import pytest

from harness import canvas_hash, canvas_pixels, drag_range, view_state, wait_view

XSS = '<img src=x onerror="window.__xss=1">'

SETUP = """\
import torch
torch.set_num_threads(1)
import featwidget as fw
demo = fw.demo.load("shapes")
view = fw.Activations(demo.network, demo.images[0])
view"""

# The same trained network, but every class name carries markup: it must be shown, never parsed.
EVIL = f"""\
net = demo.network
evil = fw.wrap(net.module, input_size=net.input_size, mean=net.mean.flatten().tolist(),
               std=net.std.flatten().tolist(), classes=[{XSS!r} + " " + c for c in demo.classes])
evil_view = fw.Activations(evil, demo.images[1])
evil_view"""


@pytest.fixture(scope="module")
def nb(module_notebook_factory):
    return module_notebook_factory([SETUP, EVIL], "activations_lab")


def _views(nb):
    return nb.locator(".fw-view.fw-activations")


def _not_blank(canvas):
    px = canvas_pixels(canvas)
    return px.shape[0] > 1 and px.shape[1] > 1 and px[..., :3].std() > 1.0


def test_layer_and_channel_sliders_redraw(nb):
    root = _views(nb).nth(0)
    state = wait_view(root, "idle", 1)
    main, grid = root.locator("canvas.fw-main"), root.locator("canvas.fw-grid")
    assert _not_blank(main) and _not_blank(grid)
    main0, grid0 = canvas_hash(main), canvas_hash(grid)

    layer = root.locator("input[type=range][data-trait=layer]")
    start = layer.input_value()
    moved = drag_range(nb.page, layer, 0.5)
    assert moved != start
    # A layer change is a new request. Once the kernel has the drag's final layer, its seq is the last
    # request: wait until exactly that picture is drawn and the worker is idle.
    nb.wait_for("view.layers.index(view.layer)", moved)
    seq = int(nb.execute("print(view.seq)"))
    assert seq > state["seq"]
    after = wait_view(root, "idle", seq)
    assert canvas_hash(grid) != grid0 and canvas_hash(main) != main0
    name = nb.execute("print(view.layer)").strip()
    assert name in root.locator(".fw-stats").text_content()

    # The channel is drawn from the maps already in the browser: no new request, a new overlay.
    main1 = canvas_hash(main)
    channel = root.locator("input[type=range][data-trait=channel]")
    assert int(channel.evaluate("el => el.max")) > 0
    moved = drag_range(nb.page, channel, 1.0)
    assert moved != "0"
    nb.page.wait_for_function("([el, v]) => el.textContent.includes(`channel ${v} of`)",
                              arg=[root.locator(".fw-stats").element_handle(), moved])
    assert canvas_hash(main) != main1
    nb.wait_for("view.channel", moved)
    assert wait_view(root, "idle", after["seq"]) == {"status": "idle", "seq": after["seq"]}


def test_invalid_layer_shows_error_then_recovers(nb):
    root = _views(nb).nth(0)
    banner = root.locator(".fw-error")
    before = wait_view(root, "idle", 1)
    assert not banner.is_visible()

    nb.execute('view.layer = "no_such_layer"')
    wait_view(root, "error", before["seq"])
    assert banner.is_visible()
    text = banner.text_content()
    assert "no_such_layer" in text and text == nb.execute("print(view.error, end='')")

    grid = root.locator("canvas.fw-grid")
    grid_before = canvas_hash(grid)
    nb.execute("view.layer = view.layers[1]")
    seq = int(nb.execute("print(view.seq)"))
    assert wait_view(root, "idle", seq)["seq"] == seq
    assert not banner.is_visible() and banner.text_content() == ""
    assert canvas_hash(grid) != grid_before
    assert nb.execute("print(view.layers[1])").strip() in root.locator(".fw-stats").text_content()


def test_class_names_are_text_not_markup(nb):
    root = _views(nb).nth(1)
    wait_view(root, "idle", 1)
    labels = root.locator(".fw-predictions .fw-label")
    labels.first.wait_for()
    texts = labels.all_text_contents()
    expected = json.loads(nb.execute("import json; print(json.dumps([p['label'] for p in evil_view.predictions]))"))
    assert texts == expected and len(texts) == 5 and all(t.startswith(XSS) for t in texts)
    assert root.locator(".fw-predictions img").count() == 0
    assert nb.page.locator("img[src=x]").count() == 0
    assert nb.page.evaluate("() => typeof window.__xss") == "undefined"


def test_renders_in_notebook7(notebook_factory):
    nb7 = notebook_factory([SETUP], "activations_nb7", ui="notebook")
    assert "/notebooks/activations_nb7.ipynb" in nb7.page.url
    root = _views(nb7).nth(0)
    state = wait_view(root, "idle", 1)
    main, grid = root.locator("canvas.fw-main"), root.locator("canvas.fw-grid")
    assert _not_blank(main) and _not_blank(grid)
    grid0 = canvas_hash(grid)
    moved = drag_range(nb7.page, root.locator("input[type=range][data-trait=layer]"), 0.75)
    nb7.wait_for("view.layers.index(view.layer)", moved)
    seq = int(nb7.execute("print(view.seq)"))
    assert seq > state["seq"]
    wait_view(root, "idle", seq)
    assert canvas_hash(grid) != grid0
    assert view_state(root)["status"] == "idle"
