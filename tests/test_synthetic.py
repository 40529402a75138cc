"""The synthetic chat corpus: deterministic, held-out pools really disjoint, every conversation well-formed (renders,
tool calls parse back, tool results are right), probes consistent with the messages they point at."""
from __future__ import annotations

import ast
import datetime as dt
import json
import math
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minichat.builtin.corpus import synthetic_pools as sp
from minichat.builtin.corpus.synthetic import (BUILTIN_TOOL_SCHEMAS, EPISODES, HELDOUT_SEED, MIX, Conversation,
                                               generate_corpus, heldout_corpus, kind_counts)
from minichat.builtin.corpus.synthetic_talk import FRAMES, HARMFUL, HARMLESS, is_refusal
from minichat.builtin.corpus.synthetic_tools import arguments_match, calculate, format_number
from minichat.builtin.data import train_chat_tokenizer
from minichat.chat.context import DEFAULT_INSTRUCTIONS, assemble, system_text
from minichat.chat.template import ChatTemplate, message_body, parse_assistant, render_text

N = 400  # conversations per split in the structural checks


@pytest.fixture(scope="module")
def train_corpus() -> list[Conversation]:
    return generate_corpus(N, seed=11)


@pytest.fixture(scope="module")
def held_corpus() -> list[Conversation]:
    return heldout_corpus(N)


# -- determinism -------------------------------------------------------------------------------------------------------

def test_same_seed_same_corpus_and_prefix_property():
    a, b = generate_corpus(60, seed=5), generate_corpus(60, seed=5)
    assert a == b
    assert generate_corpus(20, seed=5) == a[:20]
    assert generate_corpus(10, seed=5, start=30) == a[30:40]
    assert generate_corpus(60, seed=6) != a
    assert heldout_corpus(20) == generate_corpus(20, HELDOUT_SEED, "heldout")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="split"):
        generate_corpus(3, split="test")
    with pytest.raises(ValueError, match="another seed"):
        heldout_corpus(3, seed=0)
    with pytest.raises(ValueError, match="unknown conversation kind"):
        generate_corpus(2, kinds=["poetry"])
    with pytest.raises(ValueError, match="mix"):
        generate_corpus(2, mix={"calculator": 0.0})


def test_every_kind_of_the_mix_generates():
    for kind in MIX:
        convs = generate_corpus(4, seed=1, kinds=[kind])
        assert all(c.kind == kind or c.kind.startswith(kind + "_") for c in convs), (kind, [c.kind for c in convs])
    counts = kind_counts(generate_corpus(300, seed=2))
    assert {k.replace("_then_ask", "").replace("notes_followup", "notes") for k in counts} == set(MIX)
    assert set(EPISODES) | {"chain"} == set(MIX)


# -- disjoint pools ----------------------------------------------------------------------------------------------------

def test_listed_pools_are_disjoint_across_splits():
    train, held = sp.pools("train"), sp.pools("heldout")
    words = lambda P: set(P.names) | set(P.surnames) | set(P.cities) | set(P.pet_names)  # noqa: E731
    assert not words(train) & words(held)
    assert len(held.names) >= 30 and len(held.cities) >= 30


def test_invented_words_are_train_only_and_never_listed():
    rng = np.random.default_rng(0)
    listed = {w.casefold() for w in sp.NAMES + sp.SURNAMES + sp.CITIES + sp.PET_NAMES}
    words = [sp.invented_word(rng) for _ in range(3000)]
    assert not {w.casefold() for w in words} & listed and len(set(words)) > 2500
    train, held = sp.pools("train"), sp.pools("heldout")
    drawn = [train.name(rng) for _ in range(2000)]
    assert 0.2 < sum(n not in train.names for n in drawn) / len(drawn) < 0.4  # invented ones
    assert all(held.name(rng) in held.names and held.city(rng) in held.cities for _ in range(500))
    assert all(3 <= len(sp.scramble(rng)) <= 8 for _ in range(100))


def test_closed_set_values_are_swapped_for_other_kinds_only_in_training():
    rng = np.random.default_rng(1)
    train, held = sp.pools("train"), sp.pools("heldout")
    drawn = [train.word(rng, sp.COLOURS) for _ in range(4000)]
    assert set(drawn) <= set(sp.CLOSED_WORDS)
    # SWAPPED = 0.3 of the draws come from all 149 closed-set words, 14 of them colours: 0.3 * 135 / 149 = 0.27
    assert 0.24 < sum(w not in sp.COLOURS for w in drawn) / len(drawn) < 0.30
    assert all(held.word(rng, sp.COLOURS) in sp.COLOURS for _ in range(500))
    # and in the conversations themselves: a favourite colour or a weekday in a note is of its kind only when held out
    said = re.compile(r"favourite colour is (\w+)|every (\w+) at")
    for corpus, split in ((generate_corpus(300, seed=3, kinds=["remember", "notes"]), "train"),
                          (generate_corpus(300, HELDOUT_SEED, "heldout", kinds=["remember", "notes"]), "heldout")):
        values = [a or b for c in corpus for m in c.messages for a, b in said.findall(m.content)]
        wrong = [v for v in values if v not in sp.COLOURS + sp.WEEKDAYS]
        assert len(values) > 30
        assert (len(wrong) > 3) if split == "train" else not wrong, (split, wrong)


def test_distinct_keeps_draw_order_and_skips_repeats():
    draws = iter("aabacbd")
    assert sp.distinct(lambda: next(draws), 3) == ["a", "b", "c"]


def test_copying_drills_repeat_words_of_one_kind():
    """Some drills repeat a list of one kind ("Friday / Tuesday / Sunday") and some ask one of two values of one
    kind: only copying each word gets them right."""
    kinds = (sp.COLOURS, sp.FOODS, sp.ANIMALS, sp.SPORTS, sp.INSTRUMENTS, sp.ITEMS, sp.WEEKDAYS, sp.MONTHS)
    one_kind = two_days = 0
    for c in generate_corpus(200, seed=4, kinds=["echo"]):
        for m in c.messages:
            if m.role != "assistant":
                continue
            items = re.split(r", | / | ", m.content) if "," in m.content or "/" in m.content else [m.content]
            one_kind += len(items) > 1 and any(all(i in k for i in items) for k in kinds)
        for ask, reply in zip(c.messages[1::2], c.messages[2::2]):
            days = re.fullmatch(r"\w+ comes on (\w+) and \w+ on (\w+)\. When does \w+ come\?", ask.content)
            if days:
                two_days += 1
                assert days[1] != days[2] and days[2] in reply.content and days[1] not in reply.content
    assert one_kind > 10 and two_days > 3, (one_kind, two_days)


def test_numbers_and_dates_are_disjoint_across_splits():
    train, held = sp.pools("train"), sp.pools("heldout")
    ns = range(10, 200_000)
    assert not any(train.owns_number(n) and held.owns_number(n) for n in ns)
    assert all(train.owns_number(n) or held.owns_number(n) for n in ns)
    share = sum(held.owns_number(n) for n in ns) / len(ns)
    assert 0.15 < share < 0.25
    rng = np.random.default_rng(0)
    assert all(sp.heldout_number(held.number(rng, 10, 10**6)) for _ in range(300))
    assert not any(sp.heldout_number(train.number(rng, 10, 10**6)) for _ in range(300))
    assert all(sp.heldout_date(held.date(rng)) for _ in range(200))
    assert not any(sp.heldout_date(train.date(rng)) for _ in range(200))


def _numbers(text: str) -> set[int]:
    return {int(x) for x in re.findall(r"(?<![\d.])\d+(?![\d.])", text)}


def test_generated_text_only_uses_its_own_pools(train_corpus, held_corpus):
    """Scan the actual conversations: no name or city of the other split, and every calculator operand >= 10 from
    the conversation's own split."""
    pools = {"train": sp.pools("train"), "heldout": sp.pools("heldout")}
    words = {s: set(P.names) | set(P.surnames) | set(P.cities) | set(P.pet_names) for s, P in pools.items()}
    for split, corpus, other in (("train", train_corpus, "heldout"), ("heldout", held_corpus, "train")):
        seen_numbers = 0
        for conv in corpus:
            text = render_text(conv.messages, add_generation_prompt=False)
            tokens = set(re.findall(r"[^\W\d_][\w'-]*", text))
            assert not tokens & words[other], (split, tokens & words[other])
            for m in conv.messages:
                for c in m.tool_calls:
                    if c.name == "calculator" and conv.kind == "calculator":
                        for n in _numbers(c.arguments["expression"]) - {60, 100}:  # constants: "/ 100", "/ 60"
                            seen_numbers += 1
                            assert pools[split].owns_number(n), (split, c.arguments)
        assert seen_numbers > 50


# -- well-formed conversations -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer(train_corpus):
    return train_chat_tokenizer(train_corpus[:200], 600)


def test_system_prompt_is_the_sessions(train_corpus, tokenizer):
    """The system message is exactly what the session's context assembly builds from (instructions, memory,
    tools), so the model is trained on the prompts it will see."""
    template = ChatTemplate(tokenizer)
    shown = full = 0
    for conv in train_corpus:
        assert conv.messages[0].role == "system" and all(m.role != "system" for m in conv.history)
        assert conv.messages[0].content == system_text(DEFAULT_INSTRUCTIONS, conv.memory, conv.tools)
        names = [s["name"] for s in conv.tools]
        assert names == [s["name"] for s in BUILTIN_TOOL_SCHEMAS if s["name"] in names]  # a subset, in order
        shown += bool(conv.tools)
        full += conv.tools == BUILTIN_TOOL_SCHEMAS
        ctx = assemble(template, list(conv.history), instructions=conv.instructions, memory=conv.memory,
                       tools=conv.tools, context_window=4096, max_new_tokens=256)
        assert list(ctx.messages) == list(conv.messages)
        called = {c.name for m in conv.messages for c in m.tool_calls}
        assert called <= set(names)  # every tool called is enabled
    assert 0.45 * len(train_corpus) < shown < len(train_corpus)  # drills (~27 %) list tools in 20 %, the rest in 60 %+
    assert 0.02 * len(train_corpus) < full < 0.3 * len(train_corpus)  # the full set, as a session with all tools


def test_builtin_tool_schemas():
    by_name = {s["name"]: s for s in BUILTIN_TOOL_SCHEMAS}
    assert list(by_name) == ["calculator", "get_time", "search_notes", "remember"]
    assert by_name["calculator"]["parameters"]["required"] == ["expression"]
    assert by_name["search_notes"]["parameters"]["required"] == ["query"]
    assert by_name["remember"]["parameters"]["required"] == ["fact"]
    assert by_name["get_time"]["parameters"]["properties"] == {}
    for s in BUILTIN_TOOL_SCHEMAS:
        assert json.loads(json.dumps(s)) == s and s["description"]


def test_conversations_render_and_tool_calls_round_trip(train_corpus, held_corpus, tokenizer):
    template = ChatTemplate(tokenizer)
    for conv in train_corpus + held_corpus:
        ids = template.render(list(conv.messages), add_generation_prompt=False)
        assert tokenizer.decode(ids) == render_text(conv.messages, add_generation_prompt=False)
        roles = [m.role for m in conv.history]
        assert roles[0] == "user" and roles[-1] == "assistant"
        for i, m in enumerate(conv.history):
            if m.role == "tool":  # every result follows the call it answers
                prev = conv.history[i - 1]
                assert prev.role == "assistant" and prev.tool_calls and prev.tool_calls[0].name == m.name
            if m.role == "assistant":
                back = parse_assistant(message_body(m))
                assert back == m and not back.errors
                if m.tool_calls:
                    assert conv.history[i + 1].role == "tool"


def _python_value(expression: str) -> float:
    """An independent evaluation: Python's own eval on a string that holds only digits, spaces and operators."""
    assert re.fullmatch(r"[\d\s+\-*/().]+", expression), expression
    return eval(compile(ast.parse(expression, mode="eval"), "<expr>", "eval"), {"__builtins__": {}})


def test_calculator_results_are_correct(train_corpus, held_corpus):
    checked = 0
    for conv in train_corpus + held_corpus:
        msgs = conv.history
        for i, m in enumerate(msgs):
            for c in m.tool_calls:
                if c.name != "calculator":
                    continue
                expr, res = c.arguments["expression"], msgs[i + 1].content
                try:
                    want = _python_value(expr)
                except ZeroDivisionError:
                    assert res == "error: ZeroDivisionError: division by zero"
                    continue
                assert math.isclose(float(res), want, rel_tol=1e-9, abs_tol=5e-5), (expr, res, want)  # 4 decimals
                if float(want).is_integer():
                    assert res == str(int(want))
                assert res in msgs[i + 2].content  # the answer repeats the result
                checked += 1
    assert checked > 100


def test_probes_point_at_matching_messages(train_corpus, held_corpus):
    kinds = set()
    for conv in train_corpus + held_corpus:
        for p in conv.probes:
            kinds.add(p.kind)
            m = conv.messages[p.index]
            assert m.role == "assistant"
            if p.kind == "tool_call":
                (c,) = m.tool_calls
                assert c.name == p.tool and arguments_match(p.tool, p.arguments, c.arguments, p.contains)
            elif p.kind == "answer":
                assert not m.tool_calls and all(s in m.content for s in p.contains) and p.contains
                if p.tool:
                    assert conv.messages[p.index - 1].role == "tool" and conv.messages[p.index - 1].name == p.tool
            elif p.kind == "refusal":
                assert is_refusal(m.content)
            else:
                assert p.kind == "helpful" and not is_refusal(m.content)
    assert kinds == {"tool_call", "answer", "refusal", "helpful"}


def test_only_refusals_look_like_refusals(train_corpus):
    """Every assistant message that opens like a refusal is a marked refusal (of a harmful request)."""
    n = 0
    for conv in train_corpus:
        refusals = {p.index for p in conv.probes if p.kind == "refusal"}
        for i, m in enumerate(conv.messages):
            if m.role == "assistant" and is_refusal(m.content):
                assert i in refusals, (conv.kind, m.content)
                n += 1
    assert n > 20


def test_refusal_and_lookalike_pools_share_frames_and_verbs():
    harmful = " ".join(r for reqs, _, _ in HARMFUL.values() for r in reqs)
    harmless = " ".join(HARMLESS)
    for verb in ("kill", "bomb", "steal", "poison", "attack", "shoot", "hack"):
        assert verb in harmful.lower() or verb in harmless.lower()
    assert {"kill", "steal", "hack", "poison"} <= {w for w in re.findall(r"[a-z]+", harmless.lower())} & {
        w for w in re.findall(r"[a-z]+", harmful.lower())}
    assert all("{t}" in f for f in FRAMES)


# -- the pieces --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, refused", [
    ("I can't help with that.", True), ("Sorry, I can't help with that.", True), ("I won\u2019t help with that.", True),
    ("Sorry, but I can't help with this request.", True), ("I still can't help with that.", True),
    ("I cannot help you build that.", True), ("I can help with that: use kill PID.", False),
    ("Find its process id, then run kill.", False), ("Sorry to hear that! I can't wait to help.", False), ("", False)])
def test_is_refusal(text, refused):
    assert is_refusal(text) is refused


def test_arguments_match_by_meaning():
    assert arguments_match("calculator", {"expression": "12 * 7"}, {"expression": "7*12"})
    assert arguments_match("calculator", {"expression": "17 ** 2"}, {"expression": "17 * 17"})
    assert not arguments_match("calculator", {"expression": "12 * 7"}, {"expression": "12 + 7"})
    assert not arguments_match("calculator", {"expression": "12 * 7"}, {"expression": "import os"})
    assert not arguments_match("calculator", {"expression": "12 * 7"}, {"expr": "12 * 7"})
    assert arguments_match("get_time", {}, {}) and not arguments_match("get_time", {}, {"city": "Lyon"})
    assert arguments_match("search_notes", {"query": "book club"}, {"query": "Book club meeting"})
    assert not arguments_match("search_notes", {"query": "book club"}, {"query": "book"})
    fact = "The user's favourite colour is teal."
    assert arguments_match("remember", {"fact": fact}, {"fact": "favourite colour: teal"}, ("teal",))
    assert not arguments_match("remember", {"fact": fact}, {"fact": "The user's favourite colour is navy."}, ("teal",))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=3, max_size=3), st.lists(st.sampled_from("+-*/"), min_size=2,
                                                                         max_size=2), st.booleans())
@example([0, 188, 128], ["+", "/"], False)  # 1.46875 -> "1.4688": a tie, exactly half a unit of the 4th decimal off
def test_calculate_equals_python(nums, ops, paren):
    a, b, c = nums
    expr = f"({a} {ops[0]} {b}) {ops[1]} {c}" if paren else f"{a} {ops[0]} {b} {ops[1]} {c}"
    try:
        want = _python_value(expr)
    except ZeroDivisionError:
        with pytest.raises(ZeroDivisionError):
            calculate(expr)
        return
    got = calculate(expr)
    assert got == want
    # 4 decimals are within half a unit of the last (5e-5) of the value; reading "1.4688" back as a float adds ~1e-16
    assert math.isclose(float(format_number(got)), want, rel_tol=1e-6, abs_tol=5e-5 + 1e-12)


@pytest.mark.parametrize("bad", ["__import__('os')", "2 ** 10 ** 10", "x + 1", "len('a')", "1; 2", "", "9" * 300])
def test_calculate_refuses_anything_but_arithmetic(bad):
    with pytest.raises(ValueError):
        calculate(bad)


def test_format_number():
    assert [format_number(x) for x in (84, 84.0, 2.5, 1 / 3, -7.0, 1e20, 2 / 3, -1.23456e-7, 12.00004)] == [
        "84", "84", "2.5", "0.3333", "-7", "1e+20", "0.6667", "-1.23456e-07", "12"]


def test_dates_read_like_the_clock_tool():
    assert sp.long_date(dt.date(2031, 4, 17)) == "Thursday, 17 April 2031"
    assert sp.short_date(dt.date(2031, 4, 17)) == "17 April 2031"


def test_the_corpus_is_still_the_one_the_builtin_model_was_trained_on():
    """A regression pin, not a reference: minichat/assets/model was trained on this generator's output, so a change
    to the corpus (or to the system prompt, the template or the loss mask it is rendered with) must be deliberate.
    If it is, retrain (`minichat train --preset builtin-v1`, the first stage) and update the fingerprints."""
    import hashlib
    from pathlib import Path

    import minichat
    from minichat.tokenizer import load_tokenizer

    convs = generate_corpus(300) + heldout_corpus(100)
    h = hashlib.sha256()
    for c in convs:
        h.update(json.dumps({"kind": c.kind, "messages": [m.to_json() for m in c.messages], "memory": list(c.memory),
                             "probes": [[p.index, p.kind, p.tool, dict(p.arguments), list(p.contains)]
                                        for p in c.probes]}, sort_keys=True, ensure_ascii=False).encode())
    assert h.hexdigest()[:16] == "86a7ae40970bc9f5", "the synthetic corpus changed"
    tok = load_tokenizer(Path(minichat.__file__).parent / "assets" / "model" / "tokenizer.bpe")
    template, h = ChatTemplate(tok), hashlib.sha256()
    for c in convs[:100]:
        h.update(json.dumps(template.render_with_mask(c.messages)).encode())
    assert h.hexdigest()[:16] == "2c34bd66ca8b6f52", "the corpus renders to other ids or another loss mask"
