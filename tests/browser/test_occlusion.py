"""fw.Occlusion in a real browser (issue 4): dragging the patch-size slider draws a new map, a coarse map is
drawn before the full one, and hovering the map shows the occluded image and the target's value there."""
import pytest

from harness import canvas_hash, canvas_pixels, drag_range, wait_view

SETUP = """\
import torch
torch.set_num_threads(1)
import featwidget as fw
demo = fw.demo.load("shapes")
view = fw.Occlusion(demo.network, demo.images[0], size=8, stride=4)
view"""

# Records every (data-coarse, data-seq, picture) the view root goes through, so the order of the coarse and
# the full picture of one request can be checked afterwards.
RECORD = """([root, canvas]) => {
  window.__occ = [];
  new MutationObserver(() => window.__occ.push([root.dataset.coarse, Number(root.dataset.seq), canvas.toDataURL()]))
    .observe(root, {attributes: true, attributeFilter: ["data-coarse", "data-seq"]});
}"""


@pytest.fixture(scope="module")
def nb(module_notebook_factory):
    return module_notebook_factory([SETUP], "occlusion_lab")


def test_size_slider_draws_a_coarse_map_then_the_full_one(nb):
    root = nb.locator(".fw-view.fw-occlusion")
    state = wait_view(root, "idle", 1)
    main = root.locator("canvas.fw-main")
    assert canvas_pixels(main)[..., :3].std() > 1.0
    before = canvas_hash(main)
    nb.page.evaluate(RECORD, [root.element_handle(), main.element_handle()])

    size = root.locator("input[type=range][data-trait=size]")
    moved = drag_range(nb.page, size, 0.9)
    assert int(moved) > 8
    nb.wait_for("view.size", moved)
    seq = int(nb.execute("print(view.seq)"))
    assert seq > state["seq"]
    wait_view(root, "idle", seq)
    nb.page.wait_for_function("s => window.__occ.some(([c, q]) => c === '0' && q === s)", arg=seq)
    assert canvas_hash(main) != before
    assert f"patch {moved} px" in root.locator(".fw-stats").text_content()

    log = nb.page.evaluate("window.__occ")
    mine = [(coarse, pic) for coarse, q, pic in log if q == seq]
    coarse_at = [i for i, (c, _) in enumerate(mine) if c == "1"]
    full_at = [i for i, (c, _) in enumerate(mine) if c == "0"]
    assert coarse_at and full_at and coarse_at[0] < full_at[-1], [c for c, _ in mine]
    assert mine[coarse_at[0]][1] != mine[full_at[-1]][1]  # the coarse picture differs from the full one


def test_hover_shows_the_occluded_image_and_value(nb):
    root = nb.locator(".fw-view.fw-occlusion")
    wait_view(root, "idle", 1)
    main, occluded = root.locator("canvas.fw-main"), root.locator("canvas.fw-occluded")
    box = main.bounding_box()
    first = None
    for fx, fy in [(0.2, 0.2), (0.8, 0.7)]:
        nb.page.mouse.move(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
        nb.page.wait_for_function("el => (el.textContent || '').includes('patch at')",
                                  arg=root.locator(".fw-hover").element_handle())
        text = root.locator(".fw-hover").text_content()
        i, j = (int(v) for v in root.get_attribute("data-hover").split(","))
        y, x = nb.execute(f"print(view.result['ys'][{i}], view.result['xs'][{j}])").split()
        assert f"patch at ({y}, {x})" in text
        value = float(nb.execute(f"import featwidget.widgets._base as b; r = view.result; "
                                 f"print(r['value'] - b.from_payload(r['grid'])[{i}, {j}])"))
        shown = float(text.split(" = ")[1].split(" ")[0])
        assert abs(shown - value) <= 0.01 * max(1e-3, abs(value)), (shown, value)
        pic = canvas_hash(occluded)
        assert pic != first
        first = pic
