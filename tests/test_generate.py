"""The generation loop: cached = naive, batched = one at a time, stops, UTF-8 text deltas, finish reasons.

Two kinds of model drive it: `PrefixModel`, a small NumPy model written here whose every logit depends on the whole
prefix (so a cache that dropped or repeated a token would change the output) and whose padding logits are NaN (so
reading a padded position fails loudly); `ScriptedModel`, which emits a fixed token sequence (for exact stop-string
and UTF-8 checks); and, once it exists, minichat's real Transformer with tiny random GPT-2 and Llama configs.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minichat.generate import (BigramModel, SamplingConfig, Step, TextStream, collect, complete, generate,
                               generate_batch, generate_naive, holdback_length, log_softmax, stream_text)
from minichat.generate.text import find_stop
from minichat.tokenizer import train

TEXT = ("The quick brown fox jumps over the lazy dog. Une équipe française a gagné. Café, crème brûlée, naïve. "
        "Numbers 12345 and symbols #$%&. ") * 8


_TOK = train(TEXT, vocab_size=300, special_tokens={"<|end|>": 300})  # hermetic: a vocabulary trained right here


@pytest.fixture(scope="module")
def tok():
    return _TOK


class _IdCache:
    def __init__(self, batch_size: int, max_len: int):
        self.ids = np.zeros((batch_size, max_len), np.int64)  # (B, S) tokens seen per row
        self.lengths = np.zeros(batch_size, np.int64)  # (B,)


class PrefixModel:
    """logits(t) = W tanh(E[x_t] + P[t] + mean(E[x_0..x_t])): causal, position-aware, depends on all the prefix."""

    def __init__(self, vocab_size: int = 41, n_ctx: int = 48, seed: int = 0):
        rng = np.random.default_rng(seed)
        d = 16
        self.E = rng.standard_normal((vocab_size, d)).astype(np.float32)  # (V, d)
        self.P = rng.standard_normal((n_ctx, d)).astype(np.float32)  # (n_ctx, d)
        self.W = (rng.standard_normal((d, vocab_size)) * 1.5).astype(np.float32)  # (d, V)
        self.config = type("Cfg", (), {"vocab_size": vocab_size, "n_ctx": n_ctx})()
        self.calls: list[tuple[int, int]] = []  # (B, T) of every forward
        self.last_only: list[bool] = []  # the last_only flag of every forward

    def new_cache(self, batch_size: int, max_len: int) -> _IdCache:
        return _IdCache(batch_size, max_len)

    def forward(self, ids, cache=None, lengths=None, last_only=False):  # (B, T) -> (B, T, V) or (B, 1, V)
        ids = np.asarray(ids)
        B, T = ids.shape
        self.calls.append((B, T))
        self.last_only.append(last_only)
        n = np.full(B, T) if lengths is None else np.asarray(lengths)  # (B,)
        out = np.full((B, T, self.W.shape[1]), np.nan, np.float32)  # padding stays NaN
        for b in range(B):
            past = cache.ids[b, : cache.lengths[b]] if cache is not None else np.zeros(0, np.int64)
            seq = np.concatenate([past, ids[b, : n[b]]])  # (S,) everything this row has seen
            if len(seq) > self.config.n_ctx:
                raise ValueError("beyond n_ctx")
            e = self.E[seq]  # (S, d)
            mean = np.cumsum(e, axis=0) / np.arange(1, len(seq) + 1)[:, None].astype(np.float32)  # (S, d)
            h = np.tanh(e + self.P[: len(seq)] + mean)  # (S, d)
            out[b, : n[b]] = (h[len(past):] @ self.W).astype(np.float32)  # (n_b, V)
            if cache is not None:
                if cache.lengths[b] + n[b] > cache.ids.shape[1]:
                    raise ValueError("cache overflow")
                cache.ids[b, cache.lengths[b]: cache.lengths[b] + n[b]] = ids[b, : n[b]]
                cache.lengths[b] += n[b]
        return out[np.arange(B), np.maximum(n - 1, 0)][:, None] if last_only else out


class ScriptedModel:
    """Predicts script[i] after the prompt's last token and after script[i-1] (by position), whatever came before."""

    def __init__(self, n_prompt: int, script: list[int], vocab_size: int, n_ctx: int = 512):
        self.n_prompt, self.script = n_prompt, list(script)
        self.config = type("Cfg", (), {"vocab_size": vocab_size, "n_ctx": n_ctx})()

    def new_cache(self, batch_size: int, max_len: int) -> _IdCache:
        return _IdCache(batch_size, max_len)

    def forward(self, ids, cache=None, lengths=None, last_only=False):  # (B, T) -> (B, T, V) or (B, 1, V)
        B, T = np.asarray(ids).shape
        start = 0 if cache is None else int(cache.lengths[0])
        out = np.zeros((B, T, self.config.vocab_size), np.float32)
        for t in range(T):
            i = start + t + 1 - self.n_prompt  # which script token comes after position start + t
            if 0 <= i < len(self.script):
                out[:, t, self.script[i]] = 50.0
        if cache is not None:
            cache.lengths += T
        return out[:, -1:] if last_only else out


def drain(it) -> list[Step]:
    return list(it)


CONFIGS = [
    SamplingConfig(temperature=0.0),
    SamplingConfig(temperature=1.0, seed=3),
    SamplingConfig(temperature=0.7, top_k=10, top_p=0.9, min_p=0.02, seed=4, logprobs=3),
    SamplingConfig(temperature=1.2, repetition_penalty=1.3, frequency_penalty=0.4, presence_penalty=0.3,
                   logit_bias={5: 2.0, 7: -float("inf")}, seed=5),
]


# -- the cached loop against the naive reference ---------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("prompt", [[1], [3, 9, 27, 40, 2, 2, 17]])
def test_cached_equals_naive(cfg, prompt):
    model = PrefixModel()
    cached = drain(generate(model, prompt, cfg, max_new_tokens=25))
    naive = drain(generate_naive(model, prompt, cfg, max_new_tokens=25))
    assert [s.token_id for s in cached] == [s.token_id for s in naive]
    assert [(s.finish_reason, s.index) for s in cached] == [(s.finish_reason, s.index) for s in naive]
    # the same tokens, and the same numbers to float32 rounding: the two loops score (1, V) and (T, V) arrays, and
    # NumPy's vectorised exp/log may round those differently on some CPUs (2e-7 apart on one AMD EPYC host)
    for a, b in zip(cached, naive):
        assert (a.logprob is None) == (b.logprob is None) and (a.top_logprobs is None) == (b.top_logprobs is None)
        if a.logprob is not None:
            assert abs(a.logprob - b.logprob) < 1e-5
        if a.top_logprobs is not None:
            assert [t for t, _ in a.top_logprobs] == [t for t, _ in b.top_logprobs]
            np.testing.assert_allclose([v for _, v in a.top_logprobs], [v for _, v in b.top_logprobs], atol=1e-5)
    assert len(cached) == 25 and cached[-1].finish_reason == "length"
    if 7 in cfg.logit_bias:
        assert 7 not in [s.token_id for s in cached]  # banned


def test_cached_loop_prefills_once_then_feeds_one_token():
    model = PrefixModel()
    drain(generate(model, [4, 5, 6, 7], SamplingConfig(temperature=0.0), max_new_tokens=6))
    assert model.calls == [(1, 4)] + [(1, 1)] * 5  # the last token is never fed back
    assert model.last_only[0]  # the prefill asks for the last position's logits only
    model.calls.clear()
    drain(generate_naive(model, [4, 5, 6, 7], SamplingConfig(temperature=0.0), max_new_tokens=3))
    assert model.calls == [(1, 4), (1, 5), (1, 6)]


def test_cache_reuse_prefills_only_the_rest():
    model = PrefixModel()
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    cold = [s.token_id for s in generate(model, prompt, SamplingConfig(temperature=0.0), max_new_tokens=8)]
    cache = model.new_cache(1, 40)
    model.forward(np.array([prompt[:5]]), cache=cache)  # an earlier turn left 5 tokens in the cache
    model.calls.clear()
    warm = [s.token_id for s in generate(model, prompt, SamplingConfig(temperature=0.0), max_new_tokens=8,
                                         cache=cache)]
    assert warm == cold and model.calls[0] == (1, 3)
    assert cache.lengths[0] == len(prompt) + 8 - 1
    with pytest.raises(ValueError, match="strict prefix"):
        drain(generate(model, prompt[:3], SamplingConfig(temperature=0.0), cache=cache))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=12), st.integers(0, 2**31), st.integers(1, 15))
def test_cached_equals_naive_property(prompt, seed, n):
    model = PrefixModel()
    cfg = SamplingConfig(temperature=0.9, top_p=0.95, seed=seed)
    a = [s.token_id for s in generate(model, prompt, cfg, max_new_tokens=n)]
    b = [s.token_id for s in generate_naive(model, prompt, cfg, max_new_tokens=n)]
    assert a == b


# -- batched generation ----------------------------------------------------------------------------------------------

PROMPTS = [[3, 9, 27], [1, 2, 3, 4, 5, 6, 7, 8, 9], [40], [11, 12, 13, 14, 15]]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_batched_equals_one_at_a_time(cfg):
    model = PrefixModel()
    singles = [drain(generate(model, p, cfg, max_new_tokens=12)) for p in PROMPTS]
    # make rows finish at different times: each row stops at the token its lone run produced at step 3 + row
    stops = {s[3 + r].token_id for r, s in enumerate(singles)}
    singles = [drain(generate(model, p, cfg, max_new_tokens=12, stop_ids=stops)) for p in PROMPTS]
    batched = drain(generate_batch(model, PROMPTS, cfg, max_new_tokens=12, stop_ids=stops))
    rows = collect(batched)
    assert len({len(r.token_ids) for r in rows}) > 1  # rows really finished at different steps
    for r, single in enumerate(singles):
        got = rows[r].steps
        assert [s.token_id for s in got] == [s.token_id for s in single]
        assert [s.finish_reason for s in got] == [s.finish_reason for s in single]
        assert all(s.row == r for s in got)
    # steps come out interleaved in row order, one per live row per decode step
    firsts = [s.row for s in batched[: len(PROMPTS)]]
    assert firsts == list(range(len(PROMPTS)))


def test_batched_with_one_generator_per_row():
    model = PrefixModel()
    cfg = SamplingConfig(temperature=1.0)
    seeds = [10, 11, 12, 13]
    rows = collect(generate_batch(model, PROMPTS, cfg, max_new_tokens=10,
                                  rng=[np.random.default_rng(s) for s in seeds]))
    for p, s, row in zip(PROMPTS, seeds, rows):
        assert row.token_ids == complete(model, p, cfg, max_new_tokens=10, rng=np.random.default_rng(s)).token_ids
    spawned = collect(generate_batch(model, PROMPTS, cfg, max_new_tokens=10, rng=np.random.default_rng(0)))
    again = collect(generate_batch(model, PROMPTS, cfg, max_new_tokens=10, rng=np.random.default_rng(0)))
    assert [r.token_ids for r in spawned] == [r.token_ids for r in again]
    with pytest.raises(ValueError, match="one per prompt"):
        drain(generate_batch(model, PROMPTS, cfg, rng=[np.random.default_rng(0)]))


def test_batched_text_and_stop_strings(tok):
    model = BigramModel.from_text(tok, TEXT)
    prompts = [tok.encode("The quick"), tok.encode("Café"), tok.encode("Numbers 1")]
    cfg = SamplingConfig(temperature=0.8, seed=9)
    kw = dict(max_new_tokens=40, tokenizer=tok, stop_strings=["."])
    rows = collect(generate_batch(model, prompts, cfg, **kw))
    for p, row in zip(prompts, rows):
        single = complete(model, p, cfg, **kw)
        assert (row.token_ids, row.text, row.finish_reason) == (single.token_ids, single.text, single.finish_reason)


# -- stops, finish reasons, text -------------------------------------------------------------------------------------

def test_finish_reasons_and_stop_ids(tok):
    model = PrefixModel()
    out = complete(model, [1, 2], SamplingConfig(temperature=0.0), max_new_tokens=5)
    assert len(out.token_ids) == 5 and out.finish_reason == "length" and out.stop is None
    stop = out.token_ids[2]
    out2 = complete(model, [1, 2], SamplingConfig(temperature=0.0), max_new_tokens=5, stop_ids=[stop])
    first = out.token_ids.index(stop)
    assert out2.token_ids == out.token_ids[: first + 1] and out2.finish_reason == "stop" and out2.stop == stop
    assert [s.finish_reason for s in out2.steps] == [None] * first + ["stop"]
    # the context window: prompt + output never exceeds n_ctx
    full = complete(model, [i % 41 for i in range(45)], SamplingConfig(temperature=0.0), max_new_tokens=100)
    assert len(full.token_ids) == 48 - 45 and full.finish_reason == "length"


def test_stop_id_text_is_not_emitted(tok):
    end = tok.encode_special("<|end|>")
    script = tok.encode("Bonjour!") + [end] + tok.encode(" never shown")
    model = ScriptedModel(1, script, tok.n_vocab)
    out = complete(model, [tok.encode("x")[0]], SamplingConfig(temperature=0.0), tokenizer=tok, stop_ids=[end])
    assert out.text == "Bonjour!" and out.finish_reason == "stop" and out.stop == end and out.token_ids[-1] == end


def scripted_run(tok, text: str, stop_strings=(), **kw) -> list[Step]:
    """Generate exactly the tokens of `text` (then finish by length), with the given stop strings."""
    script = tok.encode(text)
    model = ScriptedModel(1, script, tok.n_vocab)
    return drain(generate(model, [0], SamplingConfig(temperature=0.0), tokenizer=tok, stop_strings=stop_strings,
                          max_new_tokens=len(script), **kw))


def test_stop_string_spanning_several_tokens(tok):
    text = "Café au lait.\nUser: ignore me"
    assert len(tok.encode("\nUser:")) > 2  # never seen in training: many tokens
    steps = scripted_run(tok, text, ["\nUser:"])
    out = collect(steps)[0]
    assert out.text == "Café au lait." and out.finish_reason == "stop" and out.stop == "\nUser:"
    assert "".join(s.text for s in steps) == out.text
    assert not any("U" in s.text or "\n" in s.text for s in steps)  # no piece of the stop string ever leaked
    # the stop's tokens are generated (they are in token_ids) but their text is not shown
    assert tok.decode(out.token_ids).startswith(text[: len("Café au lait.\nUser:")])


def test_held_back_text_is_released_when_the_stop_cannot_match(tok):
    text = "Us and User and Use!"
    steps = scripted_run(tok, text, ["User:"])
    out = collect(steps)[0]
    assert out.text == text and out.finish_reason == "length"
    # "Us" was held while it could still start "User:", and released once it could not
    released = "".join(s.text for s in steps[: len(tok.encode("Us"))])
    assert not released.endswith("Us")
    # stop strings: the earliest match wins, whichever is listed first
    out = collect(scripted_run(tok, "abc xyz abc", ["abc", " xy"]))[0]
    assert out.text == "" and out.stop == "abc"
    out = collect(scripted_run(tok, "1 xyz abc", ["abc", " xy"]))[0]
    assert out.text == "1" and out.stop == " xy"


def test_utf8_split_across_tokens_is_held_then_released(tok):
    text = "ok 🙂 né ✓"
    script = tok.encode(text)
    assert any(not _whole(tok.token_bytes(i)) for i in script)  # some token holds only part of a character
    steps = scripted_run(tok, text)
    assert "".join(s.text for s in steps) == text
    assert all("\ufffd" not in s.text for s in steps)
    assert any(s.text == "" for s in steps)  # held back at least once
    # the emoji comes out whole in exactly one step
    assert sum("🙂" in s.text for s in steps) == 1


def _whole(b: bytes) -> bool:
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def test_a_truncated_character_is_flushed_as_replacement(tok):
    script = tok.encode("a🙂")
    cut = script[:-1]  # generation stops (length) in the middle of the emoji
    model = ScriptedModel(1, script, tok.n_vocab)
    out = complete(model, [0], SamplingConfig(temperature=0.0), tokenizer=tok, max_new_tokens=len(cut))
    assert out.text == tok.decode(cut) and out.text.endswith("\ufffd")


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab cé🙂\n:U")), min_size=1, max_size=30),
       st.lists(st.text(alphabet=st.sampled_from(list("ab cé🙂\n:U")), min_size=1, max_size=4), max_size=3))
@example("U::", [":", "U::"])
def test_text_equals_decode_cut_at_the_first_stop(text, stops):
    tok = _TOK
    steps = scripted_run(tok, text, stops)
    joined = "".join(s.text for s in steps)
    # Streaming stops at the first token that completes any stop string, and cuts the text seen so far at the
    # earliest stop in it. (A longer stop starting earlier but completed later, e.g. "U::" vs ":" in "U::", loses:
    # the stream cannot wait for it.) The reference: the shortest token prefix whose text contains a stop.
    ids = tok.encode(text)
    first = next((n for n in range(1, len(ids) + 1) if find_stop(tok.decode(ids[:n]), stops)), None)
    if first is None:
        assert joined == text and steps[-1].finish_reason == "length"
    else:
        seen = tok.decode(ids[:first])
        hit = find_stop(seen, stops)
        assert joined == seen[: hit[0]] and steps[-1].finish_reason == "stop" and steps[-1].stop == hit[1]
        assert len(steps) == first  # it stopped at the token that completed the stop string, not later


def test_holdback_length_and_find_stop():
    assert holdback_length("Hello\nUs", ["\nUser:"]) == 3
    assert holdback_length("Hello", ["\nUser:"]) == 0
    assert holdback_length("aba", ["abc", "bad"]) == 2
    assert holdback_length("", ["abc"]) == 0
    assert holdback_length("xab", ["abc"]) == 2
    assert holdback_length("abc", ["abc"]) == 0  # a complete match is find_stop's business, not a maybe
    assert holdback_length("xyz", []) == 0
    assert find_stop("one two three", ["three", "o t", "two"]) == (4, "two")  # earliest, not first listed
    assert find_stop("abcd", ["ab", "abc"]) == (0, "abc")
    assert find_stop("abc", ["x"]) is None


def test_text_stream_rejects_bad_use(tok):
    with pytest.raises(ValueError, match="non-empty"):
        TextStream(tok, [""])
    ts = TextStream(tok, ["a"])
    ts.feed(tok.encode("a")[0])
    with pytest.raises(ValueError, match="already stopped"):
        ts.feed(0)


# -- log-probabilities -----------------------------------------------------------------------------------------------

def test_logprobs_come_from_the_models_distribution():
    model = PrefixModel()
    prompt = [5, 6, 7]
    cfg = SamplingConfig(temperature=0.5, top_k=3, seed=1, logprobs=4)
    steps = drain(generate(model, prompt, cfg, max_new_tokens=6))
    ids = list(prompt)
    for s in steps:
        lp = log_softmax(model.forward(np.array([ids]))[0, -1])  # (V,) raw model distribution
        assert abs(s.logprob - float(lp[s.token_id])) < 1e-5
        order = np.argsort(-lp, kind="stable")[:4]
        assert [i for i, _ in s.top_logprobs] == order.tolist()
        assert all(isinstance(i, int) and isinstance(v, float) for i, v in s.top_logprobs)
        assert s.token_id in [i for i, _ in s.top_logprobs[:3]]  # top_k=3 (no ties here)
        ids.append(s.token_id)
    assert all(s.logprob is None and s.top_logprobs == () for s in generate(model, prompt, max_new_tokens=3))


def test_presence_penalty_prevents_repeats():
    model = PrefixModel()
    out = complete(model, [1, 2, 3], SamplingConfig(temperature=0.0, presence_penalty=1000.0), max_new_tokens=30)
    assert len(set(out.token_ids)) == 30
    plain = complete(model, [1, 2, 3], SamplingConfig(temperature=0.0), max_new_tokens=30)
    assert len(set(plain.token_ids)) < 30  # without it this model does repeat


def test_same_seed_same_output_and_config_seed():
    model = PrefixModel()
    a = complete(model, [1], SamplingConfig(seed=42), max_new_tokens=20).token_ids
    b = complete(model, [1], SamplingConfig(seed=42), max_new_tokens=20).token_ids
    c = complete(model, [1], SamplingConfig(seed=43), max_new_tokens=20).token_ids
    d = complete(model, [1], SamplingConfig(), max_new_tokens=20, rng=np.random.default_rng(42)).token_ids
    assert a == b == d and a != c


# -- validation ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prompt, kwargs, match", [
    ([], {}, "empty"),
    ([i % 41 for i in range(48)], {}, "context window"),
    ([41], {}, "outside"),
    ([-1], {}, "outside"),
    ([1], {"max_new_tokens": 0}, "max_new_tokens"),
    ([1], {"max_new_tokens": 2.5}, "max_new_tokens"),
    ([1], {"stop_strings": ["x"]}, "tokenizer"),
])
def test_bad_arguments(prompt, kwargs, match):
    model = PrefixModel()
    for loop in (generate, generate_naive):
        with pytest.raises(ValueError, match=match):
            drain(loop(model, prompt, **kwargs))
    with pytest.raises(TypeError):
        drain(generate(model, [1], {"temperature": 0.5}))  # type: ignore[arg-type]


def test_batched_prefill_asks_for_each_rows_last_position():
    model = PrefixModel()  # its padding logits are NaN: reading a padded position would fail loudly
    drain(generate_batch(model, PROMPTS, SamplingConfig(temperature=0.0), max_new_tokens=3))
    assert model.calls[0] == (len(PROMPTS), max(map(len, PROMPTS))) and model.last_only[0]
    assert not any(model.last_only[1:])  # decode steps have one position per row anyway


def test_bigram_last_only(tok):
    model = BigramModel.from_text(tok, TEXT)
    ids = np.array([[5, 6, 7], [8, 9, 0]])
    full = model.forward(ids, lengths=[3, 2])  # (2, 3, V)
    np.testing.assert_array_equal(model.forward(ids, lengths=[3, 2], last_only=True)[:, 0], full[[0, 1], [2, 1]])


# -- the CLI helper ---------------------------------------------------------------------------------------------------

def test_stream_text(tok):
    model = BigramModel.from_text(tok, TEXT)
    pieces = list(stream_text(model, tok, "The quick", max_new_tokens=30, temperature=0.7, seed=2))
    assert pieces and all(pieces)
    same = complete(model, tok.encode("The quick"), SamplingConfig(temperature=0.7, seed=2), max_new_tokens=30,
                    tokenizer=tok, stop_ids=tok.special_ids)
    assert "".join(pieces) == same.text
    # special tokens end plain completion by default
    end = tok.encode_special("<|end|>")
    script = tok.encode(" here") + [end] + tok.encode(" more")
    model = ScriptedModel(len(tok.encode("hi")), script, tok.n_vocab)
    assert "".join(stream_text(model, tok, "hi", temperature=0.0)) == " here"
    with pytest.raises(ValueError, match="temperature"):
        list(stream_text(model, tok, "hi", temperature=-1.0))


# -- minichat's transformer ------------------------------------------------------------------------------------------

def _real_model(family: str):
    transformer = pytest.importorskip("minichat.model.transformer")
    from minichat.config import ModelConfig

    if family == "gpt2":
        cfg = ModelConfig.gpt2(vocab_size=64, n_ctx=48, n_embd=32, n_layer=2, n_head=4)
    else:
        cfg = ModelConfig.llama(vocab_size=64, n_ctx=48, n_embd=32, n_layer=2, n_head=4, n_kv_head=2, n_inner=48,
                                tie_embeddings=False)
    params = transformer.init_params(cfg, np.random.default_rng(0), std=0.5)  # large init: peaked logits
    return transformer.Transformer(cfg, params)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("cfg", CONFIGS[:3])
def test_real_transformer_cached_naive_batched(family, cfg):
    model = _real_model(family)
    prompts = [[1, 2, 3], [5, 6, 7, 8, 9, 10, 11], [63]]
    singles = [drain(generate(model, p, cfg, max_new_tokens=10)) for p in prompts]
    for p, single in zip(prompts, singles):
        naive = drain(generate_naive(model, p, cfg, max_new_tokens=10))
        assert [s.token_id for s in single] == [s.token_id for s in naive]
    stops = {singles[0][4].token_id}  # row 0 (at least) finishes early
    singles = [drain(generate(model, p, cfg, max_new_tokens=10, stop_ids=stops)) for p in prompts]
    rows = collect(generate_batch(model, prompts, cfg, max_new_tokens=10, stop_ids=stops))
    for single, row in zip(singles, rows):
        assert row.token_ids == tuple(s.token_id for s in single)
        assert row.finish_reason == single[-1].finish_reason
