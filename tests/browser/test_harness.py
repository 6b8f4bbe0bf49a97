"""Self-test of the browser harness with a minimal anywidget (independent of featwidget's own views).

Proves the plumbing every browser test relies on: the server serves JupyterLab with anywidget enabled, the
notebook runs, a canvas is readable, a mouse drag on a range input reaches Python, and Python code run in the
kernel reaches the page.
"""
import textwrap

import pytest

from harness import canvas_hash, canvas_pixels, drag_range, page_config, view_state, wait_view

TINY_WIDGET = textwrap.dedent('''
    import anywidget, traitlets

    class Tiny(anywidget.AnyWidget):
        _esm = """
        function render({ model, el }) {
          const root = document.createElement('div');
          root.className = 'tiny-view';
          const canvas = document.createElement('canvas');
          canvas.width = 8; canvas.height = 4;
          const slider = document.createElement('input');
          slider.type = 'range'; slider.min = 0; slider.max = 12; slider.dataset.trait = 'value';
          slider.style.width = '300px';
          const draw = () => {
            const v = model.get('value');
            slider.value = v;
            const ctx = canvas.getContext('2d');
            ctx.fillStyle = `rgb(${v * 20}, 0, 255)`;
            ctx.fillRect(0, 0, canvas.width, canvas.height);
            root.dataset.seq = v; root.dataset.status = 'idle';
          };
          slider.addEventListener('input', () => { model.set('value', Number(slider.value)); model.save_changes(); });
          model.on('change:value', draw);
          root.append(canvas, slider); el.append(root); draw();
        }
        export default { render };
        """
        value = traitlets.Int(3).tag(sync=True)

    tiny = Tiny()
    tiny
''')


@pytest.mark.parametrize("path", ["/lab", "/notebooks/any.ipynb"])
def test_widget_extensions_enabled(jupyter_server, path):
    # What the test server hands JupyterLab and Notebook 7 (with the temporary config dir in force): the
    # widget front ends from the wheels are loaded and not disabled, and the app is exposed for the harness.
    cfg = page_config(jupyter_server, path)
    names = {e["name"] for e in cfg["federated_extensions"]}
    assert {"anywidget", "@jupyter-widgets/jupyterlab-manager"} <= names, names
    disabled = cfg.get("disabledExtensions") or []
    assert not [d for d in disabled if "anywidget" in d or "jupyter-widgets" in d], disabled
    assert str(cfg.get("exposeAppInBrowser")).lower() == "true"


def test_harness_drives_a_widget_both_ways(notebook_factory):
    # A failing cell must fail the run with its traceback (the cells before it have run).
    nb = notebook_factory([TINY_WIDGET, "raise ValueError('deliberate failure')", "never = 1"],
                          "harness_selftest", run=False)
    with pytest.raises(AssertionError, match="ValueError: deliberate failure"):
        nb.run_all()
    assert nb.execute("print('never' in globals())").strip() == "False"
    root = nb.locator(".tiny-view")
    canvas = nb.locator(".tiny-view canvas")
    assert wait_view(root, "idle", 3) == {"status": "idle", "seq": 3}
    px = canvas_pixels(canvas)
    assert px.shape == (4, 8, 4)
    assert (px[..., :3] == [60, 0, 255]).all()
    before = canvas_hash(canvas)

    # A real mouse drag to the right end reaches the Python trait and redraws.
    assert drag_range(nb.page, nb.locator("[data-trait=value]"), 1.0) == "12"
    nb.wait_for("tiny.value", "12")
    wait_view(root, "idle", 12)
    assert canvas_hash(canvas) != before
    assert (canvas_pixels(canvas)[..., :3] == [240, 0, 255]).all()

    # Python in the kernel reaches the page.
    nb.execute("tiny.value = 5")
    nb.page.wait_for_function("() => document.querySelector('.tiny-view').dataset.seq === '5'")
    assert view_state(root) == {"status": "idle", "seq": 5}
    assert (canvas_pixels(canvas)[..., :3] == [100, 0, 255]).all()
