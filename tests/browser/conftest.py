"""Fixtures for real-browser tests: one JupyterLab server and one Chromium per test session.

These tests never skip: a missing Chromium or a server that does not start is a failure, because CI must
prove the views work in a real browser (README, `.ci/install --test` installs Chromium).
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from harness import CHROMIUM, CHROMIUM_ARGS, open_notebook, start_server  # noqa: E402


def pytest_collection_modifyitems(items):
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.fspath).startswith(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory):
    """A JupyterLab 4 (+ Notebook 7 pages) server on 127.0.0.1 with throw-away config and root dirs."""
    server = start_server(tmp_path_factory.mktemp("jupyter"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (no `playwright install`: it cannot download here)."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `bash .ci/install --test` (apt-get install -y chromium)")
    # A browsers path set for bundled browsers must not redirect the executable we launch.
    os.environ.pop("PLAYWRIGHT_BROWSERS_PATH", None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def notebook_factory(browser, jupyter_server):
    """`notebook_factory(cells, name, ui="lab", run=True) -> harness.Notebook`; pages close after the test.

    Notebook names must be unique per session (they are files in the server's root).
    """
    yield from _notebooks(browser, jupyter_server)


def _notebooks(browser, jupyter_server):
    """A notebook opener for a fixture; every notebook it opened is closed (kernel shut down) at teardown."""
    opened = []

    def make(cells, name, ui="lab", run=True):
        nb = open_notebook(browser, jupyter_server, cells, name, ui=ui, run=run)
        opened.append(nb)
        return nb

    yield make
    for nb in opened:
        nb.close()


@pytest.fixture(scope="module")
def module_notebook_factory(browser, jupyter_server):
    """Like `notebook_factory`, but pages live for the whole module: share one notebook across tests."""
    yield from _notebooks(browser, jupyter_server)
