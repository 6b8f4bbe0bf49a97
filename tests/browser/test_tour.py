"""The tour that `featwidget demo` opens renders every one of its views in JupyterLab: idle, no error banner,
a drawn picture. (Its Python side is executed headless by tests/test_notebooks.py.)"""
import json
from pathlib import Path

from harness import canvas_pixels, wait_view

TOUR = Path(__file__).resolve().parents[2] / "featwidget" / "tour.ipynb"


def test_tour_views_render(notebook_factory):
    cells = ["".join(c["source"]) for c in json.loads(TOUR.read_text())["cells"] if c["cell_type"] == "code"]
    n_views = sum(src.strip().startswith("fw.") and "(" in src for src in cells)
    assert n_views >= 1
    nb = notebook_factory(["import torch\ntorch.set_num_threads(1)", *cells], "tour_in_lab")
    roots = nb.locator(".fw-view")
    nb.page.wait_for_function("n => document.querySelectorAll('.fw-view').length >= n", arg=n_views)
    assert roots.count() == n_views
    for i in range(n_views):
        root = roots.nth(i)
        wait_view(root, "idle", 1, timeout=120)
        assert not root.locator(".fw-error").is_visible(), root.locator(".fw-error").text_content()
        canvas = root.locator("canvas.fw-main, canvas.fw-grid").first
        px = canvas_pixels(canvas)
        assert px.shape[0] > 1 and px[..., :3].std() > 1.0, root.get_attribute("class")
