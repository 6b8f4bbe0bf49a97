"""The README's code is true: its quick start runs as written, and its set-up commands are the CI's."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def _section(title):
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def test_quick_start_runs():
    code = re.findall(r"```python\n(.*?)```", _section("Quick start in a notebook"), re.S)
    assert len(code) == 1
    ns = {}
    exec(compile(code[0], "README quick start", "exec"), ns)
    view = ns["view"]
    view.wait(120)  # the view's worker must be done before the interpreter exits
    assert view.status == "idle" and view.error == "" and view.layer == "layer2"
    assert ns["sal"].shape == (4, 1, 64, 64) and ns["occ"].shape == (4, 1, 64, 64)
    assert ns["mine"].layers[0].name == "conv1"


def test_setup_has_exactly_two_commands_and_ci_runs_the_second():
    commands = re.findall(r"```bash\n(.*?)\n *```", _section("Set-up on a fresh machine"), re.S)
    commands = [c.strip() for c in commands]
    assert commands[:2] == ["bash .ci/install && featwidget demo",
                            "bash .ci/install --test && python -m pytest -q"], commands
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == commands[1]
    assert "set -euo pipefail" in ci
