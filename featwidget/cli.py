"""The `featwidget` command: `featwidget demo` opens the bundled tour notebook in JupyterLab.

The tour is copied into a working folder (default ~/featwidget-tour) so the user can edit and save it. A copy
the user has edited is never overwritten: the CLI records the digest of the copy it wrote and refreshes the
file only while it still matches (so package upgrades update an untouched tour); `--reset` restores the
original and keeps the edited file as a backup.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

TOUR = "tour.ipynb"
STAMP = ".featwidget-tour.sha256"
DEFAULT_DIR = Path.home() / "featwidget-tour"
DEFAULT_PORT = 8888


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def bundled_tour() -> bytes:
    return resources.files("featwidget").joinpath(TOUR).read_bytes()


def prepare_tour(folder: Path, reset: bool = False) -> tuple[Path, str]:
    """Put the tour notebook in `folder`; returns its path and a one-line note on what was done."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"cannot create the tour folder {folder}: {e.strerror}. Choose another with --dir.") from e
    target, stamp = folder / TOUR, folder / STAMP
    original = bundled_tour()
    note = f"created {target}"
    if target.exists():
        current = target.read_bytes()
        written = stamp.read_text().strip() if stamp.exists() else None
        if current == original:
            note = f"using {target}"
        elif reset:
            backup = target.with_name(f"tour.backup-{time.strftime('%Y%m%d-%H%M%S')}.ipynb")
            shutil.copyfile(target, backup)
            note = f"restored the original tour; your edited copy is saved as {backup}"
        elif written is not None and _digest(current) == written:
            note = f"updated {target} to this version of featwidget"
        else:
            stamp_note = "" if written is not None else " (not written by featwidget)"
            return target, (f"keeping your edited {target}{stamp_note}; "
                            "`featwidget demo --reset` restores the original")
    target.write_bytes(original)
    stamp.write_text(_digest(original) + "\n")
    return target, note


def _port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as s:
        # Like the server itself: connections of an earlier server in TIME_WAIT do not block the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError:
            return False
        return True


def pick_port(ip: str, port: int | None) -> int:
    if port is not None:
        if not 0 < port < 65536:
            raise CliError(f"--port {port} is not a TCP port; give a number between 1 and 65535.")
        if not _port_free(ip, port):
            raise CliError(f"port {port} on {ip} is in use; choose another with --port, or leave --port out "
                           "to pick a free one.")
        return port
    for p in range(DEFAULT_PORT, DEFAULT_PORT + 50):
        if _port_free(ip, p):
            return p
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def lab_command(folder: Path, ip: str, port: int, token: str) -> list[str]:
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        f"--ServerApp.ip={ip}", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={folder}", f"--IdentityProvider.token={token}",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # Jupyter refuses to run as root without it; containers and fresh CI machines run as root.
        cmd.append("--allow-root")
    return cmd


def _url_host(ip: str) -> str:
    if ip in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{ip}]" if ":" in ip else ip


def wait_ready(proc: subprocess.Popen, base: str, token: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        try:
            req = urllib.request.Request(f"{base}/api/contents/{TOUR}?content=0",
                                         headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(req, timeout=2):
                return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise CliError(f"JupyterLab did not answer on {base} within {timeout:.0f} s; see its log above.")
        time.sleep(0.3)
    raise CliError(f"JupyterLab exited with status {proc.returncode}; see its log above.")


def demo(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        raise CliError("JupyterLab is not installed in this Python; install it with "
                       f"`{sys.executable} -m pip install jupyterlab`.")
    folder = Path(args.dir).expanduser().resolve()
    notebook, note = prepare_tour(folder, reset=args.reset)
    print(f"featwidget: {note}", flush=True)
    port = pick_port(args.ip, args.port)
    token = secrets.token_hex(24)
    base = f"http://{_url_host(args.ip)}:{port}"
    url = f"{base}/lab/tree/{notebook.name}?token={token}"
    proc = subprocess.Popen(lab_command(folder, args.ip, port, token), cwd=folder)

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        wait_ready(proc, base, token, args.timeout)
        print(f"\nfeatwidget demo is running; open this URL in a browser (Ctrl+C stops the server):\n\n"
              f"    {url}\n", flush=True)
        if not args.no_browser:
            import webbrowser

            if not webbrowser.open(url):
                print("featwidget: no browser could be started here; open the URL above by hand.", flush=True)
        return proc.wait()
    except KeyboardInterrupt:
        return _stop(proc)
    except CliError:
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="featwidget",
        description="See what a convolutional network has learned, live, in a notebook.")
    parser.add_argument("--version", action="version", version=f"featwidget {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    d = sub.add_parser(
        "demo", help="open the tour notebook on the embedded demo models in JupyterLab",
        description="Copy the tour notebook to a working folder and open it in JupyterLab. Everything runs "
                    "offline on the embedded demo models.")
    d.add_argument("--no-browser", action="store_true", help="do not open a browser; print the URL only")
    d.add_argument("--port", type=int, default=None,
                   help=f"port to serve on (default: the first free port from {DEFAULT_PORT})")
    d.add_argument("--ip", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    d.add_argument("--dir", default=str(DEFAULT_DIR),
                   help="working folder for the tour notebook (default: %(default)s)")
    d.add_argument("--reset", action="store_true",
                   help="replace an edited tour notebook with the original (the edited one is backed up)")
    d.add_argument("--timeout", type=float, default=120.0, help=argparse.SUPPRESS)
    d.set_defaults(func=demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except CliError as e:
        print(f"featwidget: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
