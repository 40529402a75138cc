"""The input classifier: multinomial logistic regression over hashed character n-grams, trained by minichat in NumPy.

A message is normalised (normalize.py), then turned into a sparse vector of counts:

    " how to make a bomb "  ->  char 3..5-grams " ho", "how", "ow ", ...  +  words "how", "make", ...  +  word pairs
    each feature string -> crc32 -> bucket (low bits) and sign (top bit)       (the hashing trick, Weinberger 2009)
    counts -> log(1 + count), then the row is scaled to unit length

Character n-grams make the model robust to spelling it has not seen ("bomb", "bombs", "b0mbing" after
normalisation share most pieces); the signed hash keeps the table small without a vocabulary file.

The model is softmax regression: p = softmax(x W + b), W (F, K) float32, K = 1 + number of categories
(policy.CLASSES). The score shown in a verdict is P(harmful) = 1 - p[benign], compared with the policy's threshold;
the category is the most likely harmful class. Training is full-batch Adam on the class-balanced cross-entropy with
an L2 penalty, from zeros, so `train_classifier` is deterministic: the same training file gives the same weights
(`minichat safety train` rebuilds classifier.npz, and a test checks it reproduces the shipped one).

What it leaves out: word embeddings or a transformer encoder (a stronger but much larger model), calibration of
the probabilities, and any context beyond one message.
"""
from __future__ import annotations

import hashlib
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minichat.errors import MinichatError
from minichat.safety.lexicon import GROUPS as GROUP_ORDER, group_hits
from minichat.safety.normalize import normalize
from minichat.safety.policy import CLASSES
from minichat.safety.sparse import SparseRows

HERE = Path(__file__).resolve().parent
TRAIN_SET = HERE / "train_set.tsv"
WEIGHTS = HERE / "classifier.npz"
N_FEATURES = 1 << 14  # F: hash buckets (16384 x 11 classes x 4 bytes = 720 KB of weights; 8192 underfit the
#                       generated training data: 94 % training recall against 99 % with 16384)
CHAR_NGRAMS = (3, 4, 5)
HAND_SHARE = 0.5  # of each class's training weight, the share of the hand-written lines (the rest: generated ones)
LEXICON_WEIGHT = 6.0  # word-group features count this much more than one n-gram (there are few of them, many n-grams)
# Request frames a topic line's {how} / {write} expands into: the same frames carry harmful and benign topics, so
# the words of the frame cannot decide the class.
FRAMES = {
    "how": ("how do I {}", "how can I {}", "how to {}", "give detailed instructions for how to {}",
            "explain step by step how to {}", "what is the easiest way to {}", "write a guide on how to {}",
            "tell me how to {}", "I need to know how to {}", "give me a detailed tutorial to {}"),
    "write": ("write {}", "draft {}", "generate {}", "please create {}", "compose {}", "give me {}"),
}


class ClassifierError(MinichatError, ValueError):
    """A training file or a weights file that cannot be used."""


def feature_strings(normalised: str) -> list[str]:
    """The features of one normalised message, as strings (before hashing); a prefix keeps the kinds apart.

    >>> feature_strings("hi there")[:3], feature_strings("hi there")[-3:]
    (['c: hi', 'c:hi ', 'c:i t'], ['w:hi', 'w:there', 'b:hi there'])
    """
    s = f" {normalised} "
    out = [f"c:{s[i:i + n]}" for n in CHAR_NGRAMS for i in range(len(s) - n + 1)]
    words = normalised.split()
    out += [f"w:{w}" for w in words]
    out += [f"b:{a} {b}" for a, b in zip(words, words[1:])]
    return out


def group_features(normalised: str) -> list[str]:
    """Word-group features (lexicon.py): one per group hit, and one per pair of groups that occur together, so the
    linear model can weigh "hurt" with "person" differently from "hurt" alone.

    >>> group_features("how do i hurt my neighbour")
    ['x:hurt', 'x:person', 'x:hurt&person']
    """
    groups = sorted(group_hits(normalised), key=list(GROUP_ORDER).index)
    return [f"x:{g}" for g in groups] + [f"x:{a}&{b}" for i, a in enumerate(groups) for b in groups[i + 1:]]


def featurize(text: str, n_features: int = N_FEATURES) -> tuple[np.ndarray, np.ndarray]:
    """(bucket indices (n,) int64, values (n,) float32) of one message: signed log-counts, unit length."""
    normalised = normalize(text)
    counts: dict[int, float] = {}
    boost: dict[int, float] = {}
    for weight, strings in ((1.0, feature_strings(normalised)), (LEXICON_WEIGHT, group_features(normalised))):
        for f in strings:
            h = zlib.crc32(f.encode("utf-8"))
            idx, sign = h % n_features, (1.0 if h >> 31 else -1.0)
            counts[idx] = counts.get(idx, 0.0) + sign
            boost[idx] = max(boost.get(idx, 1.0), weight)
    idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))  # (n,)
    raw = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))  # (n,)
    scale = np.fromiter(boost.values(), dtype=np.float32, count=len(boost))  # (n,)
    val = np.sign(raw) * np.log1p(np.abs(raw)) * scale  # (n,) signed log-count: a repeated word does not dominate
    norm = np.float32(np.sqrt(np.sum(val * val))) or np.float32(1.0)
    return idx, (val / norm).astype(np.float32)


def _batch(texts: list[str], n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR-style: (indices (nnz,), values (nnz,), row of each entry (nnz,))."""
    parts = [featurize(t, n_features) for t in texts]
    idx = np.concatenate([p[0] for p in parts])  # (nnz,)
    val = np.concatenate([p[1] for p in parts])  # (nnz,)
    rows = np.repeat(np.arange(len(parts)), [len(p[0]) for p in parts])  # (nnz,)
    return idx, val, rows


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class Classifier:
    W: np.ndarray  # (F, K) float32
    b: np.ndarray  # (K,) float32
    classes: tuple[str, ...]

    def probabilities(self, text: str) -> dict[str, float]:
        idx, val = featurize(text, self.W.shape[0])
        z = (val @ self.W[idx] if len(idx) else np.zeros(len(self.classes), np.float32)) + self.b  # (K,)
        p = _softmax(z.astype(np.float32))
        return {c: float(p[i]) for i, c in enumerate(self.classes)}

    def score(self, text: str) -> tuple[float, str]:
        """(P(harmful) = 1 - P(benign), the most likely harmful category).

        A long message is also scored in windows and the highest score wins: one harmful request at the end of
        pages of harmless text would otherwise be diluted (each row is scaled to unit length) below the threshold.
        """
        best = self._score_one(text)
        if len(text) > LONG:
            for window in dict.fromkeys(windows(text)):  # a repeated sentence is scored once
                best = max(best, self._score_one(window))
        return best

    def probability(self, text: str, cls: str) -> float:
        """P(cls) for the text, the highest over its sentences and windows when it is long (as `score` does)."""
        pieces = [text] + (list(dict.fromkeys(windows(text))) if len(text) > LONG else [])
        return max(self.probabilities(piece)[cls] for piece in pieces)

    def _score_one(self, text: str) -> tuple[float, str]:
        p = self.probabilities(text)
        category = max((c for c in self.classes if c != "benign"), key=p.__getitem__)
        return 1.0 - p["benign"], category


def expand(text: str) -> list[str]:
    """A topic line's texts: '{how} make pancakes' -> 'how do I make pancakes', 'how can I make pancakes', ..."""
    for key, frames in FRAMES.items():
        mark = "{" + key + "} "
        if text.startswith(mark):
            return [frame.format(text[len(mark):]) for frame in frames]
    return [text]


LONG = 400  # messages longer than this many characters are also scored in windows
WINDOW, STEP = 300, 200  # characters per window, and between window starts (windows overlap by 100)
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def windows(text: str) -> list[str]:
    """The sentences of a long text (20 characters or more), then overlapping pieces of it, each cut at a space
    so no word is split (where there is one). A request padded with harmless sentences is one sentence; a request
    without sentence breaks still lands in some window with little else."""
    out = [s for s in _SENTENCE.split(text) if len(s.strip()) >= 20]
    start = 0
    while start < len(text):
        end = min(len(text), start + WINDOW)
        if end < len(text) and " " in text[start + WINDOW // 2:end]:
            end = text.rindex(" ", start + WINDOW // 2, end)
        out.append(text[start:end])
        if end == len(text):
            break
        nxt = start + STEP
        start = text.find(" ", nxt, end) + 1 or nxt
    return out


def read_labelled(path: Path) -> list[tuple[str, str]]:
    """(class, text) pairs of a TSV file, topic lines not yet expanded; '#' lines are comments."""
    pairs = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in CLASSES or not text.strip():
            raise ClassifierError(f"{path}:{n}: expected '<class>\\t<text>' with a class in {', '.join(CLASSES)}")
        pairs.append((label, text.strip()))
    return pairs


def loss_and_grads(W: np.ndarray, b: np.ndarray, batch: tuple[np.ndarray, np.ndarray, np.ndarray] | SparseRows,
                   Y: np.ndarray, sample_w: np.ndarray, l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Weighted softmax cross-entropy, mean over the n rows, plus l2/2 * |W|^2; and its gradients.

    W (F, K), b (K,), batch = sparse rows (indices, values, row ids), or those laid out once as a SparseRows (what
    training does: the layout is the same for every step), Y (n, K) one-hot, sample_w (n,).
    The gradient of cross-entropy after a softmax is (P - Y) per row (the softmax's Jacobian and the log's
    1/p cancel); through the sparse product it lands on the W rows of the buckets each message touches.
    """
    n = Y.shape[0]
    X = batch if isinstance(batch, SparseRows) else SparseRows(*batch, n=n, n_features=W.shape[0])
    # x W + b per message: its buckets' weight rows, scaled by the values and summed (in float64, as np.bincount
    # sums; sparse.py keeps that order so the weights come out the same to the bit)
    P = _softmax(X.dot(W).astype(np.float32) + b)  # (n, K)
    loss = float(np.sum(sample_w * -np.log(np.sum(P * Y, axis=1) + 1e-30)) / n + 0.5 * l2 * np.sum(W * W))
    G = (P - Y) * sample_w[:, None] / np.float32(n)  # (n, K) d(loss)/d(logits)
    # d(loss)/dW = X^T G: every entry (row r, bucket j, value v) adds v * G[r] to W's row j
    gW = X.tdot(G).astype(np.float32) + np.float32(l2) * W  # (F, K)
    gb = G.sum(axis=0)  # (K,)
    return loss, gW, gb


def adam_step(params: tuple[np.ndarray, ...], grads: tuple[np.ndarray, ...], state: list, t: int, lr: float,
              b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> None:
    """One Adam update in place (Kingma & Ba 2015, bias-corrected; the L2 term is already in the gradient, as in
    torch.optim.Adam's weight_decay)."""
    b1, b2, eps = np.float32(b1), np.float32(b2), np.float32(eps)
    for p_, g, (m, v) in zip(params, grads, state):
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        p_ -= np.float32(lr) * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def training_pairs(train_path: str | Path = TRAIN_SET, generated: bool = True) -> list[tuple[str, str]]:
    """(class, text) of the hand-written file, topic lines expanded, plus (unless generated=False) the training
    split of the compositional generator (train_gen.py; its held-out frames and families are never included)."""
    pairs = [(label, t) for label, text in read_labelled(Path(train_path)) for t in expand(text)]
    if generated:
        from minichat.safety.train_gen import generate
        pairs += generate("train")
    return pairs


def sample_weights(y: np.ndarray, n_hand: int, K: int) -> np.ndarray:
    """(n,) float32 weight of each training example (y (n,) class ids; the first n_hand are hand-written).
    Shared with the semantic probe (semantic.py), which trains on the same examples."""
    n = len(y)
    # balanced weights: benign carries half the total and the harmful classes share the other half in proportion
    # to the square root of their sizes: 50 examples of a rare class are not drowned out, yet one example of a big
    # class (thousands of generated illicit requests) does not weigh a tenth of a benign one either
    counts = np.maximum(np.bincount(y, minlength=K), 1).astype(np.float32)  # (K,)
    root = np.sqrt(counts) * (np.bincount(y, minlength=K) > 0)  # (K,)
    share = (0.5 * root / root[1:].sum()).astype(np.float32)
    share[0] = 0.5
    sample_w = (n * share / counts)[y].astype(np.float32)  # (n,)
    # within a class, the hand-written lines and the generated ones carry HAND_SHARE and 1 - HAND_SHARE of its
    # weight: thousands of generated requests must not drown the few hundred hand-written chat-domain lines
    hand = np.arange(n) < n_hand  # (n,)
    for k in range(K):
        h, g = np.sum(hand & (y == k)), np.sum(~hand & (y == k))
        if h and g:
            sample_w[hand & (y == k)] *= np.float32(HAND_SHARE * (h + g) / h)
            sample_w[~hand & (y == k)] *= np.float32((1 - HAND_SHARE) * (h + g) / g)
    return sample_w


def train_classifier(train_path: str | Path = TRAIN_SET, out: str | Path | None = WEIGHTS, steps: int = 200,
                     lr: float = 0.1, l2: float = 3e-5, n_features: int = N_FEATURES,
                     generated: bool = True) -> Classifier:
    """Fit the classifier on a labelled TSV file (plus the generator's training split unless generated=False);
    write the weights to `out` (.npz) unless it is None."""
    pairs = training_pairs(train_path, False)
    n_hand = len(pairs)
    if generated:
        pairs += training_pairs(train_path, True)[n_hand:]
    if len({label for label, _ in pairs}) < 2:
        raise ClassifierError(f"{train_path}: training needs examples of at least two classes")
    K = len(CLASSES)
    y = np.array([CLASSES.index(label) for label, _ in pairs])  # (n,)
    n = len(pairs)
    X = SparseRows(*_batch([text for _, text in pairs], n_features), n=n, n_features=n_features)  # laid out once
    sample_w = sample_weights(y, n_hand, K)  # (n,)
    Y = np.eye(K, dtype=np.float32)[y]  # (n, K) one-hot
    W = np.zeros((n_features, K), dtype=np.float32)
    b = np.zeros(K, dtype=np.float32)
    state = [(np.zeros_like(W), np.zeros_like(W)), (np.zeros_like(b), np.zeros_like(b))]  # Adam's m, v per tensor
    for t in range(1, steps + 1):
        _, gW, gb = loss_and_grads(W, b, X, Y, sample_w, l2)
        adam_step((W, b), (gW, gb), state, t, lr)
    model = Classifier(W, b, CLASSES)
    if out is not None:
        digest = hashlib.sha256(Path(train_path).read_bytes()).hexdigest()
        every = hashlib.sha256("".join(f"{label}\t{t}\n" for label, t in pairs).encode("utf-8")).hexdigest()
        np.savez_compressed(out, W=W, b=b, classes=np.array(CLASSES), train_sha256=np.array(digest),
                            examples_sha256=np.array(every), steps=np.array(steps))
    return model


_LOADED: dict[str, Classifier] = {}


def load_classifier(path: str | Path = WEIGHTS) -> Classifier:
    """The weights shipped in the package (or another .npz written by train_classifier), cached after first use."""
    key = str(Path(path).resolve())
    if key not in _LOADED:
        try:
            with np.load(path) as z:
                W, b, classes = z["W"].astype(np.float32), z["b"].astype(np.float32), tuple(z["classes"].tolist())
        except (OSError, KeyError, ValueError) as e:
            raise ClassifierError(f"cannot load classifier weights from {path} ({e}); rebuild them with "
                                  f"`minichat safety train`") from None
        if classes != CLASSES or W.shape[1] != len(CLASSES):
            raise ClassifierError(f"{path} was trained for classes {classes}, this minichat has {CLASSES}; "
                                  f"rebuild it with `minichat safety train`")
        _LOADED[key] = Classifier(W, b, classes)
    return _LOADED[key]
