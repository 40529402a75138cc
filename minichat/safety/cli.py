"""What `minichat safety check` and `minichat safety train` call (the CLI itself lives in minichat/cli.py).

    cli_check(texts)  -> one JSON-ready dict per text: allowed, action, category, layer, score, threshold, policy,
                         reason (never the text itself)
    cli_train(out)    -> rebuilds the classifier's weights from the shipped training set; returns a summary dict
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from minichat.safety.classifier import TRAIN_SET, WEIGHTS, train_classifier, training_pairs
from minichat.safety.guard import Guard

CHECK_KEYS = ("allowed", "action", "category", "layer", "score", "threshold", "policy", "reason")


def cli_check(texts: Iterable[str], policy: str | Path | None = None) -> list[dict]:
    """One verdict dict per input text (the input layer), in order."""
    guard = Guard(policy)
    out = []
    for text in texts:
        v = guard.check_input(text).to_json()
        out.append({k: v[k] for k in CHECK_KEYS})
    return out


def cli_train(out: str | Path | None = None) -> dict:
    """Train on minichat/safety/train_set.tsv plus the generator's training split (train_gen.py) and write the
    weights (default: the package's classifier.npz). A few minutes."""
    path = Path(out) if out is not None else WEIGHTS
    model = train_classifier(TRAIN_SET, path)
    pairs = training_pairs(TRAIN_SET)
    correct = sum((model.score(t)[0] >= 0.5) == (label != "benign") for label, t in pairs)
    return {"weights": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "examples": len(pairs),
            "train_accuracy": round(correct / len(pairs), 4), "features": int(model.W.shape[0]),
            "classes": list(model.classes)}
