"""The front end's unit tests (decoding, colormaps, normalization, layout) run by node's built-in runner,
so the single pytest command covers them too."""
import pathlib
import shutil
import subprocess

import pytest

JS = pathlib.Path(__file__).resolve().parent.parent / "js"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_unit_tests_pass():
    proc = subprocess.run(["node", "--test", "tests/"], cwd=JS, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "# fail 0" in out and "# pass 0" not in out, out[-2000:]
