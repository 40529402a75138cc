"""The notebook-01 checkers: a correct answer passes, the usual mistakes fail, a stub is "not done yet".

The correct answers here are written independently of minichat (minbpe-style loops over Python lists); the checkers
compare them with minichat's own trainer/encoder, so these tests also tie the library to the textbook algorithm.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from minichat.exercises import tokenization as ex

# -- correct answers -------------------------------------------------------------------------------------------------


def get_pair_counts(ids):
    counts = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def train_bpe(text, num_merges, pick=lambda counts: min(counts, key=lambda p: (-counts[p], p)), first_id=256):
    ids, merges = list(text.encode("utf-8")), {}
    for k in range(num_merges):
        counts = get_pair_counts(ids)
        if not counts:
            break
        pair = pick(counts)
        ids = merge(ids, pair, first_id + k)
        merges[pair] = first_id + k
    return merges


def encode(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        counts = get_pair_counts(ids)
        pair = min(counts, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


def encode_in_rank_order(text, merges):  # another correct way: apply each merge everywhere, in the order learned
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = merge(ids, pair, new_id)
    return ids


def _vocab(merges):
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), c in merges.items():
        vocab[c] = vocab[a] + vocab[b]
    return vocab


def decode(ids, merges):
    vocab = _vocab(merges)
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


# -- the usual mistakes ----------------------------------------------------------------------------------------------


def counts_missing_last_pair(ids):  # off by one: range stops one pair early
    return dict(Counter((ids[i], ids[i + 1]) for i in range(len(ids) - 2)))


def counts_each_pair_once(ids):  # a set where a count was needed
    return {pair: 1 for pair in zip(ids, ids[1:])}


def counts_wrapping_around(ids):  # zip with a rotated list counts (last, first) too
    return dict(Counter(zip(ids, ids[1:] + ids[:1]))) if ids else {}


def merge_overlapping(ids, pair, new_id):  # forgets to skip the second token of a merged pair
    out = []
    for i in range(len(ids)):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
        elif not (i > 0 and (ids[i - 1], ids[i]) == pair):
            out.append(ids[i])
    return out


def merge_drops_last(ids, pair, new_id):  # off by one: the loop never looks at the last token alone
    out, i = [], 0
    while i < len(ids) - 1:
        if (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merge_right_to_left(ids, pair, new_id):  # [1, 1, 1] -> [1, 2] instead of [2, 1]
    return merge(ids[::-1], pair[::-1], new_id)[::-1]


def train_first_seen_tie(text, num_merges):  # minbpe's max(counts, key=counts.get): ties go to the first pair seen
    return train_bpe(text, num_merges, pick=lambda counts: max(counts, key=counts.get))


def train_ids_from_255(text, num_merges):
    return train_bpe(text, num_merges, first_id=255)


def train_never_stops(text, num_merges):  # max() of an empty dict raises once the text is one token
    ids, merges = list(text.encode("utf-8")), {}
    for k in range(num_merges):
        counts = get_pair_counts(ids)
        pair = max(counts, key=lambda p: (counts[p], -p[0], -p[1]))
        ids = merge(ids, pair, 256 + k)
        merges[pair] = 256 + k
    return merges


def encode_most_frequent_first(text, merges):  # merges the most frequent known pair, not the earliest learned
    ids = list(text.encode("utf-8"))
    while True:
        counts = {p: c for p, c in get_pair_counts(ids).items() if p in merges}
        if not counts:
            return ids
        pair = max(counts, key=lambda p: (counts[p], -merges[p]))
        ids = merge(ids, pair, merges[pair])


def encode_latest_merge_first(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in reversed(merges.items()):
        ids = merge(ids, pair, new_id)
    return ids


def decode_each_token_alone(ids, merges):  # a character split across tokens becomes two U+FFFD
    vocab = _vocab(merges)
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def decode_ignoring_errors(ids, merges):
    vocab = _vocab(merges)
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")


def not_implemented(*args):
    raise NotImplementedError


def ellipsis_stub(*args):
    ...


CHECKS = {
    "get_pair_counts": (ex.check_get_pair_counts, get_pair_counts,
                        [counts_missing_last_pair, counts_each_pair_once, counts_wrapping_around]),
    "merge": (ex.check_merge, merge, [merge_overlapping, merge_drops_last, merge_right_to_left]),
    "train": (ex.check_train, train_bpe, [train_first_seen_tie, train_ids_from_255, train_never_stops]),
    "encode": (ex.check_encode, encode, [encode_most_frequent_first, encode_latest_merge_first]),
    "decode": (ex.check_decode, decode, [decode_each_token_alone, decode_ignoring_errors]),
}


@pytest.mark.parametrize("name", CHECKS)
def test_correct_answer_passes(name):
    check, good, _ = CHECKS[name]
    fb = check(good)
    assert fb.passed, str(fb)
    assert len(fb.cases) >= 10 and "all cases pass" in str(fb)


@pytest.mark.parametrize("name,bad", [(n, b) for n, (_, _, bads) in CHECKS.items() for b in bads],
                         ids=lambda x: getattr(x, "__name__", x))
def test_mistake_fails(name, bad):
    fb = CHECKS[name][0](bad)
    assert not fb.not_done
    assert not fb.passed
    failing = [(case, detail) for case, ok, detail in fb.cases if not ok]
    assert failing and all(detail for _, detail in failing), "a failing case says what was expected"
    assert "FAIL" in str(fb)


@pytest.mark.parametrize("name", CHECKS)
@pytest.mark.parametrize("stub", [not_implemented, ellipsis_stub])
def test_stub_is_not_done(name, stub):
    fb = CHECKS[name][0](stub)
    assert fb.not_done and not fb.passed
    assert "not done yet" in str(fb) and "not done yet" in fb._repr_html_()


def test_other_correct_forms_pass():
    assert ex.check_encode(encode_in_rank_order).passed
    assert ex.check_get_pair_counts(lambda ids: Counter(zip(ids, ids[1:]))).passed
    assert ex.check_merge(lambda ids, pair, z: np.array(merge(ids, pair, z), np.int64)).passed
    assert ex.check_merge(lambda ids, pair, z: tuple(merge(ids, pair, z))).passed


def test_specific_failures_are_reported():
    fb = ex.check_merge(merge_overlapping)
    failed = {case for case, ok, _ in fb.cases if not ok}
    assert "overlap [1, 1, 1] merging (1, 1)" in failed
    assert "[1, 2, 3, 1, 2] merging (1, 2)" not in failed  # no overlap there: the bug does not show
    fb = ex.check_train(train_first_seen_tie)
    assert "ties broken by the smaller pair: 'abcd', 3 merges" not in {c for c, ok, _ in fb.cases if ok}
    crash = ex.check_train(train_never_stops)
    assert any("raised ValueError" in detail for _, ok, detail in crash.cases if not ok)


def test_references_match_hand_worked_values():
    # Wikipedia: aaabdaaabac -> Z=aa -> ZabdZabac -> Y=ab -> ZYdZYac -> X=ZY -> XdXac
    merges = ex.reference_merges("aaabdaaabac", 3)
    assert merges == {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    assert ex.reference_tokenizer(merges).encode_ordinary("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert ex.reference_tokenizer(merges).decode([258, 100]) == "aaabd"
    assert ex._library_top_pair(list(b"aaabdaaabac")) == (97, 97) and ex._library_top_pair([5]) is None
    assert ex._library_top_pair([1, 2, 3, 1, 2]) == (1, 2)
    assert ex._library_top_pair([3, 4, 1, 2]) == (1, 2)  # all counts 1: the smallest pair wins
