"""The README's tour runs verbatim, as a new user would paste it (in an empty folder, in a fresh interpreter)."""
from __future__ import annotations

import re
import subprocess
import sys

from conftest import REPO


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)


def test_readme_tour_runs_verbatim(tmp_path):
    blocks = python_blocks()
    assert blocks, "the README has a Python tour"
    out = subprocess.run([sys.executable, "-c", "\n".join(blocks)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    # the tour prints every stage's event, the reply's tokens and the end of the turn
    for kind in ("safety_verdict", "memory_hits", "context_built", "tokenized", "token", "done"):
        assert f"\n{kind} " in "\n" + out.stdout, kind
    assert "Hello, world!" in out.stdout


def test_readme_commands_are_the_ones_ci_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(text.splitlines()[:40])
    assert "pip install -e . && minichat chat" in first_screen
    assert 'pip install -e ".[test,peers,notebooks,serve,browser]" && python -m pytest' in first_screen
