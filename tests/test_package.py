"""Package-level rules: cheap import, one-way dependencies between subpackages (DESIGN.md §2)."""
from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO

# Lower layers may not import higher ones. Same-rank packages may not import each other unless listed as allowed.
RANK = {"errors": 0, "config": 0, "kernels": 0, "exercises": 9, "downloads": 0.5,
        "tokenizer": 1, "model": 2, "generate": 3, "train": 4,
        "tools": 1, "safety": 1, "memory": 1,
        "chat": 5, "server": 6, "cli": 7, "terminal": 7, "__main__": 8, "assets": 0, "bm25": 0}
STRINGS_ONLY = {"tools", "safety", "memory"}  # know only strings and config, never arrays or the model side
# Departure from DESIGN.md §2, on purpose: training on chat data needs the chat template (issue 4), so the chat
# package's string-level modules sit just above the tokenizer; only the session (the loop) sits on top.
MODULE_RANK = {"chat.template": 1.5, "chat.context": 1.6, "chat.events": 0, "chat.plugins": 0}


def _rank(parts: tuple[str, ...]) -> float:
    key = ".".join(parts[:2])
    return MODULE_RANK.get(key, RANK.get(parts[0], -1))


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_imports_point_one_way():
    bad = []
    for path in (REPO / "minichat").rglob("*.py"):
        rel = path.relative_to(REPO / "minichat").with_suffix("")
        here = rel.parts[0] if rel.parts[0] != "__init__" else None
        if here is None:
            continue  # the package root re-exports the public API from everywhere
        for mod in _imports(path):
            parts = mod.split(".")
            if parts[0] != "minichat" or len(parts) < 2 or parts[1] == here:
                continue
            there = parts[1]
            r_here, r_there = _rank(rel.parts), _rank(tuple(parts[1:]))
            if there not in RANK or here not in RANK:
                bad.append(f"{rel}: unknown package in {mod}")
            elif here in STRINGS_ONLY and there not in ("config", "errors", "bm25"):
                bad.append(f"{rel} imports {mod}: {here} may only use config, errors and bm25")
            elif r_there >= r_here and here != "exercises" and not (here == there):
                bad.append(f"{rel} (rank {r_here}) imports {mod} (rank {r_there})")
    assert not bad, "\n".join(bad)


def test_import_is_lazy():
    """`import minichat` must not pull in numba (~0.8 s) or any peer library; bench/tokenizer.py times the import."""
    code = ("import sys, minichat, minichat.tokenizer; "
            "print(sorted(m for m in ('numba', 'torch', 'tiktoken', 'tokenizers', 'transformers', 'llvmlite') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"
