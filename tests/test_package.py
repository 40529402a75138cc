"""Package-level rules: cheap import, one-way dependencies between subpackages (docs/design.md §2)."""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile

import pytest

from conftest import REPO

# Lower layers may not import higher ones, nor packages of the same rank each other.
RANK = {"errors": 0, "config": 0, "kernels": 0, "exercises": 9, "downloads": 0.5,
        "tokenizer": 1, "model": 2, "generate": 3, "train": 4,
        "tools": 1, "safety": 1, "memory": 1,
        "chat": 5, "builtin": 5.5, "server": 6, "terminal": 6.5, "cli": 7, "__main__": 8, "assets": 0, "bm25": 0}
STRINGS_ONLY = {"tools", "safety", "memory"}  # know only strings and config, never arrays or the model side


def _is_module(dotted: str) -> bool:
    path = REPO.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _imports(source: str, package: str):
    """Every module that `source`, a module of `package` (e.g. "minichat.chat"), imports, as an absolute dotted name:
    `import a.b`, `from a.b import c` (and a.b.c when that is a module), `from . import c`, `from ..b import c`."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) + 1 - node.level] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            yield module
            # `from minichat import terminal` imports the module minichat.terminal
            yield from (f"{module}.{a.name}" for a in node.names if _is_module(f"{module}.{a.name}"))


def test_relative_imports_are_resolved():
    got = set(_imports("from . import grads\nfrom .optim import AdamW\nfrom ..chat import template\n"
                       "from minichat import terminal\nimport minichat.model.layers", "minichat.train"))
    assert got == {"minichat.train", "minichat.train.grads", "minichat.train.optim", "minichat.chat",
                   "minichat.chat.template", "minichat", "minichat.terminal", "minichat.model.layers"}


def test_imports_point_one_way():
    bad = []
    for path in (REPO / "minichat").rglob("*.py"):
        rel = path.relative_to(REPO / "minichat").with_suffix("")
        here = rel.parts[0] if rel.parts[0] != "__init__" else None
        if here is None:
            continue  # the package root re-exports the public API from everywhere
        package = ".".join(("minichat",) + rel.parts[:-1])  # chat/template.py and chat/__init__.py: minichat.chat
        for mod in _imports(path.read_text(encoding="utf-8"), package):
            parts = mod.split(".")
            if parts[0] != "minichat" or len(parts) < 2 or parts[1] == here:
                continue
            there = parts[1]
            if there not in RANK or here not in RANK:
                bad.append(f"{rel}: unknown package in {mod}")
            elif here in STRINGS_ONLY and there not in ("config", "errors", "bm25"):
                bad.append(f"{rel} imports {mod}: {here} may only use config, errors and bm25")
            elif RANK[there] >= RANK[here]:
                bad.append(f"{rel} (rank {RANK[here]}) imports {mod} (rank {RANK[there]})")
    assert not bad, "\n".join(bad)


def test_no_hidden_imports_in_the_strings_only_packages():
    """The rank test reads import statements; importlib or __import__ by name would slip past it."""
    for package in STRINGS_ONLY:
        for path in (REPO / "minichat" / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                         [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n.split(".")[0] == "importlib" for n in names), f"{path}: imports importlib"
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    assert name not in ("__import__", "import_module"), f"{path}:{node.lineno}: imports by name"


def test_import_is_lazy():
    """`import minichat` must not pull in numba (~0.8 s) or any peer library; bench/tokenizer.py times the import."""
    code = ("import sys, minichat, minichat.tokenizer; "
            "print(sorted(m for m in ('numba', 'torch', 'tiktoken', 'tokenizers', 'transformers', 'llvmlite') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_wheel_carries_every_data_file(tmp_path):
    """`pip install .` (not -e) must bring the built-in model, the safety classifiers and the web page: setuptools
    builds the wheel (from setup.cfg's package_data) and every non-Python file git tracks under minichat/ is in it."""
    tracked = subprocess.run(["git", "ls-files"], capture_output=True, text=True, cwd=REPO, check=True).stdout.split()
    data = {p for p in tracked if p.startswith("minichat/") and not p.endswith(".py")}
    assert "minichat/assets/model/model.safetensors" in data
    src = tmp_path / "src"  # the tracked files alone: a build/ folder left in the checkout would hide a missing file
    for p in tracked:
        if (REPO / p).is_file():
            (src / p).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(REPO / p, src / p)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(tmp_path / "dist"), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("minichat-*.whl")
    with zipfile.ZipFile(wheel) as z:
        assert not data - set(z.namelist())
