"""Checkers for notebook 05's memory half: write BM25's two parts yourself, then compare with minichat.bm25.

    check_bm25_idf(fn)     fn(corpus, epsilon) -> {term: idf}, BM25Okapi's idf with its floor (corpora of >= 3 docs)
    check_bm25_score(fn)   fn(query, doc, idf, avgdl, k1, b) -> the BM25 score of one document

The rules (those of `rank_bm25.BM25Okapi`, which minichat.bm25 matches to 1e-9 from 3 documents on):
  * idf(t) = log(N - n_t + 0.5) - log(n_t + 0.5), where n_t counts the *documents* containing t (not occurrences);
  * every idf strictly below 0 is replaced by epsilon * (the mean of all the raw idfs, negative ones included);
    an idf of exactly 0 stays 0;
  * score = sum over the query's terms, a repeated query term counting again, of
    idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(doc) / avgdl)), tf being t's count in the document;
    a term missing from `idf` (never seen in the corpus) adds nothing.

Reference: `minichat.bm25.BM25` (its `.idf` dict and `.scores(query)`). The small-corpus policy (N < 3, where
BM25Okapi's idf gives a match no or negative weight) is minichat's own choice, and not part of the exercise.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from minichat.bm25 import BM25, tokenize
from minichat.exercises import Feedback, _short, run_cases

_WORDS = ["tea", "green", "coffee", "water", "dog", "cat", "porto", "lisbon", "likes", "the", "user", "is"]

_CORPORA: list[tuple[str, list[str]]] = [
    ("the worked example", ["tea green", "coffee", "water"]),
    ("a word in most documents (negative idf, floored)",
     ["the user likes tea", "the user likes coffee", "the user has a dog", "a cat"]),
    ("a word in exactly half (idf 0 stays 0)", ["tea green", "tea", "coffee", "water"]),
    ("repeats inside a document count once for n_t", ["tea tea tea", "coffee", "water", "tea"]),
    ("memories", ["The user's favourite tea is green tea.", "The user is learning Portuguese.",
                  "The user's dog is called Biscuit.", "The user lives in Porto.", "The user likes long walks."]),
]


def _random_corpus(rng: np.random.Generator) -> list[list[str]]:
    n = int(rng.integers(3, 8))
    return [[str(w) for w in rng.choice(_WORDS[: int(rng.integers(3, len(_WORDS) + 1))], size=int(rng.integers(1, 7)))]
            for _ in range(n)]


def _same_idf(got: object, want: Mapping[str, float]) -> bool:
    if not isinstance(got, Mapping) or set(got) != set(want):
        return False
    try:
        return all(math.isclose(float(got[t]), want[t], rel_tol=1e-9, abs_tol=1e-12) for t in want)
    except (TypeError, ValueError):
        return False


def check_bm25_idf(fn: Callable[[list[list[str]], float], dict], seed: int = 0) -> Feedback:
    """idf of every term of the corpus, with BM25Okapi's floor for negative ones."""
    rng = np.random.default_rng(seed)
    cases = [(name, [tokenize(d) for d in docs], 0.25) for name, docs in _CORPORA]
    cases.append(("epsilon 0.5", [tokenize(d) for d in _CORPORA[1][1]], 0.5))
    cases += [(f"random {i}", _random_corpus(rng), 0.25) for i in range(8)]
    return run_cases("bm25_idf", fn, [(f"{name}: {_short(c, 60)}", ([list(d) for d in c], eps),
                                       dict(BM25(c, epsilon=eps).idf)) for name, c, eps in cases], same=_same_idf)


def check_bm25_score(fn: Callable[[Sequence[str], Sequence[str], Mapping[str, float], float, float, float], float],
                     seed: int = 0) -> Feedback:
    """One document's BM25 score for a query, given the corpus's idf and mean document length."""
    rng = np.random.default_rng(seed)
    setups = [(name, [tokenize(d) for d in docs]) for name, docs in _CORPORA]
    queries = [["tea"], ["tea", "tea"], ["green", "tea"], ["biscuit", "dog"], ["user"], ["unknown", "tea"], []]
    cases = []
    for name, corpus in setups:
        for query in queries[: 4 if name != "memories" else len(queries)]:
            cases.append((name, corpus, query, 1.5, 0.75))
    memories = setups[-1][1]
    cases += [("b = 0: no length normalisation", memories, ["user", "tea"], 1.5, 0.0),
              ("b = 1: full length normalisation", memories, ["user", "tea"], 1.5, 1.0),
              ("k1 = 0: a match counts once, however often", memories, ["tea"], 0.0, 0.75),
              ("k1 = 3", memories, ["tea", "porto"], 3.0, 0.75)]
    for i in range(8):
        corpus = _random_corpus(rng)
        query = [str(w) for w in rng.choice(_WORDS, size=int(rng.integers(1, 4)))]
        cases.append((f"random {i}", corpus, query, float(rng.choice([1.2, 1.5, 2.0])),
                      float(rng.choice([0.5, 0.75, 1.0]))))
    out = []
    for name, corpus, query, k1, b in cases:
        index = BM25(corpus, k1=k1, b=b)
        d = int(rng.integers(0, len(corpus)))
        want = float(index.scores(query)[d])
        label = f"{name}: query {query} doc {corpus[d]} k1={k1} b={b}"
        out.append((label, (list(query), list(corpus[d]), dict(index.idf), index.avgdl, k1, b), want))

    def same(got: object, want: float) -> bool:
        try:
            return math.isclose(float(got), want, rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False

    return run_cases("bm25_score", fn, out, same=same)
