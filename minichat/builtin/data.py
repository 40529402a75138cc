"""The built-in model's data: its vocabulary, learned from the synthetic corpus, and its batches of conversations.

    train_chat_tokenizer   a byte-level BPE vocabulary learned from conversations, with <|endoftext|>, <|im_start|>
                           and <|im_end|> as its special tokens
    chat_batches           conversations rendered with the chat template and its loss mask (ChatTemplate.
                           render_with_mask: 1 only on what the assistant wrote), packed whole into (B, T + 1) rows
                           (minichat.train.data.pack) and served as resumable Batches
    masked_text            the text a loss mask trains on, run by run (for reading and for tests)
    Curriculum             one Batches for the first steps, another after (a drill-heavy start), resumable
    repeat_batches         rows of random token strings, each written twice, loss on the second copy: the copy
                           (induction) circuit's own task, with nothing else to learn. No recipe uses it: a run on
                           it stayed at chance for 300 steps (recipe.py, builtin-v2w); kept for that experiment

The vocabulary's pattern is GPT-4's with every digit a chunk of its own (as Llama and DeepSeek do), so that a number
the model never saw tokenizes like the ones it did: digit by digit, which keeps copying numbers from the context
learnable. `exclude` words are cut out of the text the merges are learned from (the recipe excludes every listed
name), so a held-out name and a training name both tokenize into common pieces.

What it leaves out: data from files (minichat.train.data.text_batches reads plain text), any other chat template.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import regex

from minichat.chat.template import IM_END, IM_START, ChatTemplate, render_text
from minichat.tokenizer import Tokenizer, train
from minichat.tokenizer.patterns import GPT4_PATTERN
from minichat.train.data import ENDOFTEXT, Batch, Batches, pack

SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)
# GPT-4's pattern with `\p{N}{1,3}+` (numbers in groups of up to three digits) replaced by `\p{N}` (one digit each)
CHAT_PATTERN = GPT4_PATTERN.replace(r"\p{N}{1,3}+", r"\p{N}")


def corpus_texts(conversations: Iterable[Any]) -> Iterator[str]:
    """Each conversation (anything with `.messages`, or a list of Messages) as its ChatML text."""
    for c in conversations:
        yield render_text(getattr(c, "messages", c), add_generation_prompt=False)


def train_chat_tokenizer(corpus: Iterable[Any], vocab_size: int, *, pattern: str = CHAT_PATTERN,
                         min_frequency: int = 2, progress: Any = None, name: str = "minichat-chat",
                         exclude: Iterable[str] = ()) -> Tokenizer:
    """A byte-level BPE vocabulary of `vocab_size` ids (special tokens included) learned from conversations (or
    plain strings), with <|endoftext|>, <|im_start|> and <|im_end|> as its special tokens.

    `exclude`: words (case-sensitive, whole words) cut out of the text the merges are learned from, so that none of
    them becomes a token of its own; they still tokenize, into the pieces the rest of the text made common."""
    texts = (x if isinstance(x, str) else next(corpus_texts([x])) for x in corpus)
    words = sorted(set(exclude), key=lambda w: (-len(w), w))  # longest first: "Ana-Maria" is tried before "Ana"
    if words:
        cut = regex.compile(r"\b(?:" + "|".join(regex.escape(w) for w in words) + r")\b")
        texts = (cut.sub("", t) for t in texts)
    return train(texts, vocab_size, pattern=pattern, special_tokens=SPECIAL_TOKENS, min_frequency=min_frequency,
                 progress=progress, name=name)


def chat_batches(tokenizer: Tokenizer, conversations: Iterable[Any], batch_size: int, seq_len: int,
                 seed: int = 0, open_rows: int = 8, prompt_weight: float = 0.0) -> Batches:
    """Batches of packed conversations (Conversation objects or lists of Messages), loss on assistant tokens only,
    or with `prompt_weight` > 0 also on the user's and the tools' text at that weight (the assistant's tokens weigh
    1; the system prompt and every header 0). The conversations are shuffled with `seed` before packing, so which
    ones share a row varies with the seed."""
    if not 0.0 <= prompt_weight <= 1.0:
        raise ValueError(f"prompt_weight must be in [0, 1], not {prompt_weight}")
    template = ChatTemplate(tokenizer)
    convs = list(conversations)
    order = np.random.default_rng([seed, 1]).permutation(len(convs))
    read = 2 if prompt_weight else 0  # the mask level of the user's and the tools' text
    encoded = (template.render_with_mask(getattr(convs[i], "messages", convs[i]), read) for i in order)
    rows, masks, cut = pack(encoded, seq_len, tokenizer.encode_special(ENDOFTEXT), open_rows)
    return Batches(rows, masks, batch_size, seed, cut, weights=(0.0, 1.0, prompt_weight) if read else None)


class Curriculum:
    """Batches from `first` for steps 0 .. `steps`-1, then from `then` (its own step 0 onwards): a start on other
    data, e.g. one dense in copying drills so the copy circuit forms before the full mix. The two may differ in shape
    (shorter rows first, more of them). Resumable like Batches."""

    def __init__(self, first: Batches, steps: int, then: Batches):
        if not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be a non-negative integer, not {steps!r}")
        self.first, self.steps, self.then, self.step = first, steps, then, 0

    def batch(self, step: int) -> Batch:
        return self.first.batch(step) if step < self.steps else self.then.batch(step - self.steps)

    __iter__, __next__ = Batches.__iter__, Batches.__next__  # next(): the batch at self.step, then step + 1

    def state(self) -> dict:
        return {"step": self.step, "first_steps": self.steps, "first": self.first.state(), "then": self.then.state()}

    def restore(self, state: dict) -> None:
        if state.get("first_steps") != self.steps:
            raise ValueError(f"cannot resume: the saved run started with {state.get('first_steps')} steps of its "
                             f"first data, this one with {self.steps}")
        self.first.restore(state["first"])  # checks the saved shapes and seeds against these
        self.then.restore(state["then"])
        self.step = int(state["step"])


def repeat_batches(tokenizer: Tokenizer, n_rows: int, seq_len: int, batch_size: int, seed: int = 0,
                   lengths: tuple[int, int] = (4, 40)) -> Batches:
    """Rows of T + 1 ids, each a run of pieces `s E s E` with s a string of random ordinary ids (its length drawn
    from `lengths`) and E <|endoftext|>, until the row is full (the last piece is cut). Mask 1 on the second copy
    of each s and the E after it: only copying lowers that loss.

    Why: a small model learns to copy from its context suddenly, once two heads line up (one marks each position
    with the token before it, one looks for the earlier position whose predecessor is the current token and copies
    what follows). In chat data that signal is a small share of the loss; here it is all of it."""
    rng = np.random.default_rng([seed, 3])
    specials = [tokenizer.encode_special(t) for t in SPECIAL_TOKENS]
    ok = np.setdiff1d(np.arange(tokenizer.n_vocab), np.asarray(specials, dtype=np.int64))  # (n,) ids s may use
    sep = tokenizer.encode_special(ENDOFTEXT)
    rows = np.zeros((n_rows, seq_len + 1), dtype=np.int32)  # (N, T+1)
    masks = np.zeros((n_rows, seq_len + 1), dtype=np.uint8)  # (N, T+1)
    for r in range(n_rows):
        ids: list[int] = []
        mask: list[int] = []
        while len(ids) < seq_len + 1:
            s = rng.choice(ok, int(rng.integers(lengths[0], lengths[1] + 1))).tolist()
            ids += s + [sep] + s + [sep]
            mask += [0] * (len(s) + 1) + [1] * (len(s) + 1)
        rows[r], masks[r] = ids[: seq_len + 1], mask[: seq_len + 1]
    return Batches(rows, masks, batch_size, seed)


def masked_text(tokenizer: Tokenizer, ids: Sequence[int], mask: Sequence[int]) -> list[str]:
    """The text of each run of masked tokens (for reading what the loss trains on)."""
    runs, cur = [], []
    for i, m in zip(ids, mask):
        if m:
            cur.append(int(i))
        elif cur:
            runs.append(tokenizer.decode(cur))
            cur = []
    if cur:
        runs.append(tokenizer.decode(cur))
    return runs
