"""BM25 ranking (Okapi BM25, the ATIRE-style idf floor of `rank_bm25.BM25Okapi`), written by hand in NumPy.

BM25 scores a document d for a query q as a sum over the query's terms t (a repeated query term counts again):

    score(d) = sum_t  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

    tf(t, d)  how often t occurs in d        |d| its length in tokens      avgdl  the mean length over the corpus
    k1        how quickly repeats saturate   b   how much long documents are discounted (0 = not at all, 1 = fully)
    idf(t)    log(N - n_t + 0.5) - log(n_t + 0.5)      N documents, n_t of them contain t

Robertson's idf goes negative for a term in more than half the documents. `rank_bm25.BM25Okapi` (the reference
this module follows, to 1e-9; the tests compare against it) replaces each negative idf by a floor
`epsilon * mean(idf over the vocabulary)`. Worked example, k1 = 1.5, b = 0.75, epsilon = 0.25:

    corpus  ["tea", "green"], ["coffee"], ["water"]          N = 3, avgdl = 4/3
    idf     tea, green, coffee, water: log(2.5) - log(1.5) = 0.5108 each (n_t = 1)
    query   ["tea"]: document 0 has |d| = 2, so its denominator is 1 + 1.5 * (0.25 + 0.75 * 2 / (4/3)) = 3.0625
            score = 0.5108 * 2.5 / 3.0625 = 0.4170; documents 1 and 2 score 0

Small-corpus policy (a departure from BM25Okapi, on purpose). With one document every term has n_t = N, so its idf
is log(0.5) - log(1.5) < 0, the floor is negative too, and a matching document scores *below* a non-matching one.
With two documents a term in one of them gets idf = log(1.5) - log(1.5) = 0: a match is worth nothing. A memory
store starts with one or two entries, so for N < 3 this module uses the always-positive idf of Lucene (and BM25+),
`log(1 + (N - n_t + 0.5) / (n_t + 0.5))`, which still ranks a rarer term above a commoner one. From N = 3 on it is
BM25Okapi exactly, including the negative floor it gives a corpus where most words are in most documents.

The index is inverted (term -> the documents containing it, with counts), so scoring touches only the documents
that share a term with the query: O(matches), where rank_bm25 walks every document for every query term.

What it leaves out: stemming, stop words, phrase queries, adding documents to a built index (rebuild it instead).
The tokenizer is deliberately plain (lowercased runs of Unicode letters, digits and underscores); callers wanting
the same ranking as rank_bm25 pass it the same token lists.
"""
from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

_WORD = re.compile(r"\w+")
SMALL_CORPUS = 3  # below this many documents the small-corpus idf applies (see the module docstring)


def tokenize(text: str) -> list[str]:
    """Lowercased word tokens: `"Tea, NOT coffee!" -> ["tea", "not", "coffee"]`."""
    if not isinstance(text, str):
        raise TypeError(f"tokenize expects a str, not {type(text).__name__}")
    return _WORD.findall(text.lower())


def _check_tokens(tokens, what: str) -> None:
    # A bare string is iterable too and would silently be scored character by character: refuse it.
    if isinstance(tokens, str) or not isinstance(tokens, Sequence):
        raise TypeError(f"{what} must be a list of token strings (use bm25.tokenize(text)), not "
                        f"{type(tokens).__name__}")
    for t in tokens:
        if not isinstance(t, str):
            raise TypeError(f"{what} must contain only str tokens, found {type(t).__name__} {t!r}")


class BM25:
    """An inverted BM25 index over a fixed corpus of token lists.

    >>> index = BM25([["tea", "green"], ["coffee"], ["water"]])
    >>> [round(float(s), 4) for s in index.scores(["tea"])]
    [0.417, 0.0, 0.0]
    """

    def __init__(self, corpus: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75,
                 epsilon: float = 0.25) -> None:
        if type(corpus) not in (list, tuple) and (isinstance(corpus, str) or not isinstance(corpus, Sequence)):
            raise TypeError(f"corpus must be a list of token lists, not {type(corpus).__name__}")
        for i, doc in enumerate(corpus):  # the tokens themselves are checked once per distinct term, below
            if type(doc) not in (list, tuple) and (isinstance(doc, str) or not isinstance(doc, Sequence)):
                raise TypeError(f"corpus[{i}] must be a list of token strings (use bm25.tokenize(text)), not "
                                f"{type(doc).__name__}")
        if not (math.isfinite(k1) and k1 >= 0):
            raise ValueError(f"k1 must be a finite number >= 0 (1.2-2.0 is usual), not {k1!r}")
        if not (0.0 <= b <= 1.0):
            raise ValueError(f"b must lie in [0, 1] (0.75 is usual), not {b!r}")
        if not math.isfinite(epsilon):
            raise ValueError(f"epsilon must be a finite number, not {epsilon!r}")
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self.n_docs = len(corpus)

        # Every token of the corpus in one list, with its document's number. Term ids follow first appearance in the
        # corpus, on purpose: the mean idf is then summed in the order rank_bm25 sums it (its dict's insertion
        # order), so the floor matches to the last bit. The per-token work runs in C (extend, dict.fromkeys, map).
        tokens: list[str] = []  # (T,)
        lengths = []
        for doc in corpus:
            tokens.extend(doc)
            lengths.append(len(doc))
        self.doc_len = np.array(lengths, dtype=np.int64)  # (N,)
        self.avgdl = len(tokens) / self.n_docs if self.n_docs else 0.0
        try:
            vocab = {t: j for j, t in enumerate(dict.fromkeys(tokens))}  # term -> id, by first appearance
        except TypeError:
            raise TypeError("the corpus must contain only str tokens (found an unhashable one)") from None
        for t in vocab:
            if not isinstance(t, str):
                bad = next(i for i, d in enumerate(corpus) if t in d)
                raise TypeError(f"corpus[{bad}] must contain only str tokens, found {type(t).__name__} {t!r}")
        self.vocab = vocab

        # The inverted index: count each (term, document) pair by sorting their combined keys; sorted by term, then
        # document. Term j's postings are docs[start[j]:start[j + 1]], with its counts in tf[...] alike.
        n = max(self.n_docs, 1)
        tid = np.fromiter(map(vocab.__getitem__, tokens), dtype=np.int64, count=len(tokens))  # (T,)
        did = np.repeat(np.arange(self.n_docs, dtype=np.int64), self.doc_len)  # (T,)
        pairs, tf = np.unique(tid * n + did, return_counts=True)  # (P,), (P,) distinct (term, document) pairs
        self._docs = pairs % n  # (P,)
        self._tf = tf.astype(np.float64)  # (P,)
        df = np.bincount(pairs // n, minlength=len(vocab))  # (V,) documents containing each term
        self._start = np.concatenate(([0], np.cumsum(df))).tolist()  # (V + 1,) Python ints: fast slicing

        self.idf = self._idf(dict(zip(vocab, df.tolist())))
        self._idf_by_id = [self.idf[t] for t in vocab]  # (V,) the same values, by term id
        # The length-normalisation part of each document's denominator, computed once, in rank_bm25's operation
        # order (b * |d| first, then / avgdl) so the floats agree. An all-empty corpus has avgdl 0: nothing can
        # match, so any finite value will do.
        if self.avgdl > 0:
            self._norm = self.k1 * (1 - self.b + self.b * self.doc_len / self.avgdl)  # (N,)
        else:
            self._norm = np.full(self.n_docs, self.k1, dtype=np.float64)

    def _idf(self, df: dict[str, int]) -> dict[str, float]:
        n = self.n_docs
        if n < SMALL_CORPUS:  # the small-corpus policy: Lucene's idf, positive for every term
            return {t: math.log(1 + (n - f + 0.5) / (f + 0.5)) for t, f in df.items()}
        idf, total, negative = {}, 0.0, []
        for t, f in df.items():
            value = math.log(n - f + 0.5) - math.log(f + 0.5)
            idf[t] = value
            total += value
            if value < 0:  # strictly below zero, as BM25Okapi: an idf of exactly 0 is kept
                negative.append(t)
        floor = self.epsilon * (total / len(idf)) if idf else 0.0
        for t in negative:
            idf[t] = floor
        return idf

    def scores(self, query_tokens: Sequence[str]) -> np.ndarray:
        """The BM25 score of every document for the query: (N,) float64. Unknown terms add nothing."""
        _check_tokens(query_tokens, "query_tokens")
        score = np.zeros(self.n_docs, dtype=np.float64)  # (N,)
        k1p1 = self.k1 + 1
        for t in query_tokens:  # in query order, repeats included, so the per-document sums add up as rank_bm25's
            j = self.vocab.get(t)
            if j is None:
                continue
            a, b = self._start[j], self._start[j + 1]
            docs, tf = self._docs[a:b], self._tf[a:b]  # (M,), (M,) the documents containing t, and t's count there
            score[docs] += self._idf_by_id[j] * (tf * k1p1 / (tf + self._norm[docs]))
        return score

    def top_k(self, query_tokens: Sequence[str], k: int) -> list[tuple[int, float]]:
        """The k best (document index, score) pairs, best first; equal scores in index order.

        Every document is a candidate, including those scoring 0 or below (a caller wanting only matches filters
        on score > 0). rank_bm25's get_top_n breaks ties in an unspecified order; this one is deterministic.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be a non-negative integer, not {k!r}")
        s = self.scores(query_tokens)  # (N,)
        k = min(k, self.n_docs)
        if k == 0:
            return []
        # lexsort's last key is primary: score descending, then index ascending. Only the k best are sorted when
        # the corpus is large: argpartition finds a threshold, and ties at the threshold are all kept.
        if k < self.n_docs // 4:
            kth = -np.partition(-s, k - 1)[k - 1]
            cand = np.flatnonzero(s >= kth)  # (>= k,)
        else:
            cand = np.arange(self.n_docs)
        order = cand[np.lexsort((cand, -s[cand]))][:k]
        return [(int(i), float(s[i])) for i in order]
