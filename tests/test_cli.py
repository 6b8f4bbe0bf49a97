"""The `featwidget` command: version/help, the tour copy rules, and `featwidget demo` serving the tour."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

import featwidget
from featwidget import cli


def _featwidget_exe():
    # The script installed beside this interpreter (a venv need not be activated), else the one on PATH.
    exe = shutil.which("featwidget", path=os.path.dirname(sys.executable)) or shutil.which("featwidget")
    assert exe, "the `featwidget` console script is not on PATH: install the package (bash .ci/install)"
    return exe


def test_version_and_help():
    out = subprocess.run([_featwidget_exe(), "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == f"featwidget {featwidget.__version__}"
    out = subprocess.run([_featwidget_exe(), "demo", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--no-browser", "--port", "--ip", "--dir", "--reset"):
        assert flag in out.stdout


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_bundled_tour_is_a_notebook_that_loads_the_demo():
    nb = json.loads(cli.bundled_tour())
    code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
    assert nb["nbformat"] == 4 and 'fw.demo.load("shapes")' in code and "net.predict(" in code


def test_tour_copy_keeps_user_edits(tmp_path):
    original = cli.bundled_tour()
    path, note = cli.prepare_tour(tmp_path)
    assert path.read_bytes() == original and "created" in note

    # An untouched copy from an older featwidget is refreshed (its digest matches what the CLI wrote).
    old = b'{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    path.write_bytes(old)
    (tmp_path / cli.STAMP).write_text(cli._digest(old))
    _, note = cli.prepare_tour(tmp_path)
    assert path.read_bytes() == original and "updated" in note

    # A copy the user edited is kept, and the note says how to get the original back.
    edited = original.replace(b"A tour of featwidget", b"My notes")
    path.write_bytes(edited)
    _, note = cli.prepare_tour(tmp_path)
    assert path.read_bytes() == edited and "--reset" in note

    # --reset restores the original and keeps the edited file as a backup.
    _, note = cli.prepare_tour(tmp_path, reset=True)
    assert path.read_bytes() == original
    backups = list(tmp_path.glob("tour.backup-*.ipynb"))
    assert len(backups) == 1 and backups[0].read_bytes() == edited and str(backups[0]) in note


def test_busy_port_is_a_clear_error(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert cli.main(["demo", "--no-browser", "--port", str(port), "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"port {port}" in err and "in use" in err and "--port" in err


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, token=None):
    headers = {"Authorization": f"token {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
        return r.status, r.read()


def test_demo_serves_the_tour(tmp_path):
    port = _free_port()
    env = dict(os.environ, HOME=str(tmp_path / "home"), JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"))
    workdir = tmp_path / "tour"
    proc = subprocess.Popen(
        [_featwidget_exe(), "demo", "--no-browser", "--port", str(port), "--dir", str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True)
    lines = []
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None:
            line = proc.stdout.readline()
            assert line or proc.poll() is None, "featwidget demo exited early:\n" + "".join(lines)
            assert time.monotonic() < deadline, "no URL printed within 120 s:\n" + "".join(lines)
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:(\d+)/lab/tree/tour\.ipynb\?token=(\w+))", line)
            if m:
                url, token = m.group(1), m.group(3)
                assert int(m.group(2)) == port

        base = f"http://127.0.0.1:{port}"
        status, body = _get(f"{base}/api/contents/tour.ipynb", token)
        model = json.loads(body)
        assert status == 200 and model["type"] == "notebook"
        served = model["content"]["cells"]
        bundled = json.loads(cli.bundled_tour())["cells"]
        assert [c["source"] for c in served] == ["".join(c["source"]) if isinstance(c["source"], list)
                                                  else c["source"] for c in bundled]
        assert (workdir / "tour.ipynb").read_bytes() == cli.bundled_tour()

        status, page = _get(url)
        assert status == 200 and b"<html" in page.lower()
        # The printed token is what protects the server: without it the API refuses.
        with pytest.raises(urllib.error.HTTPError) as refused:
            _get(f"{base}/api/contents/tour.ipynb")
        assert refused.value.code == 403
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        proc.stdout.close()
    # The whole group (CLI and the Jupyter server it started) is gone and the port is free again.
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)
    with socket.socket() as s:
        # SO_REUSEADDR ignores our own closed connections in TIME_WAIT; a listener would still block bind.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
