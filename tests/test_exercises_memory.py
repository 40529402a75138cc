"""The memory exercises' checkers (notebook 05): right answers pass, typical mistakes fail, stubs are 'not done yet'.

The right answers are written here from the formulas (not by calling minichat.bm25), and checked against rank_bm25
too when it is installed, so a checker that drifted from BM25Okapi would fail here.
"""
import math
from collections import Counter

from conftest import require_peer
from minichat.exercises.memory import check_bm25_idf, check_bm25_score


def idf_right(corpus, epsilon=0.25):
    n = len(corpus)
    df = Counter(t for doc in corpus for t in set(doc))
    raw = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df.items()}
    floor = epsilon * sum(raw.values()) / len(raw)
    return {t: (floor if v < 0 else v) for t, v in raw.items()}


def score_right(query, doc, idf, avgdl, k1=1.5, b=0.75):
    tf = Counter(doc)
    s = 0.0
    for t in query:
        if t in idf:
            s += idf[t] * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl))
    return s


def test_correct_answers_pass():
    assert check_bm25_idf(idf_right).passed
    assert check_bm25_score(score_right).passed


def test_the_right_answers_agree_with_rank_bm25():
    rank_bm25 = require_peer("rank_bm25")
    corpus = [["the", "user", "likes", "tea"], ["the", "user", "likes", "coffee"], ["the", "user", "has", "a", "dog"],
              ["a", "cat"], ["tea", "tea", "green"]]
    ref = rank_bm25.BM25Okapi(corpus)  # k1 1.5, b 0.75, epsilon 0.25
    idf = idf_right(corpus)
    assert all(math.isclose(idf[t], ref.idf[t], rel_tol=1e-12) for t in ref.idf)
    query = ["tea", "user", "tea", "dog"]
    for d, want in enumerate(ref.get_scores(query)):
        assert math.isclose(score_right(query, corpus[d], idf, ref.avgdl), want, rel_tol=1e-9)


def test_typical_mistakes_fail():
    def no_floor(corpus, epsilon=0.25):  # Robertson's idf without BM25Okapi's floor
        n = len(corpus)
        df = Counter(t for doc in corpus for t in set(doc))
        return {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df.items()}
    assert not check_bm25_idf(no_floor).passed

    def counts_occurrences(corpus, epsilon=0.25):  # n_t from token counts, not documents
        n = len(corpus)
        df = Counter(t for doc in corpus for t in doc)
        raw = {t: math.log(n - f + 0.5) - math.log(f + 0.5) for t, f in df.items()}
        floor = epsilon * sum(raw.values()) / len(raw)
        return {t: (floor if v < 0 else v) for t, v in raw.items()}
    assert not check_bm25_idf(counts_occurrences).passed

    def floors_zero_too(corpus, epsilon=0.25):  # "<= 0": an idf of exactly 0 is kept by BM25Okapi
        raw = no_floor(corpus)
        floor = epsilon * sum(raw.values()) / len(raw)
        return {t: (floor if v <= 0 else v) for t, v in raw.items()}
    assert not check_bm25_idf(floors_zero_too).passed

    def mean_of_positive(corpus, epsilon=0.25):  # the floor from the positive idfs only
        raw = no_floor(corpus)
        pos = [v for v in raw.values() if v > 0]
        floor = epsilon * sum(pos) / max(len(pos), 1)
        return {t: (floor if v < 0 else v) for t, v in raw.items()}
    assert not check_bm25_idf(mean_of_positive).passed

    def distinct_query_terms(query, doc, idf, avgdl, k1=1.5, b=0.75):  # a repeated query word counts once
        return score_right(list(dict.fromkeys(query)), doc, idf, avgdl, k1, b)
    assert not check_bm25_score(distinct_query_terms).passed

    def no_k1_plus_1(query, doc, idf, avgdl, k1=1.5, b=0.75):
        return score_right(query, doc, idf, avgdl, k1, b) / (k1 + 1) if k1 + 1 else 0.0
    assert not check_bm25_score(no_k1_plus_1).passed

    def no_length_normalisation(query, doc, idf, avgdl, k1=1.5, b=0.75):
        return score_right(query, doc, idf, avgdl, k1, 0.0)
    assert not check_bm25_score(no_length_normalisation).passed

    def raw_tf(query, doc, idf, avgdl, k1=1.5, b=0.75):  # no saturation: tf times idf
        tf = Counter(doc)
        return sum(idf.get(t, 0.0) * tf[t] for t in query)
    assert not check_bm25_score(raw_tf).passed


def test_a_crash_is_feedback_not_an_exception():
    def crashes_on_unknown(query, doc, idf, avgdl, k1=1.5, b=0.75):
        tf = Counter(doc)
        return sum(idf[t] * tf[t] * (k1 + 1) / (tf[t] + k1 * (1 - b + b * len(doc) / avgdl)) for t in query)
    fb = check_bm25_score(crashes_on_unknown)
    assert not fb.passed and not fb.not_done and "KeyError" in str(fb)


def test_stubs_are_not_done():
    def stub(*args):
        raise NotImplementedError

    def empty(*args):
        pass
    for check in (check_bm25_idf, check_bm25_score):
        for fn in (stub, empty):
            fb = check(fn)
            assert fb.not_done and not fb.passed and "not done yet" in str(fb)
