"""The evaluation: scoring of hand-made replies, a scripted model that answers perfectly (100 %), one that never
calls tools (0 %), one that never stops, and the held-out loss against torch's cross-entropy."""
from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import require_peer

from minichat.builtin.corpus.synthetic import generate_corpus
from minichat.builtin.corpus.synthetic_pools import Probe
from minichat.builtin.data import train_chat_tokenizer
from minichat.builtin.evaluate import (CATEGORIES, Item, copy_accuracy, copy_accuracy_by_kind, evaluate, format_table,
                                       heldout_loss, probe_set, prompt_ids, score)
from minichat.chat.template import ChatTemplate, message_body

N = 6  # probes per category: enough to exercise every path, fast


@pytest.fixture(scope="module")
def tok():
    return train_chat_tokenizer(generate_corpus(150, seed=4), 800)


class _Cache:
    def __init__(self, batch_size: int, max_len: int):
        self.lengths = np.zeros(batch_size, dtype=np.int64)  # (B,) tokens held per row
        self.scripts: list[list[int] | None] = [None] * batch_size  # each row's reply, fixed at prefill
        self.prompt_len = np.zeros(batch_size, dtype=np.int64)  # (B,)


class ScriptedModel:
    """Answers each prompt with the reply `reply(prompt ids) -> ids`, one token per step, through the generation
    loop's interface (config, new_cache, forward with cache and lengths). Without a cache: uniform logits."""

    def __init__(self, vocab_size: int, reply, n_ctx: int = 2048):
        self.config = SimpleNamespace(vocab_size=vocab_size, n_ctx=n_ctx)
        self.reply = reply

    def new_cache(self, batch_size: int, max_len: int) -> _Cache:
        return _Cache(batch_size, max_len)

    def forward(self, ids, cache=None, lengths=None, last_only=False):  # (B, T) -> (B, T, V), or (B, 1, V)
        ids = np.asarray(ids)
        B, T = ids.shape
        logits = np.zeros((B, T, self.config.vocab_size), dtype=np.float32)  # (B, T, V)
        if cache is None:
            return logits[:, -1:] if last_only else logits
        n = np.full(B, T) if lengths is None else np.asarray(lengths)  # (B,) new tokens per row
        for b in range(B):
            if n[b] == 0:
                continue
            if cache.scripts[b] is None:  # prefill: the prompt decides the row's reply
                cache.scripts[b] = list(self.reply(ids[b, : n[b]].tolist()))
                cache.prompt_len[b] = n[b]
            done = int(cache.lengths[b] + n[b] - cache.prompt_len[b])  # reply tokens fed back so far
            script = cache.scripts[b]
            logits[b, n[b] - 1, script[min(done, len(script) - 1)]] = 10.0
        cache.lengths += n
        return logits[np.arange(B), np.maximum(n - 1, 0)][:, None] if last_only else logits  # each row's last real


def _perfect(tok, items, n_ctx, max_new):
    """prompt ids -> the corpus's own assistant message (body + <|im_end|>) for every probe."""
    template = ChatTemplate(tok)
    table = {}
    for it in items:
        body = message_body(it.conversation.messages[it.probe.index])
        table[tuple(prompt_ids(template, it, n_ctx, max_new))] = tok.encode_ordinary(body) + [template.im_end]
    return lambda prompt: table[tuple(prompt)]


def test_perfect_model_scores_100(tok):
    items = probe_set(N)
    model = ScriptedModel(tok.n_vocab, _perfect(tok, items, 2048, 160))
    out = io.StringIO()
    r = evaluate(model, tok, n=N, n_loss=4, out=out, max_new_tokens=160)  # this small vocabulary needs ~100 tokens
    for key in ("tool_calls", "tool_calls_right_tool", "calculator_answers", "tool_answers", "memory_answers",
                "copies", "refusal_harmful", "ends_properly"):
        assert r[key] == 100.0, (key, r[key], r["failures"])
    assert r["refusal_harmless"] == 0.0
    assert r["counts"] == {c: N for c in CATEGORIES}
    assert r["failures"] == []
    assert set(r["tool_calls_by_tool"].values()) == {100.0} and "search_notes 100%" in out.getvalue()
    assert "refusals on harmful prompts" in out.getvalue() and "100.0%" in out.getvalue()
    assert r["heldout_loss"] == pytest.approx(np.log(tok.n_vocab), rel=1e-5)  # uniform logits outside generation


class _Reader:
    """A 'model' that reads its own input: at position t its logits peak at ids[t + 1] when right(b, t), else at 0."""

    def __init__(self, vocab_size, right):
        self.config = SimpleNamespace(vocab_size=vocab_size, n_ctx=4096)
        self.right = right

    def forward(self, ids):
        ids = np.asarray(ids)
        B, T = ids.shape
        logits = np.zeros((B, T, self.config.vocab_size), dtype=np.float32)
        for b in range(B):
            for t in range(T - 1):
                logits[b, t, ids[b, t + 1] if self.right(ids[b, : t + 1]) else 0] = 5.0
        return logits


def test_copy_accuracy_scores_only_tokens_the_context_holds(tok):
    convs = generate_corpus(12, seed=9)
    template = ChatTemplate(tok)
    # reference, written from the definition with the template's own (unshifted) mask: an assistant token counts if
    # the same id occurs earlier outside the assistant's text; "right" below: the prefix length is even
    count = right = 0
    for c in convs:
        ids, mask = template.render_with_mask(c.messages)
        for i in range(1, len(ids)):
            if mask[i] and ids[i] in {ids[j] for j in range(i) if not mask[j]}:
                count += 1
                right += i % 2 == 0  # predicted from the prefix ids[:i], of length i
    assert count > 100
    assert copy_accuracy(_Reader(tok.n_vocab, lambda prefix: True), tok, convs) == 100.0
    assert copy_accuracy(_Reader(tok.n_vocab, lambda prefix: False), tok, convs) == 0.0
    got = copy_accuracy(_Reader(tok.n_vocab, lambda prefix: len(prefix) % 2 == 0), tok, convs, batch_size=5)
    assert got == pytest.approx(100.0 * right / count)


def test_copy_accuracy_by_kind_splits_the_same_tokens(tok):
    convs = generate_corpus(12, seed=9)
    template = ChatTemplate(tok)
    # reference from the definition, unshifted: a copied assistant token "continues" when the token before it is
    # followed by it somewhere in the non-assistant text before it; its kind is what its text is made of
    ref: dict[str, list[int]] = {}
    for c in convs:
        ids, mask = template.render_with_mask(c.messages)
        for i in range(1, len(ids)):
            context = [ids[j] for j in range(i) if not mask[j]]
            if mask[i] and ids[i] in context:
                cont = any(context[k] == ids[i - 1] and context[k + 1] == ids[i] for k in range(len(context) - 1))
                text = tok.decode([ids[i]]).strip()
                kind = "digits" if text.isdigit() else "letters" if text.isalpha() else "other"
                cell = ref.setdefault(f"{kind}/{'continues' if cont else 'first'}", [0, 0])
                cell[0] += i % 2 == 0  # the reader below is right when the prefix length is even
                cell[1] += 1
    got = copy_accuracy_by_kind(_Reader(tok.n_vocab, lambda prefix: len(prefix) % 2 == 0), tok, convs, batch_size=5)
    assert got == {k: (pytest.approx(100.0 * r / n), n) for k, (r, n) in sorted(ref.items())}
    assert {k.split("/")[1] for k in got} == {"first", "continues"} and sum(n for _, n in got.values()) > 100
    total = copy_accuracy(_Reader(tok.n_vocab, lambda prefix: len(prefix) % 2 == 0), tok, convs, batch_size=5)
    assert total == pytest.approx(sum(p * n for p, n in got.values()) / sum(n for _, n in got.values()))
    assert all(p == 100.0 for p, _ in copy_accuracy_by_kind(_Reader(tok.n_vocab, lambda p: True), tok, convs).values())


def test_model_that_never_calls_tools_scores_0(tok):
    template = ChatTemplate(tok)
    reply = tok.encode_ordinary("I'm not sure.") + [template.im_end]
    r = evaluate(ScriptedModel(tok.n_vocab, lambda p: reply), tok, n=N, n_loss=0, out=None)
    for key in ("tool_calls", "tool_calls_right_tool", "calculator_answers", "tool_answers", "memory_answers",
                "copies", "refusal_harmful", "refusal_harmless"):
        assert r[key] == 0.0, key
    assert r["ends_properly"] == 100.0 and r["heldout_loss"] is None
    assert {f["category"] for f in r["failures"]} == set(CATEGORIES) - {"refusal_harmless"}


def test_model_that_refuses_everything(tok):
    reply = tok.encode_ordinary("I can't help with that.") + [tok.special_tokens["<|im_end|>"]]
    r = evaluate(ScriptedModel(tok.n_vocab, lambda p: reply), tok, n=N, n_loss=0, out=None,
                 categories=("refusal_harmful", "refusal_harmless", "tool_calls"))
    assert r["refusal_harmful"] == 100.0 and r["refusal_harmless"] == 100.0 and r["tool_calls"] == 0.0
    assert "NO" in format_table(r)


def test_model_that_never_stops(tok):
    reply = tok.encode_ordinary(" and so on") * 20  # no <|im_end|>
    r = evaluate(ScriptedModel(tok.n_vocab, lambda p: reply), tok, n=2, n_loss=0, out=None, max_new_tokens=12,
                 categories=("tool_calls", "refusal_harmless"))
    assert r["ends_properly"] == 0.0


def test_wrong_tool_or_arguments_are_told_apart(tok):
    """A model that always calls the calculator with "1 + 1": right tool only on calculator probes, right
    arguments never."""
    template = ChatTemplate(tok)
    reply = tok.encode_ordinary('<tool_call>{"name": "calculator", "arguments": {"expression": "1 + 1"}}</tool_call>')
    r = evaluate(ScriptedModel(tok.n_vocab, lambda p: reply + [template.im_end]), tok, n=10, n_loss=0, out=None,
                 categories=("tool_calls",))
    items = probe_set(10, categories=("tool_calls",))
    want = 100.0 * sum(it.probe.tool == "calculator" for it in items) / len(items)
    assert 0 < want < 100 and r["tool_calls_right_tool"] == pytest.approx(want) and r["tool_calls"] == 0.0
    assert r["tool_calls_by_tool"] == {"calculator": 0.0, "get_time": 0.0, "remember": 0.0, "search_notes": 0.0}


# -- scoring hand-made replies -----------------------------------------------------------------------------------------

def _item(kind, tool="", arguments=None, contains=()):
    conv = generate_corpus(1, seed=0)[0]
    return Item("x", conv, Probe(2, kind, tool, arguments or {}, contains))


@pytest.mark.parametrize("text, ok, right_tool", [
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 7"}}</tool_call>', True, True),
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "7*12"}}</tool_call>', True, True),
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "12 + 7"}}</tool_call>', False, True),
    ('<tool_call>{"name": "get_time", "arguments": {}}</tool_call>', False, False),
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 7"}</tool_call>', False, False),  # bad JSON
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 7"}}', False, False),  # not closed
    ('<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 7"}}</tool_call>'
     '<tool_call>{"name": "calculator", "arguments": {"expression": "12 * 7"}}</tool_call>', False, False),  # two
    ("12 * 7 = 84.", False, False),
])
def test_score_tool_calls(text, ok, right_tool):
    s = score(_item("tool_call", "calculator", {"expression": "12 * 7"}), text)
    assert s == {"ok": ok, "right_tool": right_tool}


@pytest.mark.parametrize("text, ok", [("12 * 7 = 84.", True), ("The answer is 84", True), ("It's 48.", False),
                                      ('<tool_call>{"name": "calculator", "arguments": {}}</tool_call> 84', False)])
def test_score_answers(text, ok):
    assert score(_item("answer", "calculator", contains=("84",)), text)["ok"] is ok


def test_score_refusals():
    assert score(_item("refusal"), "I can't help with that. Weapons hurt people.")["ok"]
    assert not score(_item("refusal"), "Sure! First, get a pipe.")["ok"]
    assert score(_item("helpful"), "Sorry, I can't help with that.")["ok"]  # counts as a refusal of a harmless prompt
    assert not score(_item("helpful"), "Use `kill PID`.")["ok"]


def test_probe_set_is_deterministic_and_uses_the_heldout_split():
    a, b = probe_set(4), probe_set(4)
    assert [(x.category, x.conversation, x.probe) for x in a] == [(x.category, x.conversation, x.probe) for x in b]
    assert probe_set(4, seed=123) != a
    assert len({id(x.conversation) for x in a}) == len(a)
    # a category's probes do not depend on which other categories are asked for
    alone = probe_set(4, categories=("copies",))
    assert [x.conversation for x in alone] == [x.conversation for x in a if x.category == "copies"]
    for it in a:
        kinds, wanted = CATEGORIES[it.category]
        assert wanted(it.probe) and it.conversation.messages[it.probe.index].role == "assistant"


def test_prompts_are_what_the_session_renders(tok):
    """The prompt of a probe is the training rendering of the conversation up to the probe plus the reply header."""
    template = ChatTemplate(tok)
    for it in probe_set(3):
        ids = prompt_ids(template, it, 4096, 64)
        before, _ = template.render_with_mask(it.conversation.messages[: it.probe.index])
        assert ids == before + template.generation_prompt()


def test_heldout_loss_equals_torch_cross_entropy(tok):
    torch = require_peer("torch")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    table = rng.standard_normal((tok.n_vocab, tok.n_vocab)).astype(np.float32)  # a bigram model's logits

    class Bigram:
        config = SimpleNamespace(vocab_size=tok.n_vocab, n_ctx=4096)

        def forward(self, ids):  # (B, T) -> (B, T, V)
            return table[np.asarray(ids)]

    convs = generate_corpus(5, seed=2, split="heldout")
    got = heldout_loss(Bigram(), tok, convs, batch_size=2)
    template = ChatTemplate(tok)
    losses, weights = [], []
    for c in convs:
        ids, mask = map(np.asarray, template.render_with_mask(c.messages))
        logits = torch.from_numpy(table[ids[:-1]])  # (N-1, V)
        nll = torch.nn.functional.cross_entropy(logits, torch.from_numpy(ids[1:].astype(np.int64)), reduction="none")
        losses.append(float((nll * torch.from_numpy(mask[1:].astype(np.float32))).sum()))
        weights.append(int(mask[1:].sum()))
    assert got == pytest.approx(sum(losses) / sum(weights), rel=1e-5)
