"""The generation loop: prompt ids in, one `Step` per new token out, as a Python generator.

    prefill   run the whole prompt through the model once, filling the KV cache; ask for the last position's
              logits only (`last_only`: the other positions' logits would cost a (T, C) @ (C, V) product unread)
    decode    pick a token from those logits (sampling.py), yield it, feed just that one token back (the cache holds
              everything before it), repeat until a stop id, a stop string, max_new_tokens or a full context window

`generate` does this for one prompt, `generate_batch` for several at once: prompts of different lengths are
right-padded into one (B, T) array with `lengths` saying how many tokens of each row are real, every row samples with
its own state (penalty counts, random generator, text stream) and finishes on its own; a finished row is fed
`length 0` from then on, so it costs no cache space. Row b of a batch produces exactly what `generate` gives for
prompt b alone (same seed), which a test checks.

`generate_naive` is the reference twin: no cache, the whole sequence recomputed at every step. It is O(T^2) per token
instead of O(T) and exists so a test can prove the cached loop computes the same thing.

Each `Step` carries the token id, the text it releases (given a tokenizer: whole UTF-8 characters only, stop strings
held back — see text.py), its log-probability and the top alternatives (when `SamplingConfig.logprobs` is set; from
the model's raw distribution, before penalties, temperature and filters, like vLLM's default), and on the last step
the finish_reason: "stop" (a stop id or stop string; the stop itself is not in the text) or "length"
(max_new_tokens reached, or prompt + output filled the model's context window n_ctx).

The loop knows token ids and, through the tokenizer, text — not chat messages; the chat layer wraps Steps in events.
What it leaves out: beam search, speculative decoding, continuous batching (rows joining mid-flight: the server's
scheduler), prefix sharing between rows.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from minichat.generate.sampling import SamplingConfig, choose, log_softmax, top_ids
from minichat.generate.text import TextStream
from minichat.tokenizer import Tokenizer


class LanguageModel(Protocol):
    """What the loop needs from a model (minichat.model's transformer provides it).

    config.vocab_size, config.n_ctx;
    new_cache(batch_size, max_len) -> a KV cache with `.lengths` (B,), the tokens held per row;
    forward(ids (B, T) int, cache=None, lengths=None, last_only=False) -> logits (B, T, V) float32, where lengths
    (B,) says how many leading tokens of each row are real (the rest is padding) and the cache appends only those;
    with last_only=True, only each row's last real position: (B, 1, V).
    """

    config: Any

    def new_cache(self, batch_size: int, max_len: int) -> Any: ...

    def forward(self, ids: np.ndarray, cache: Any = None, lengths: np.ndarray | None = None,
                last_only: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class Step:
    """One generated token. JSON-friendly: plain ints, floats, strings and tuples."""

    token_id: int
    text: str = ""  # the text this token releases (may be "" while held back; always "" without a tokenizer)
    logprob: float | None = None  # log P(token) under the model's raw distribution (when logprobs is set)
    top_logprobs: tuple[tuple[int, float], ...] = ()  # the n most likely (id, log-prob), most likely first
    finish_reason: str | None = None  # None until the last step: then "stop" or "length"
    stop: int | str | None = None  # the stop id or stop string that ended generation, if any
    index: int = 0  # position in the output: 0 for the first new token
    row: int = 0  # which prompt of a batch this step belongs to


@dataclass(frozen=True)
class Completion:
    """A finished generation, gathered from its steps."""

    token_ids: tuple[int, ...]
    text: str
    finish_reason: str
    stop: int | str | None
    steps: tuple[Step, ...]


class _Sequence:
    """The per-row state of one generation: ids so far, penalty counts, random generator, text stream, stop rules."""

    def __init__(self, prompt: Sequence[int], row: int, config: SamplingConfig, rng: np.random.Generator,
                 vocab_size: int, n_ctx: int, max_new_tokens: int, stop_ids: frozenset[int],
                 stop_strings: tuple[str, ...], tokenizer: Tokenizer | None):
        self.ids = list(prompt)
        self.n_prompt = len(self.ids)
        self.row, self.config, self.rng = row, config, rng
        self.n_ctx, self.max_new_tokens, self.stop_ids = n_ctx, max_new_tokens, stop_ids
        self.text = TextStream(tokenizer, stop_strings) if tokenizer is not None else None
        self.finished = False
        self.seen = self.counts = None
        if config.repetition_penalty != 1.0:
            self.seen = np.zeros(vocab_size, bool)  # (V,) tokens in prompt or output
            self.seen[self.ids] = True
        if config.frequency_penalty != 0.0 or config.presence_penalty != 0.0:
            self.counts = np.zeros(vocab_size, np.int32)  # (V,) occurrences in the output

    def step(self, logits: np.ndarray) -> Step:  # (V,) float32, the logits at the sequence's last position
        tok = choose(logits, self.config, self.rng, seen=self.seen, counts=self.counts)
        self.ids.append(tok)
        if self.seen is not None:
            self.seen[tok] = True
        if self.counts is not None:
            self.counts[tok] += 1
        logprob, top = None, ()
        if self.config.logprobs is not None:
            lp = log_softmax(logits)  # (V,) the model's own distribution
            logprob = float(lp[tok])
            top = tuple((int(i), float(lp[i])) for i in top_ids(lp, self.config.logprobs))
        text, reason, stop = "", None, None
        if tok in self.stop_ids:
            reason, stop = "stop", tok
            text = self.text.flush() if self.text else ""
        else:
            if self.text is not None:
                text, stop = self.text.feed(tok)
                reason = "stop" if stop is not None else None
            if reason is None and (len(self.ids) - self.n_prompt >= self.max_new_tokens or len(self.ids) >= self.n_ctx):
                reason = "length"
                text += self.text.flush() if self.text else ""
        self.finished = reason is not None
        return Step(tok, text, logprob, top, reason, stop, len(self.ids) - self.n_prompt - 1, self.row)


def _setup(model: LanguageModel, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None,
           max_new_tokens: int, stop_ids: Iterable[int], stop_strings: Iterable[str], tokenizer: Tokenizer | None,
           rng: np.random.Generator | Sequence[np.random.Generator] | None) -> list[_Sequence]:
    """Validate the arguments and build one `_Sequence` per prompt."""
    config = sampling if sampling is not None else SamplingConfig()
    if not isinstance(config, SamplingConfig):
        raise TypeError(f"sampling must be a SamplingConfig, not {type(config).__name__}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be an integer >= 1, not {max_new_tokens!r}")
    stop_strings = tuple(stop_strings)
    if stop_strings and tokenizer is None:
        raise ValueError("stop_strings need a tokenizer to turn tokens into text; pass tokenizer=...")
    V, n_ctx = int(model.config.vocab_size), int(model.config.n_ctx)
    stops = frozenset(int(i) for i in stop_ids)
    if not prompts:
        raise ValueError("no prompts given: pass at least one list of token ids")
    for b, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {b} is empty: the model needs at least one token to continue from (e.g. a BOS)")
        if len(p) >= n_ctx:
            raise ValueError(f"prompt {b} has {len(p)} tokens but the context window holds {n_ctx}: shorten it to at "
                             f"most {n_ctx - 1} to leave room for an answer")
        lo, hi = min(p), max(p)
        if lo < 0 or hi >= V:
            raise ValueError(f"prompt {b} holds token id {lo if lo < 0 else hi}, outside the model's vocabulary "
                             f"0..{V - 1}")
    rngs = _rngs(rng, config, len(prompts))
    return [_Sequence(p, b, config, rngs[b], V, n_ctx, int(max_new_tokens), stops, stop_strings, tokenizer)
            for b, p in enumerate(prompts)]


def _rngs(rng: np.random.Generator | Sequence[np.random.Generator] | None, config: SamplingConfig,
          n: int) -> list[np.random.Generator]:
    """One generator per row. None: each row seeds its own from config.seed (so row b of a batch draws exactly
    what a lone generation of prompt b would). One Generator: independent children via `spawn` (n == 1: itself)."""
    if rng is None:
        return [np.random.default_rng(config.seed) for _ in range(n)]
    if isinstance(rng, np.random.Generator):
        return [rng] if n == 1 else list(rng.spawn(n))
    rngs = list(rng)
    if len(rngs) != n or not all(isinstance(g, np.random.Generator) for g in rngs):
        raise ValueError(f"rng must be a np.random.Generator or a list of {n} of them (one per prompt)")
    return rngs


def generate(model: LanguageModel, prompt_ids: Sequence[int], sampling: SamplingConfig | None = None, *,
             max_new_tokens: int = 256, stop_ids: Iterable[int] = (), stop_strings: Iterable[str] = (),
             tokenizer: Tokenizer | None = None, rng: np.random.Generator | None = None,
             cache: Any = None) -> Iterator[Step]:
    """Generate a continuation of one prompt, one Step per token (the last one has finish_reason set).

    cache: optional, a KV cache (batch 1) that already holds the first `cache.lengths[0]` tokens of `prompt_ids`
    (the chat session reuses it across turns); only the rest of the prompt is prefilled. On return the cache holds
    the prompt and every generated token except the last, which was never fed back.
    """
    prompt = [int(i) for i in prompt_ids]
    (seq,) = _setup(model, [prompt], sampling, max_new_tokens, stop_ids, stop_strings, tokenizer, rng)
    if cache is None:
        cache = model.new_cache(1, min(model.config.n_ctx, len(prompt) + seq.max_new_tokens))
    n_cached = int(np.asarray(cache.lengths)[0])
    if not 0 <= n_cached < len(prompt):
        raise ValueError(f"the cache holds {n_cached} tokens but the prompt has {len(prompt)}: it must hold a "
                         f"strict prefix of the prompt (rewind it first)")
    ids = np.asarray([prompt[n_cached:]], dtype=np.int64)  # (1, T) the part of the prompt not yet cached
    logits = model.forward(ids, cache=cache, last_only=True)[0, -1]  # (1, 1, V) -> (V,) prefill
    while True:
        step = seq.step(logits)
        yield step
        if seq.finished:
            return
        logits = model.forward(np.asarray([[step.token_id]], dtype=np.int64), cache=cache)[0, -1]  # (1,1,V) -> (V,)


def generate_batch(model: LanguageModel, prompts: Sequence[Sequence[int]], sampling: SamplingConfig | None = None, *,
                   max_new_tokens: int = 256, stop_ids: Iterable[int] = (), stop_strings: Iterable[str] = (),
                   tokenizer: Tokenizer | None = None,
                   rng: np.random.Generator | Sequence[np.random.Generator] | None = None) -> Iterator[Step]:
    """Generate continuations of several prompts at once. Yields Steps (`.row` says whose) in row order at each
    decode step; a row that has finished yields nothing more. See `_rngs` for how randomness is split across rows.
    A model with a `small_batch_decoding` block (minichat's Transformer) runs the decode steps inside it."""
    scope = getattr(model, "small_batch_decoding", None)  # optional: not part of the LanguageModel protocol
    with scope() if scope is not None and len(prompts) > 1 else nullcontext():
        yield from _generate_batch(model, prompts, sampling, max_new_tokens, stop_ids, stop_strings, tokenizer, rng)


def _generate_batch(model, prompts, sampling, max_new_tokens, stop_ids, stop_strings, tokenizer, rng) -> Iterator[Step]:
    prompts = [[int(i) for i in p] for p in prompts]
    seqs = _setup(model, prompts, sampling, max_new_tokens, stop_ids, stop_strings, tokenizer, rng)
    B = len(prompts)
    lengths = np.array([len(p) for p in prompts], dtype=np.int64)  # (B,)
    cache = model.new_cache(B, min(model.config.n_ctx, int(lengths.max()) + seqs[0].max_new_tokens))
    ids = np.zeros((B, int(lengths.max())), dtype=np.int64)  # (B, T) right-padded with 0
    for b, p in enumerate(prompts):
        ids[b, : len(p)] = p
    ragged = bool((lengths != lengths[0]).any())
    last = model.forward(ids, cache=cache, lengths=lengths if ragged else None, last_only=True)[:, -1]  # (B, V)
    while True:
        next_ids = np.zeros((B, 1), dtype=np.int64)  # (B, 1) one new token per live row
        live = np.zeros(B, dtype=np.int64)  # (B,) 1 for rows still generating, 0 for finished ones
        for seq in seqs:
            if seq.finished:
                continue
            step = seq.step(last[seq.row])
            yield step
            if not seq.finished:
                next_ids[seq.row, 0], live[seq.row] = step.token_id, 1
        if not live.any():
            return
        last = model.forward(next_ids, cache=cache, lengths=None if live.all() else live)[:, -1]  # (B, 1, V) -> (B, V)


def generate_naive(model: LanguageModel, prompt_ids: Sequence[int], sampling: SamplingConfig | None = None, *,
                   max_new_tokens: int = 256, stop_ids: Iterable[int] = (), stop_strings: Iterable[str] = (),
                   tokenizer: Tokenizer | None = None, rng: np.random.Generator | None = None) -> Iterator[Step]:
    """The reference twin of `generate`: no KV cache, the full sequence recomputed for every new token."""
    (seq,) = _setup(model, [[int(i) for i in prompt_ids]], sampling, max_new_tokens, stop_ids, stop_strings,
                    tokenizer, rng)
    while not seq.finished:
        logits = model.forward(np.asarray([seq.ids], dtype=np.int64))  # (1, T, V), everything from scratch
        yield seq.step(logits[0, -1])


def collect(steps: Iterable[Step]) -> list[Completion]:
    """Gather a stream of Steps (from any of the loops) into one Completion per row, in row order."""
    rows: dict[int, list[Step]] = {}
    for s in steps:
        rows.setdefault(s.row, []).append(s)
    out = []
    for r in sorted(rows):
        st = rows[r]
        last = st[-1]
        out.append(Completion(tuple(s.token_id for s in st), "".join(s.text for s in st), last.finish_reason or "",
                              last.stop, tuple(st)))
    return out


def complete(model: LanguageModel, prompt_ids: Sequence[int], sampling: SamplingConfig | None = None,
             **kwargs: Any) -> Completion:
    """`generate` run to the end (same keyword arguments)."""
    return collect(generate(model, prompt_ids, sampling, **kwargs))[0]


def stream_text(model: LanguageModel, tokenizer: Tokenizer, prompt: str, *, max_new_tokens: int = 256,
                stop_strings: Iterable[str] = (), stop_ids: Iterable[int] | None = None,
                rng: np.random.Generator | None = None, **sampling: Any) -> Iterator[str]:
    """Plain-text completion for the CLI: encode `prompt`, stream the continuation's text pieces (non-empty ones).

    The prompt is encoded as ordinary text (a special-token string in it stays text). stop_ids=None stops at any of
    the tokenizer's special tokens (in plain completion a control token is never part of the text). `sampling`
    holds SamplingConfig fields: temperature=0.7, top_p=0.9, seed=1, ...
    """
    config = SamplingConfig(**sampling)
    ids = tokenizer.encode(prompt, disallowed_special=())
    stops = tokenizer.special_ids if stop_ids is None else stop_ids
    for step in generate(model, ids, config, max_new_tokens=max_new_tokens, stop_ids=stops,
                         stop_strings=stop_strings, tokenizer=tokenizer, rng=rng):
        if step.text:
            yield step.text
