"""minichat.bm25 against rank_bm25.BM25Okapi (peer) on hypothesis corpora, plus hand-worked values and the
small-corpus policy (1-2 documents), top-k ordering and input validation."""
from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import require_peer
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minichat.bm25 import BM25, tokenize

# A small vocabulary so that terms repeat across documents: both positive and negative (floored) idfs occur.
VOCAB = ["tea", "coffee", "green", "milk", "sugar", "cake", "i", "like", "x", "yy"]
terms = st.sampled_from(VOCAB)
corpora = st.lists(st.lists(terms, max_size=12), min_size=3, max_size=40).filter(
    lambda c: any(c))  # rank_bm25 divides by zero on a corpus whose documents are all empty
queries = st.lists(st.one_of(terms, st.sampled_from(["unknown", "zz"])), max_size=8)
# k1 = 0 is left out of the comparison: rank_bm25 then computes 0 / 0 = nan for documents without the term (ours: 0,
# see test_k1_zero_is_binary); so is b = 1 with an empty document (its denominator is 0 + 1.5 * 0 there too).
params = st.tuples(st.sampled_from([0.5, 1.2, 1.5, 2.0]), st.sampled_from([0.0, 0.3, 0.75, 1.0]),
                   st.sampled_from([0.0, 0.25, 0.5]))


@settings(max_examples=300, deadline=None)
@given(corpus=corpora, query=queries, kbe=params)
def test_equals_rank_bm25(corpus, query, kbe):
    rank_bm25 = require_peer("rank_bm25")
    k1, b, eps = kbe
    assume(b < 1 or all(corpus))
    ref = rank_bm25.BM25Okapi(corpus, k1=k1, b=b, epsilon=eps).get_scores(query)
    ours = BM25(corpus, k1=k1, b=b, epsilon=eps).scores(query)
    assert ours.dtype == np.float64 and ours.shape == (len(corpus),)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(corpus=corpora, query=queries)
def test_idf_and_floor_equal_rank_bm25(corpus, query):
    rank_bm25 = require_peer("rank_bm25")
    ref = rank_bm25.BM25Okapi(corpus)
    ours = BM25(corpus)
    assert ours.idf.keys() == ref.idf.keys()
    for t in ref.idf:
        assert ours.idf[t] == pytest.approx(ref.idf[t], abs=1e-12)
    assert ours.avgdl == ref.avgdl


def test_rank_bm25_on_real_sentences():
    rank_bm25 = require_peer("rank_bm25")
    docs = ["The user prefers green tea in the morning", "The user's dog is called Biscuit",
            "Project Falcon ships in March", "The user is allergic to peanuts", "Prefers metric units",
            "Lives in Lyon, France", "Works on the Falcon project with Ana", "Drinks coffee after lunch"]
    corpus = [tokenize(d) for d in docs]
    for q in ["what tea does the user like", "falcon project deadline", "the the the", "dog", "nothing here"]:
        np.testing.assert_allclose(BM25(corpus).scores(tokenize(q)),
                                   rank_bm25.BM25Okapi(corpus).get_scores(tokenize(q)), rtol=0, atol=1e-9)


def test_hand_worked_example():
    # corpus ["tea","green"], ["coffee"], ["water"]: N = 3, avgdl = 4/3, each term in one document:
    # idf = log(2.5) - log(1.5) = 0.5108; document 0: tf 1, |d| 2, denominator 1 + 1.5 (0.25 + 0.75 * 1.5) = 3.0625
    index = BM25([["tea", "green"], ["coffee"], ["water"]])
    assert index.avgdl == pytest.approx(4 / 3)
    assert index.idf["tea"] == pytest.approx(0.5108256, abs=1e-7)
    s = index.scores(["tea"])
    assert s[0] == pytest.approx(0.5108256 * 2.5 / 3.0625, abs=1e-7) and s[0] == pytest.approx(0.41700, abs=1e-5)
    assert s[1] == s[2] == 0.0
    # "coffee" in a one-token document: denominator 1 + 1.5 (0.25 + 0.75 * 0.75) = 2.21875, score 0.5756
    assert index.scores(["coffee"])[1] == pytest.approx(0.5108256 * 2.5 / 2.21875, abs=1e-7)
    # a repeated query term counts twice, as in BM25Okapi
    np.testing.assert_allclose(index.scores(["tea", "tea"]), 2 * s, rtol=0, atol=1e-15)


def test_hand_worked_negative_idf_floor():
    # "a" is in all 3 documents: idf = log(0.5) - log(3.5) = -1.9459 < 0, floored to
    # 0.25 * mean(-1.9459, 0.5108, 0.5108, 0.5108) = -0.02584; every length is 2 = avgdl, so tf * 2.5 / 2.5 = 1
    index = BM25([["a", "b"], ["a", "c"], ["a", "d"]])
    floor = 0.25 * ((math.log(0.5) - math.log(3.5)) + 3 * (math.log(2.5) - math.log(1.5))) / 4
    assert floor == pytest.approx(-0.0258396, abs=1e-7)
    np.testing.assert_allclose(index.scores(["a"]), [floor] * 3, rtol=0, atol=1e-15)
    np.testing.assert_allclose(index.scores(["b", "a"]), [0.5108256 + floor, floor, floor], rtol=0, atol=1e-7)


@pytest.mark.parametrize("corpus", [[["tea", "green"]], [["tea", "green"], ["coffee", "tea"]]])
def test_small_corpus_policy(corpus):
    # 1-2 documents: Lucene's idf log(1 + (N - n + 0.5) / (n + 0.5)), never <= 0, so a match always scores > 0
    index = BM25(corpus)
    n = len(corpus)
    for t, f in [("tea", n), ("green", 1)]:
        assert index.idf[t] == pytest.approx(math.log(1 + (n - f + 0.5) / (f + 0.5)))
        assert index.idf[t] > 0
    s = index.scores(["green"])
    assert s[0] > 0 and all(s[1:] == 0)
    assert index.scores(["nothing"]).tolist() == [0.0] * n
    if n == 2:  # a term in one document outranks a term in both (BM25Okapi would give 0 and a negative floor)
        assert index.idf["green"] > index.idf["tea"] > 0
        assert index.top_k(["coffee"], 2)[0][0] == 1


def test_small_corpus_differs_from_rank_bm25_on_purpose():
    rank_bm25 = require_peer("rank_bm25")
    corpus = [["tea", "green"]]
    assert rank_bm25.BM25Okapi(corpus).get_scores(["tea"])[0] < 0  # the defect the policy avoids
    assert BM25(corpus).scores(["tea"])[0] > 0


def test_k1_zero_is_binary():
    # k1 = 0: a term counts once however often it occurs, and length does not matter: the score is the idf sum
    index = BM25([["tea", "tea", "cake"], ["coffee"], ["water", "milk"]], k1=0.0)
    assert index.scores(["tea", "milk"]).tolist() == [index.idf["tea"], 0.0, index.idf["milk"]]
    # b = 1 with an empty document: its denominator would be 0 + k1 * 0; it has no terms, so it scores 0
    # (document 1: |d| = 1, avgdl = 2/3, denominator 1 + 1.5 * 1.5 = 3.25)
    s = BM25([[], ["tea"], ["cake"]], b=1.0).scores(["tea"])
    np.testing.assert_allclose(s, [0.0, (math.log(2.5) - math.log(1.5)) * 2.5 / 3.25, 0.0], rtol=0, atol=1e-15)


def test_empty_corpora():
    assert BM25([]).scores(["tea"]).shape == (0,)
    assert BM25([]).top_k(["tea"], 3) == []
    assert BM25([[], [], []]).scores(["tea"]).tolist() == [0.0, 0.0, 0.0]  # rank_bm25 divides by zero here
    assert BM25([["tea"], [], []]).scores([]).tolist() == [0.0, 0.0, 0.0]


@settings(max_examples=150, deadline=None)
@given(corpus=corpora, query=queries, k=st.integers(0, 45))
def test_top_k_is_the_sorted_scores(corpus, query, k):
    index = BM25(corpus)
    s = index.scores(query)
    expected = sorted(range(len(corpus)), key=lambda i: (-s[i], i))[:k]
    got = index.top_k(query, k)
    assert [i for i, _ in got] == expected
    assert [v for _, v in got] == [float(s[i]) for i in expected]


def test_top_k_ties_in_index_order_large_corpus():
    corpus = [["tea"] if i % 7 == 0 else ["water"] for i in range(100)]  # 15 equal matches, partition path
    got = BM25(corpus).top_k(["tea"], 4)
    assert [i for i, _ in got] == [0, 7, 14, 21]
    assert len({v for _, v in got}) == 1


def test_tokenize():
    assert tokenize("Tea, NOT coffee!") == ["tea", "not", "coffee"]
    assert tokenize("Café au lait_2 -- ÉTÉ") == ["café", "au", "lait_2", "été"]
    assert tokenize("  ") == []


def test_bad_input_is_refused_clearly():
    with pytest.raises(TypeError, match="list of token strings"):
        BM25([["tea"], ["x"], ["y"]]).scores("tea")  # a bare string would be scored letter by letter
    with pytest.raises(TypeError, match="list of token lists"):
        BM25("tea coffee")
    with pytest.raises(TypeError, match=r"corpus\[1\]"):
        BM25([["tea"], "coffee"])
    with pytest.raises(TypeError, match="only str tokens"):
        BM25([["tea", 3]])
    with pytest.raises(ValueError, match="b must lie"):
        BM25([["tea"]], b=1.5)
    with pytest.raises(ValueError, match="k1"):
        BM25([["tea"]], k1=-1)
    with pytest.raises(ValueError, match="k must be"):
        BM25([["tea"]]).top_k(["tea"], -1)
    with pytest.raises(TypeError, match="expects a str"):
        tokenize(None)
