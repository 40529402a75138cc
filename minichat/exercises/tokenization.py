"""Checkers for notebook 01 (tokenization): write the pieces of BPE yourself, then compare with minichat.

Each `check_*` takes your function, runs it on hand-made cases (the tricky ones: overlaps, empty input, pairs at the
very end, characters of several bytes) and on random ones, and compares the answers with minichat's own code:

    check_get_pair_counts(get_pair_counts)   get_pair_counts([1, 2, 3, 1, 2]) -> {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    check_merge(merge)                       merge([1, 1, 1], (1, 1), 256) -> [256, 1]   (left to right, no overlap)
    check_train(train_bpe)                   train_bpe("aaabdaaabac", 3) -> {(97, 97): 256, (97, 98): 257, (256, 257): 258}
    check_encode(encode)                     encode("aaabdaaabac", merges) -> [258, 100, 258, 97, 99]
    check_decode(decode)                     decode([258, 100], merges) -> "aaabd"

The rules the library follows, which your functions must follow too:
  * token ids 0..255 are the bytes of the UTF-8 text; the i-th merge (counting from 0) creates id 256 + i;
  * merges are a dict {(left id, right id): new id}, in the order they were learned;
  * training picks the most frequent adjacent pair; on a tie, the smallest pair (compare left ids, then right ids),
    and stops early once the text is a single token;
  * encoding applies the merge learned first wherever it occurs, then the next one, and so on;
  * decoding joins the tokens' bytes and decodes UTF-8 with errors="replace" (a split character becomes U+FFFD).
Training and encoding here work on the whole text as one piece (`NO_SPLIT`): no pre-tokenization regex.

The references: `get_pair_counts` and `merge` from `minichat.tokenizer.basic` (the library's own list functions,
which its kernels are tested against), plus a check that your most frequent pair is the one minichat's trainer merges
first; `minichat.tokenizer.train(..., pattern=NO_SPLIT, min_frequency=1)` for training; `Tokenizer.encode_ordinary`
and `Tokenizer.decode` for encoding and decoding.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from minichat.exercises import Feedback, run_cases
from minichat.tokenizer import basic
from minichat.tokenizer.bpe import Tokenizer
from minichat.tokenizer.train import train

NO_SPLIT = r"(?s).+"  # a "pre-tokenization" pattern that keeps the whole text as one chunk

Pair = tuple[int, int]
Merges = dict[Pair, int]

WIKIPEDIA = "aaabdaaabac"
# small alphabets so random texts repeat pairs often; "é" and "日" are 2 and 3 bytes, "👍" is 4
_ALPHABETS = ("ab", "abc ", "ab é", "a日b", "xy👍 ")


# -- references built on the library ---------------------------------------------------------------------------------


def reference_merges(text: str, num_merges: int) -> Merges:
    """minichat's trainer on `text` as one chunk: {(a, b): new id} in the order learned."""
    tok = train(text, 256 + num_merges, pattern=NO_SPLIT, min_frequency=1)
    return {(a, b): c for a, b, c in tok.merges}


def reference_tokenizer(merges: Mapping[Pair, int]) -> Tokenizer:
    """A Tokenizer for merges given as {(a, b): new id}, with no pre-tokenization split."""
    vocab = {i: bytes([i]) for i in range(256)}
    triples = []
    for (a, b), c in sorted(merges.items(), key=lambda kv: kv[1]):
        vocab[c] = vocab[a] + vocab[b]
        triples.append((a, b, c))
    return Tokenizer(vocab, triples, pattern=NO_SPLIT)


def _library_top_pair(ids: list[int]) -> Pair | None:
    """The pair minichat's trainer merges first in `ids` (None when there is no pair)."""
    first = basic.train_naive([(ids, 1)], 1, first_id=max(ids, default=0) + 1)
    return next(iter(first), None)


# -- comparisons that accept any reasonable container ----------------------------------------------------------------


def _as_list(x: Any) -> list | None:
    if isinstance(x, (str, bytes, Mapping)):
        return None
    try:
        return [int(v) for v in x]
    except (TypeError, ValueError):
        return None


def _same_ids(got: Any, expected: list[int]) -> bool:
    return _as_list(got) == expected


def _same_counts(got: Any, expected: dict[Pair, int]) -> bool:
    return isinstance(got, Mapping) and {tuple(k): v for k, v in got.items()} == expected


def _same_merges(got: Any, expected: Merges) -> bool:
    return isinstance(got, Mapping) and [(tuple(k), v) for k, v in got.items()] == list(expected.items())


def _combine(name: str, *feedbacks: Feedback) -> Feedback:
    out = Feedback(name)
    for fb in feedbacks:
        out.cases += fb.cases
        out.not_done |= fb.not_done
    return out


def _random_text(rng: np.random.Generator, lo: int = 8, hi: int = 60) -> str:
    alphabet = _ALPHABETS[rng.integers(len(_ALPHABETS))]
    return "".join(rng.choice(list(alphabet), size=int(rng.integers(lo, hi))))


# -- the checkers ----------------------------------------------------------------------------------------------------


def check_get_pair_counts(fn: Callable[[list[int]], dict[Pair, int]], seed: int = 0) -> Feedback:
    """fn(ids) -> {(a, b): how many times a is directly followed by b}."""
    rng = np.random.default_rng(seed)
    samples = [("the example [1, 2, 3, 1, 2]", [1, 2, 3, 1, 2]), ("empty list", []), ("one id", [7]),
               ("overlapping run [5, 5, 5, 5]", [5, 5, 5, 5]), ("pair at the very end", [1, 2, 3, 4, 9, 9]),
               ("the bytes of 'aaabdaaabac'", list(WIKIPEDIA.encode()))]
    samples += [(f"random #{k}", rng.integers(0, 4 + 2 * k, size=int(rng.integers(2, 40))).tolist()) for k in range(6)]
    counts = run_cases("get_pair_counts", fn, [(name, (list(ids),), basic.get_pair_counts(ids))
                                               for name, ids in samples], same=_same_counts)
    if counts.not_done:
        return counts

    def top_pair(ids: list[int]) -> Any:  # the pair the student's counts rank first, with minichat's tie rule
        c = fn(list(ids))
        return min(c, key=lambda p: (-c[p], tuple(p))) if isinstance(c, Mapping) and c else c

    tops = run_cases("get_pair_counts", top_pair,
                     [(f"most frequent pair = minichat's first merge ({name})", (ids,), _library_top_pair(ids))
                      for name, ids in samples if len(ids) >= 2],
                     same=lambda got, exp: isinstance(got, tuple) and tuple(got) == exp)
    return _combine("get_pair_counts", counts, tops)


def check_merge(fn: Callable[[list[int], Pair, int], list[int]], seed: int = 0) -> Feedback:
    """fn(ids, pair, new_id) -> ids with every occurrence of pair replaced by new_id, scanning left to right."""
    rng = np.random.default_rng(seed)
    cases = [("[1, 2, 3, 1, 2] merging (1, 2)", [1, 2, 3, 1, 2], (1, 2), 4),
             ("overlap [1, 1, 1] merging (1, 1)", [1, 1, 1], (1, 1), 2),
             ("overlap [1, 1, 1, 1] merging (1, 1)", [1, 1, 1, 1], (1, 1), 2),
             ("pair at the very end", [3, 4, 1, 2], (1, 2), 9),
             ("pair not present", [1, 3, 2, 1], (1, 2), 9),
             ("order matters: (2, 1) is not (1, 2)", [2, 1, 2, 1], (1, 2), 9),
             ("empty list", [], (1, 2), 9),
             ("one id", [1], (1, 2), 9),
             ("first merge of 'aaabdaaabac'", list(WIKIPEDIA.encode()), (97, 97), 256)]
    for k in range(8):
        ids = rng.integers(0, 3 + k % 3, size=int(rng.integers(2, 40))).tolist()
        i = int(rng.integers(len(ids) - 1))
        pair = (ids[i], ids[i + 1])  # a pair that occurs at least once
        cases.append((f"random #{k} merging {pair}", ids, pair, 256 + k))
    return run_cases("merge", fn, [(name, (list(ids), pair, z), basic.merge(ids, pair, z))
                                   for name, ids, pair, z in cases], same=_same_ids)


def check_train(fn: Callable[[str, int], Merges], seed: int = 0) -> Feedback:
    """fn(text, num_merges) -> {(a, b): new id}, compared with minichat.tokenizer.train on the same text."""
    rng = np.random.default_rng(seed)
    cases = [("Wikipedia's 'aaabdaaabac', 3 merges", WIKIPEDIA, 3),
             ("'aaaa', ask for 5 merges (stops after 2: the text is one token)", "aaaa", 5),
             ("ties broken by the smaller pair: 'abcd', 3 merges", "abcd", 3),
             ("no merges asked", "hello", 0),
             ("two-byte characters: 'é é é é'", "é é é é", 4),
             ("a sentence, 12 merges", "the cat sat on the mat; the hat is on the cat", 12)]
    cases += [(f"random #{k}", _random_text(rng), int(rng.integers(1, 12))) for k in range(6)]
    return run_cases("train", fn, [(name, (text, n), reference_merges(text, n)) for name, text, n in cases],
                     same=_same_merges)


def check_encode(fn: Callable[[str, Merges], list[int]], seed: int = 0) -> Feedback:
    """fn(text, merges) -> ids, compared with minichat's Tokenizer built from the same merges."""
    rng = np.random.default_rng(seed)
    wiki = reference_merges(WIKIPEDIA, 3)
    sentence = reference_merges("the cat sat on the mat; the hat is on the cat", 20)
    cases = [("'aaabdaaabac' with its own merges", WIKIPEDIA, wiki),
             ("'aaaaaaa' with the Wikipedia merges", "aaaaaaa", wiki),
             ("empty text", "", wiki),
             ("no merges at all", "hello", {}),
             ("earliest merge first, not most frequent: 'abcbc' with ab then bc", "abcbc",
              {(97, 98): 256, (98, 99): 257}),
             ("a new sentence with the cat merges", "that cat? the mat!", sentence),
             ("characters never seen in training", "日本 👍 é", sentence)]
    for k in range(6):
        merges = reference_merges(_random_text(rng, 30, 80), int(rng.integers(3, 15)))
        cases.append((f"random #{k}", _random_text(rng), merges))
    return run_cases("encode", fn, [(name, (text, dict(m)), reference_tokenizer(m).encode_ordinary(text))
                                    for name, text, m in cases], same=_same_ids)


def check_decode(fn: Callable[[list[int], Merges], str], seed: int = 0) -> Feedback:
    """fn(ids, merges) -> text, compared with minichat's Tokenizer.decode (errors="replace")."""
    rng = np.random.default_rng(seed)
    wiki = reference_merges(WIKIPEDIA, 3)
    cases = [("[258, 100, 258, 97, 99] with the Wikipedia merges", [258, 100, 258, 97, 99], wiki),
             ("empty list", [], wiki),
             ("plain bytes only", list("héllo".encode()), {}),
             ("half of 'é' (one byte of two)", [0xC3], {}),
             ("'日' split across tokens", list("日".encode()), {})]
    for k in range(5):
        merges = reference_merges(_random_text(rng, 30, 80), int(rng.integers(3, 15)))
        ids = reference_tokenizer(merges).encode_ordinary(_random_text(rng))
        cases.append((f"random #{k}", ids, merges))
    return run_cases("decode", fn, [(name, (list(ids), dict(m)), reference_tokenizer(m).decode(ids))
                                    for name, ids, m in cases])
