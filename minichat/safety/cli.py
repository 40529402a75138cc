"""What `minichat safety check` and `minichat safety train` call (the CLI itself lives in minichat/cli.py).

    cli_check(texts)  -> one JSON-ready dict per text: allowed, action, category, layer, score, threshold, policy,
                         reason, classifier (never the text itself); guard= another guard (the semantic one)
    cli_train(out)    -> rebuilds the classifier's weights from the shipped training set; returns a summary dict;
                         embedder= rebuilds the semantic probe (semantic.npz) instead
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from minichat.safety.classifier import TRAIN_SET, WEIGHTS, train_classifier, training_pairs
from minichat.safety.guard import Guard
from minichat.safety.semantic import Embedder

CHECK_KEYS = ("allowed", "action", "category", "layer", "score", "threshold", "policy", "reason", "classifier")


def cli_check(texts: Iterable[str], policy: str | Path | None = None, guard: Guard | None = None) -> list[dict]:
    """One verdict dict per input text (the input layer), in order; `guard` (e.g. chat.guards.build_guard's, with
    the semantic classifier) instead of the default guard with `policy`'s actions."""
    guard = guard if guard is not None else Guard(policy)
    out = []
    for text in texts:
        v = guard.check_input(text).to_json()
        out.append({k: v[k] for k in CHECK_KEYS})
    return out


def cli_train(out: str | Path | None = None, embedder: Embedder | None = None) -> dict:
    """Train on minichat/safety/train_set.tsv plus the generator's training split (train_gen.py) and write the
    weights (default: the package's classifier.npz; with an `embedder`, e.g. chat.guards.smollm2_embedder(), the
    semantic probe's semantic.npz). A few minutes (the semantic probe: ~10 minutes the first time, to embed the
    texts; seconds from the feature cache)."""
    if embedder is not None:
        from minichat.safety import semantic as S
        path = Path(out) if out is not None else S.WEIGHTS
        probe = S.train_semantic(embedder, path)
        return {"weights": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                "features": int(probe.W.shape[0]), "layers": list(probe.layers), "classes": list(probe.classes)}
    path = Path(out) if out is not None else WEIGHTS
    model = train_classifier(TRAIN_SET, path)
    pairs = training_pairs(TRAIN_SET)
    correct = sum((model.score(t)[0] >= 0.5) == (label != "benign") for label, t in pairs)
    return {"weights": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "examples": len(pairs),
            "train_accuracy": round(correct / len(pairs), 4), "features": int(model.W.shape[0]),
            "classes": list(model.classes)}
