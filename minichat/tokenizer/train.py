"""Training a byte-level BPE vocabulary from text.

    1. Split every text at special-token strings (never learned as ordinary text), then into chunks with the
       pre-tokenization pattern, and count each distinct chunk once: a 5 MB corpus has ~1 M chunks but far fewer
       distinct ones, and BPE only needs their counts.
    2. Start every chunk as its UTF-8 bytes (token id = byte value, 0..255).
    3. Repeat: find the most frequent adjacent pair across all chunks (weighted by chunk count), give it the next
       id, and rewrite it everywhere. The incremental version (`kernels.bpe.learn_merges`) touches only the chunks
       containing the pair; `kernel="python"` runs the readable recount-everything definition instead
       (`basic.train_naive`).

Tie-breaking is deterministic and documented: among pairs with the same count the one with the smaller left id wins,
then the smaller right id. Ids below 256 are byte values, so for a first merge this is plain byte order.

`min_frequency`: a pair seen fewer times than this is never merged; training then stops early and the vocabulary is
smaller than asked (the returned tokenizer's `n_vocab` says how big it is). Special tokens take the ids right after
the last merge, in the order given.

What it leaves out: sentencepiece-style unigram training, character coverage and byte fallback (not needed at the
byte level), dropout. References: Sennrich et al. 2016, "Neural Machine Translation of Rare Words with Subword
Units"; Karpathy's minbpe for the loop; HF tokenizers' BpeTrainer for the incremental update.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import numpy as np
import regex

from minichat.kernels import bpe as kernels
from minichat.tokenizer import basic
from minichat.tokenizer.bpe import Tokenizer
from minichat.tokenizer.fastsplit import Splitter
from minichat.tokenizer.patterns import GPT4_PATTERN, resolve_pattern

Progress = Callable[[str], None]


def count_chunks(texts: str | Iterable[str], pattern: str, special_tokens: Sequence[str] = (),
                 progress: Progress | None = None) -> Counter[str]:
    """Step 1: the distinct pre-tokenization chunks of all texts with their counts.

    >>> count_chunks("the cat the", "gpt2")
    Counter({' the': 1, 'the': 1, ' cat': 1})
    """
    split = Splitter(resolve_pattern(pattern)).split
    specials = regex.compile("|".join(regex.escape(s) for s in sorted(special_tokens, key=len, reverse=True)))
    counts: Counter[str] = Counter()
    for n, text in enumerate([texts] if isinstance(texts, str) else texts, 1):
        if not isinstance(text, str):
            raise TypeError(f"train() takes str texts; item {n} is a {type(text).__name__}")
        for piece in specials.split(text) if special_tokens else (text,):
            counts.update(split(piece))
        if progress and n % 1000 == 0:
            progress(f"counted chunks in {n} texts ({len(counts)} distinct)")
    return counts


def train(
    texts: str | Iterable[str],
    vocab_size: int,
    pattern: str = GPT4_PATTERN,
    special_tokens: Sequence[str] = (),
    min_frequency: int = 2,
    progress: bool | Progress | None = None,
    name: str = "bpe",
    kernel: Literal["numba", "python"] = "numba",
) -> Tokenizer:
    """Learn a byte-level BPE vocabulary of (at most) `vocab_size` ids, special tokens included.

    texts: one string or any iterable of strings (read once); pattern: "gpt2", "gpt4" or a regex;
    progress: True prints stage messages to stderr, or pass a callable taking a message string.
    """
    special_tokens = list(special_tokens)
    if len(set(special_tokens)) != len(special_tokens) or any(not s for s in special_tokens):
        raise ValueError("special_tokens must be distinct, non-empty strings")
    if vocab_size < 256 + len(special_tokens):
        raise ValueError(f"vocab_size must be at least 256 + {len(special_tokens)} special tokens, not {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, not {min_frequency}")
    if kernel not in ("numba", "python"):
        raise ValueError(f"kernel must be 'numba' or 'python', not {kernel!r}")
    say: Progress = (lambda m: print(f"[train] {m}", file=sys.stderr)) if progress is True else (progress or _quiet)
    t0 = time.perf_counter()
    counts = count_chunks(texts, pattern, special_tokens, say)
    say(f"{sum(counts.values())} chunks, {len(counts)} distinct, in {time.perf_counter() - t0:.1f}s")

    # step 2: every distinct chunk as byte ids, back to back, with its count
    raw = [c.encode("utf-8", errors="surrogatepass") for c in counts]
    sym = np.frombuffer(b"".join(raw), np.uint8).astype(np.int32)  # (N,)
    starts = np.zeros(len(raw) + 1, np.int64)  # (W+1,)
    np.cumsum([len(b) for b in raw], out=starts[1:])
    weights = np.fromiter(counts.values(), np.int64, len(counts))  # (W,)

    # step 3: learn the merges
    n_merges = vocab_size - 256 - len(special_tokens)
    t1 = time.perf_counter()
    if kernel == "numba":
        merges = kernels.learn_merges(sym, starts, weights, n_merges, 256, min_frequency).tolist()
    else:
        learned = basic.train_naive(zip(map(list, raw), counts.values()), n_merges, 256, min_frequency)
        merges = [(a, b, c) for (a, b), c in learned.items()]
    say(f"learned {len(merges)} merges in {time.perf_counter() - t1:.1f}s")
    if len(merges) < n_merges:
        say(f"stopped early: no pair left with count >= {min_frequency}; the vocabulary has "
            f"{256 + len(merges) + len(special_tokens)} ids, not {vocab_size}")

    vocab = {i: bytes([i]) for i in range(256)}
    for a, b, c in merges:
        vocab[c] = vocab[a] + vocab[b]
    first_special = 256 + len(merges)
    specials = {s: first_special + k for k, s in enumerate(special_tokens)}
    return Tokenizer(vocab, merges, pattern, specials, name=name, kernel=kernel)


def _quiet(message: str) -> None:
    pass
