"""The front end's unit tests (decoding, colormaps, normalization, layout) run by node's built-in runner,
so the single pytest command covers them too."""
import pathlib
import subprocess

import pytest

JS = pathlib.Path(__file__).resolve().parent.parent / "js"


def test_node_unit_tests_pass():
    proc = subprocess.run(["node", "--test", "tests/"], cwd=JS, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "# fail 0" in out and "# pass 0" not in out, out[-2000:]


@pytest.mark.parametrize("cmap", ["gray", "viridis", "magma", "inferno", "diverging"])
def test_browser_and_png_export_colour_maps_identically(cmap):
    import json

    import numpy as np

    from featwidget.widgets import render

    values = np.linspace(-0.1, 1.1, 301)
    script = (f"import('./src/lib/colormap.js').then(m => console.log(JSON.stringify(Array.from("
              f"m.colorize(Float32Array.from({json.dumps(values.tolist())}), {json.dumps(cmap)})))))")
    proc = subprocess.run(["node", "--input-type=module", "-e", script], cwd=JS, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    js = np.array(json.loads(proc.stdout)).reshape(-1, 4)[:, :3]
    py = render.colorize(values.astype(np.float32), cmap)
    np.testing.assert_array_equal(js, py)
