"""Every shipped notebook runs top to bottom in a fresh python3 kernel: the CLI's tour and the teaching labs."""
import os
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = [ROOT / "featwidget" / "tour.ipynb", *sorted((ROOT / "notebooks").glob("*.ipynb"))]


def test_labs_exist():
    # An empty notebooks/ folder would make the parametrized test below vanish without failing.
    assert len(NOTEBOOKS) >= 2, NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    # One thread for the kernel's torch: the test suite shares the machine with other processes.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    # Kernel specs may start plain `python`: make it this interpreter (a venv need not be activated).
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    # Run from a scratch folder so a lab that writes files (to_png, exports) leaves the repo clean.
    client = NotebookClient(nb, kernel_name="python3", timeout=300, allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells and all(c.execution_count for c in code_cells)
    errors = [o for c in code_cells for o in c.outputs if o.output_type == "error"]
    assert not errors
    # Every cell that prints must have printed something (a silent cell in a lab is a broken lab).
    for c in code_cells:
        if "print(" in c.source:
            assert any(o.output_type == "stream" and o.text.strip() for o in c.outputs), c.source
