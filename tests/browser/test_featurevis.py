"""fw.FeatureVis in a real browser (issue 6): the start button starts a run, the picture changes while it
runs, and a regularizer slider moved mid-run is applied to the running optimization without a restart (same
request, the step counter and the objective curve go on)."""
import pytest

from harness import canvas_hash, canvas_pixels, drag_range, wait_view

SETUP = """\
import torch
torch.set_num_threads(1)
import featwidget as fw
demo = fw.demo.load("shapes")
# a channel that fires on the demo images (a dead channel has no gradient and its picture would not move)
alive = int(demo.network.activations(demo.images, ["layer3"])["layer3"].mean((0, 2, 3)).argmax())
view = fw.FeatureVis(demo.network, layer="layer3", channel=alive, steps=100000, batch=2, start=False)
view"""


@pytest.fixture(scope="module")
def nb(module_notebook_factory):
    return module_notebook_factory([SETUP], "featurevis_lab")


def _step(root) -> int:
    return int(root.locator(".fw-step").get_attribute("data-step") or 0)


def _wait_step_above(nb, root, n, timeout=60_000):
    nb.page.wait_for_function("([el, n]) => +(el.dataset.step || 0) > n",
                              arg=[root.locator(".fw-step").element_handle(), n], timeout=timeout)
    return _step(root)


def test_start_runs_and_a_live_slider_applies_without_restart(nb):
    root = nb.locator(".fw-view.fw-featurevis")
    root.locator("button[data-action=start]").click()
    wait_view(root, "running", 1)
    seq = int(nb.execute("print(view.seq)"))
    main = root.locator("canvas.fw-main")
    first = _wait_step_above(nb, root, 0)
    px = canvas_pixels(main)
    assert px.shape[1] > px.shape[0] > 1 and px[..., :3].std() > 0  # two facets side by side, not blank
    h1 = canvas_hash(main)
    # frames keep landing: read the step after the hash, so the frame waited for is surely a later one
    second = _wait_step_above(nb, root, _step(root) + 8)
    assert canvas_hash(main) != h1, (  # the picture changes while it runs
        first, second, nb.execute("from featwidget.widgets._base import from_payload as f\n"
                                  "print(f(view.result['objective'])[:40], view.settings)"))

    # Move the total-variation slider mid-run: the running optimization's Settings get the value...
    tv = root.locator("input[type=range][data-trait=tv]")
    moved = drag_range(nb.page, tv, 0.75)
    assert float(moved) > 0
    nb.wait_for("view.settings.regularizers['tv'].value", moved)
    at_move = int(nb.execute("print(view.result['step'])"))
    # ...and the same run goes on: same request, the step counter and the curve keep growing past the move
    later = _wait_step_above(nb, root, max(second, at_move) + 8)
    assert int(nb.execute("print(view.seq)")) == seq
    assert root.get_attribute("data-seq") == str(seq)
    assert nb.execute("print(view.status)").strip() == "running"
    n_curve = int(nb.execute("print(view.result['objective']['shape'][0])"))
    assert n_curve >= later > at_move

    root.locator("button[data-action=stop]").click()
    state = wait_view(root, "idle", seq)
    assert state["seq"] == seq
    nb.wait_for("view.result.get('stopped')", "True")
    assert "(stopped)" in root.locator(".fw-step").text_content()
