"""Execute every walkthrough notebook top to bottom (as CI must): a notebook that errors fails the suite.

Notebooks are committed without outputs; they import minichat rather than redefine it, so running them checks that
the prose and the library still agree.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO, require_peer

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path: Path):
    nbformat = require_peer("nbformat")
    nbclient = require_peer("nbclient")
    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO / "notebooks")}})
    client.execute()
