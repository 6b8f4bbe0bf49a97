"""fw.Attribution in a real browser (issue 5): switching the method and dragging the SmoothGrad sigma slider
draw new pictures; while a long SmoothGrad runs, a new sigma cancels it and only the newest seq is drawn.

Uses the "shapes-confounded" demo (same ResNet as "shapes"; its shipped weights explain a watermark, which is
what attribution maps are for in the labs).
"""
import json

import pytest

from harness import canvas_hash, canvas_pixels, drag_range, wait_view

SETUP = """\
import torch
torch.set_num_threads(1)
import featwidget as fw
demo = fw.demo.load("shapes-confounded")
view = fw.Attribution(demo.network, demo.images[0], method="guided")
published = []  # (seq, partial) of every result the kernel published
view.observe(lambda ch: published.append((ch["new"].get("seq"), bool(ch["new"].get("partial")))), names=["result"])
view"""

# Records every seq the view draws (data-seq changes), in order, from the page itself.
RECORD = """(root) => {
  window.__drawn = [];
  new MutationObserver(() => window.__drawn.push(+root.dataset.seq))
    .observe(root, { attributes: true, attributeFilter: ["data-seq"] });
}"""


@pytest.fixture(scope="module")
def nb(module_notebook_factory):
    return module_notebook_factory([SETUP], "attribution_lab")


def _root(nb):
    return nb.locator(".fw-view.fw-attribution").nth(0)


def _not_blank(canvas):
    px = canvas_pixels(canvas)
    return px.shape[0] > 1 and px.shape[1] > 1 and px[..., :3].std() > 1.0


def test_switching_the_method_draws_a_new_picture(nb):
    root = _root(nb)
    state = wait_view(root, "idle", 1)
    main = root.locator("canvas.fw-main")
    assert _not_blank(main)
    before = canvas_hash(main)
    # only the chosen method's knobs are shown
    assert not root.locator("input[type=range][data-trait=sigma]").is_visible()
    root.locator("select[data-trait=method]").select_option("grad_cam")
    nb.wait_for("view.method", "grad_cam")
    seq = int(nb.execute("print(view.seq)"))
    assert seq > state["seq"]
    wait_view(root, "idle", seq)
    assert canvas_hash(main) != before
    assert root.locator("input[type=range][data-trait=layer]").is_visible()
    assert "grad_cam" in root.locator(".fw-stats").text_content()
    # the target list: the predicted class, the top-5 with probabilities, then every class, as text
    options = root.locator("select[data-trait=target] option").all_text_contents()
    labels = json.loads(nb.execute("import json; print(json.dumps([p['label'] for p in view.predictions]))"))
    assert options[0] == "predicted class" and all(l in o for l, o in zip(labels, options[1:6]))
    assert len(options) == 1 + 5 + len(json.loads(nb.execute("print(json.dumps(view.classes))")))


def test_sigma_drag_redraws_and_cancels_a_long_smoothgrad(nb):
    root = _root(nb)
    main = root.locator("canvas.fw-main")
    nb.execute("view.sigma = 0.15")
    nb.execute('view.method = "smoothgrad"')
    seq = int(nb.execute("print(view.seq)"))
    wait_view(root, "idle", seq)
    before = canvas_hash(main)
    sigma = root.locator("input[type=range][data-trait=sigma]")
    assert sigma.is_visible()
    moved = drag_range(nb.page, sigma, 0.9)
    nb.wait_for("round(view.sigma, 2)", str(round(float(moved), 2)))
    seq = int(nb.execute("print(view.seq)"))
    wait_view(root, "idle", seq)
    assert canvas_hash(main) != before

    # A long SmoothGrad (2000 samples, a few seconds): wait for its first streamed picture, then move sigma.
    root.evaluate(RECORD)
    nb.execute("published.clear(); view.samples = 2000")
    long_seq = int(nb.execute("print(view.seq)"))
    nb.page.wait_for_function("([el, s]) => +el.dataset.seq === s && el.dataset.status === 'running'",
                              arg=[root.element_handle(), long_seq], timeout=60000)
    assert "running mean" in root.locator(".fw-stats").text_content()
    drag_range(nb.page, sigma, 0.2)
    nb.wait_for("view.seq > %d" % long_seq, "True")
    nb.execute("view.samples = 40")  # finish quickly: the newest request is the one that must be drawn
    newest = int(nb.execute("print(view.seq)"))
    wait_view(root, "idle", newest)
    published = json.loads(nb.execute("print(json.dumps(published))"))
    drawn = nb.page.evaluate("() => window.__drawn")
    finals = [s for s, partial in published if not partial]
    assert finals == [newest]  # the long run and every superseded drag request were cancelled
    assert drawn == sorted(drawn) and drawn[-1] == newest  # never back to an older picture
    assert all(s == newest for s in drawn[drawn.index(newest):])
    assert int(root.get_attribute("data-seq")) == newest and root.get_attribute("data-status") == "idle"
