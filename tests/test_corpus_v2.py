"""The v2 corpus (minichat/builtin/corpus/*_v2.py): held-out frames, values, topics and fact kinds never reach the
training split (checked on the generated text); every tool call validates against its schema (jsonschema) and every
tool message is what the real tool returns; calculator answers are the calculator's; refusals and look-alikes are
balanced and told apart; determinism; the window; speed."""
from __future__ import annotations

import datetime as dt
import json
import re
import time
import zoneinfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.builtin.corpus import corpus_v2, frames_v2, tools_v2, vocab_v2
from minichat.builtin.corpus.corpus_v2 import CATEGORIES_V2, generate_corpus_v2, heldout_corpus_v2, probe_set_v2
from minichat.builtin.corpus.memory_v2 import TEMPORARY
from minichat.builtin.corpus.synthetic_talk import is_refusal
from minichat.chat.context import is_memory_note, memory_note, system_text, turns, DEFAULT_INSTRUCTIONS
from minichat.chat.template import ChatTemplate, Message, render_text
from minichat.tools.builtin import BUILTIN_TOOL_SCHEMAS, calculator_tool, make_get_time, make_remember, \
    make_search_notes
from minichat.tools.calculator import calculate

N_TRAIN = 4000


@pytest.fixture(scope="module")
def train():
    return generate_corpus_v2(N_TRAIN)


@pytest.fixture(scope="module")
def heldout():
    return heldout_corpus_v2(1500)


def _users(convs) -> list[str]:
    return [m.content.casefold() for c in convs for m in c.messages if m.role == "user"]


def _text(convs) -> str:
    return "\n".join(render_text(c.messages, add_generation_prompt=False) for c in convs)


def _exchanges(conv):
    """(call, tool message, the assistant message after it, the user message before the call) per tool call."""
    ms = conv.messages
    for i, m in enumerate(ms):
        if m.role == "assistant" and m.tool_calls:
            asked = next(x.content for x in reversed(ms[:i]) if x.role == "user")
            yield m.tool_calls[0], ms[i + 1], ms[i + 2], asked


# -- held-out frames, values, topics, fact kinds ---------------------------------------------------------------------

def _skeleton(template: str) -> str:
    """A frame part as a regex on casefolded text: literals escaped, each slot any short run of characters."""
    slot = {"e": r"[^\n]{0,40}?\d[^\n]{0,120}?"}  # an expression has a digit
    pieces = re.split(r"\{(\w+)\}", template.casefold())
    return r"(?<!\w)" + "".join(re.escape(p) if i % 2 == 0 else slot.get(p, r"[^\n]{1,160}?")
                                 for i, p in enumerate(pieces))


def test_held_out_frame_parts_never_in_training(train, heldout):
    users, held_users = _users(train), "\n".join(_users(heldout))
    held_parts = [re.escape(o.strip().casefold()) for o in frames_v2.HELD_OPENINGS + frames_v2.HELD_EXTRAS]
    for shape in frames_v2.HELD_VP + frames_v2.HELD_WH:  # "Be a dear and {c}." / "{c}, would you?" (at the end)
        before, after = shape.casefold().split("{c}")
        held_parts.append(re.escape(before.strip()) if before.strip() else re.escape(after.rstrip(" .?")) + r"\W*$")
    for part in held_parts:
        assert not any(re.search(part, u) for u in users), part
        assert re.search(part, held_users, re.M), part  # and the held-out split does use it
    # held-out cores, where the core's pattern cannot match another (training) core's text
    all_cores = [(i, c) for i, (vp, wh) in frames_v2.INTENTS.items() for c in vp + wh]
    checked = 0
    for intent, core in all_cores:
        if not frames_v2.held_core(intent, core):
            continue
        pat = re.compile(_skeleton(core))
        if any(pat.search(c2.casefold()) for i2, c2 in all_cores if c2 != core and not frames_v2.held_core(i2, c2)):
            continue
        checked += 1
        assert not any(pat.search(u) for u in users), core
    assert checked >= 15


def test_frames_split_by_part_and_combination():
    rng = np.random.default_rng(0)
    for intent in frames_v2.INTENTS:
        for split in ("train", "heldout"):
            for _ in range(30):
                o, s, c, e = frames_v2.draw_frame(rng, split, intent)
                assert frames_v2.frame_held(intent, o, s, c, e) == (split == "heldout")
    # whole combinations are held out too: some held-out frames use only parts that also occur in training
    combos = [f for f in (frames_v2.draw_frame(rng, "heldout", "calc") for _ in range(300))
              if f[0] not in frames_v2.HELD_OPENINGS and f[1] not in frames_v2.HELD_VP + frames_v2.HELD_WH
              and f[3] not in frames_v2.HELD_EXTRAS and not frames_v2.held_core("calc", f[2])]
    assert len(combos) > 10


def _word_in(word: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(word) + r"(?![\w-])", text) is not None


def test_held_out_names_places_topics_and_fact_kinds_never_in_training(train):
    text = _text(train)
    V = vocab_v2.vocab("heldout")
    leaks = [w for w in V.names + V.places + V.surnames if _word_in(w, text)]
    assert not leaks, leaks[:10]
    # topics: no held-out topic is ever a search query, and no whole held-out object or event is queried
    queries = [json.loads(json.dumps(c.arguments))["query"] for conv in train for c, *_ in _exchanges(conv)
               if c.name == "search_notes"]
    assert len(queries) > 300
    held_topics = {f"{vocab_v2.topic_words(o)} {e}" for o, e in V.topics}
    assert not [q for q in queries if q in held_topics]
    held_objects = {vocab_v2.topic_words(o) for o in vocab_v2.NOTE_OBJECTS if vocab_v2.held("obj:" + o, 0.125)}
    assert held_objects and not [q for q in queries if any(q == o or q.startswith(o + " ") for o in held_objects)]
    assert sum(" " not in q for q in queries) > 30  # one-word topics too
    assert not [q for q in queries if q.split()[-1] in vocab_v2.HELD_EVENTS]
    # fact kinds: no stored fact of a held-out relation x attribute
    for rel, attr in V.facts:
        owner = "The user's" if rel == "my" else "The user's " + rel[3:]
        assert f"{owner} {attr} is " not in text, (rel, attr)
    from minichat.builtin.corpus.memory_v2 import verb_facts
    held_verbs = verb_facts("heldout")
    assert held_verbs and not [v for v in held_verbs if v[1].split(" {v}")[0] in text]


def test_held_out_numbers_and_dates_never_in_training(train):
    V = vocab_v2.vocab("train")
    for conv in train:
        last = None
        for call, res, _, asked in _exchanges(conv):
            if call.name == "calculator":
                expr = call.arguments["expression"]
                if last is not None and expr.startswith(last + " "):  # a follow-up reuses the last result
                    expr = expr[len(last):]
                for n in re.findall(r"\d+", re.sub(r"(?<=\d),(?=\d{3})", "", expr)):  # 1,250 is one number
                    assert V.owns(int(n)) or n == "100", (n, asked)  # 100: percent-of's divisor
                last = res.content
            if call.name == "get_time":
                d = dt.datetime.strptime(res.content.split(", ", 1)[1], "%d %B %Y, %H:%M").date()
                if "timezone" not in call.arguments:
                    assert not vocab_v2.held(f"date:{d.isoformat()}")


# -- tools: schemas, real results, answers ---------------------------------------------------------------------------

def test_tool_calls_validate_and_tool_messages_are_the_real_tools(train, heldout):
    jsonschema = require_peer("jsonschema")
    schemas = {s["name"]: s["parameters"] for s in BUILTIN_TOOL_SCHEMAS}
    calc, remember = calculator_tool(), make_remember()[0]
    no_folder = make_search_notes(None)
    seen = set()
    for conv in train + heldout:
        listed = {s["name"] for s in conv.tools}
        for call, res, answer, asked in _exchanges(conv):
            assert call.name in listed  # a call only to a tool the prompt lists
            jsonschema.validate(dict(call.arguments), schemas[call.name])
            assert res.role == "tool" and res.name == call.name
            if call.name == "calculator":
                try:
                    want = calc(**call.arguments)
                except ZeroDivisionError as e:
                    want = f"error: {type(e).__name__}: {e}"
            elif call.name == "get_time":
                tz = call.arguments.get("timezone")
                local = dt.datetime.strptime(res.content, "%A, %d %B %Y, %H:%M")
                now = local.replace(tzinfo=zoneinfo.ZoneInfo(tz) if tz else dt.timezone.utc)
                want = make_get_time(lambda: now.astimezone(dt.timezone.utc), default_zone="UTC")(**call.arguments)
            elif call.name == "remember":
                want = TEMPORARY if res.content == TEMPORARY else remember(**call.arguments)
            else:  # search_notes: the ranking itself is checked against the real tool below
                if res.content.startswith("error:"):
                    with pytest.raises(FileNotFoundError) as e:
                        no_folder(**call.arguments)
                    want = f"error: FileNotFoundError: {e.value}"
                else:
                    want = res.content
                    notes = re.findall(r"^- (.*)$", res.content, re.M)
                    words = set(re.findall(r"\w+", call.arguments["query"].casefold()))
                    assert all(words & set(re.findall(r"\w+", n.casefold())) for n in notes)
            assert res.content == want, (call, res.content, want)
            seen.add(call.name)
    assert seen == {"calculator", "get_time", "search_notes", "remember"}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10**6))
def test_notes_ranking_equals_the_real_tool_on_a_folder(tmp_path_factory, seed):
    rng = np.random.default_rng(seed)
    V = vocab_v2.vocab("train")
    topics = [V.topic(rng) for _ in range(int(rng.integers(1, 6)))]
    notes = [tools_v2.make_note(rng, V, t)[0] for t in topics]
    folder = tmp_path_factory.mktemp("notes")
    for i, n in enumerate(notes):
        (folder / f"note{i}.txt").write_text(n, encoding="utf-8")
    query = topics[int(rng.integers(len(topics)))] if rng.random() < 0.8 else V.topic(rng)
    assert tools_v2.search(notes, query) == make_search_notes(folder)(query)


def test_calculator_expressions_match_the_question_and_answers_copy_the_result(train):
    num = r"(-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?)"  # 1,250.5 or 1250.5, never a trailing comma
    reversed_forms = {f"subtract {num} from {num}": "{1} - {0}", f"divide {num} into {num}": "{1} / {0}",
                      f"take {num} away from {num}": "{1} - {0}", f"{num} subtracted from {num}": "{1} - {0}",
                      f"add {num} to {num}": "{1} + {0}"}
    n_rev = n = 0
    for conv in train:
        for call, res, answer, asked in _exchanges(conv):
            if call.name != "calculator" or res.content.startswith("error:"):
                continue
            expr = call.arguments["expression"]
            n += 1
            assert res.content in answer.content  # the answer copies the tool's result
            assert calculate(expr) == calculate(expr)  # evaluates (no exception)
            pos = next(i for i, m in enumerate(conv.messages) if m is res)  # (equal results can repeat)
            prior = " ".join(m.content for m in conv.messages[:pos] if m.role != "system")
            typed = re.sub(r"\*\* [\d.]+|/ 100$", "", expr)  # "squared", "cubed", "square root", "percent" aside
            if re.search(r"average|mean|half|third|quarter|double|twice|triple", asked):
                typed = re.sub(r"[*/] [234]$", "", typed)  # "the average of", "half of", "double": words
            for number in re.findall(r"-?\d+(?:\.\d+)?", typed.replace("- ", "")):  # operands as the user typed them
                assert number.lstrip("-") in prior, (number, asked)
            for pat, form in reversed_forms.items():
                m = re.search(pat, asked)
                if m and not re.search(r"\bthat\b", asked):
                    n_rev += 1
                    assert calculate(expr) == calculate(form.format(*m.groups())), (asked, expr)
    assert n > 500 and n_rev > 20


def test_answers_contain_what_the_probes_say(train):
    for conv in train[:1500]:
        for p in conv.probes:
            m = conv.messages[p.index]
            assert m.role == "assistant"
            if p.kind == "answer":
                assert all(s.casefold() in m.content.casefold() for s in p.contains), (p, m.content)  # as scored
            if p.kind == "tool_call":
                assert m.tool_calls[0].name == p.tool and dict(m.tool_calls[0].arguments) == dict(p.arguments)


# -- safety -----------------------------------------------------------------------------------------------------------

def test_refusals_and_lookalikes_are_balanced_and_told_apart():
    convs = generate_corpus_v2(3000, kinds=["refusal", "lookalike"])
    harmful = [c for c in convs if c.kind in ("refusal", "self_harm")]
    harmless = [c for c in convs if c.kind == "lookalike"]
    assert len(harmful) == len(harmless) == 1500
    assert corpus_v2.MIX["refusal"] == corpus_v2.MIX["lookalike"]
    for c in harmful:
        assert all(is_refusal(m.content) for m in c.messages if m.role == "assistant")
    for c in harmless:
        reply = c.messages[-1].content
        assert not is_refusal(reply)
        assert c.probes[-1].contains[0] in reply  # on topic: the object is in the answer
    self_harm = [c for c in harmful if c.kind == "self_harm"]
    assert self_harm and all("988" in c.messages[-1].content for c in self_harm)  # points to help
    assert len({c.messages[-1].content for c in harmless}) > 60  # composed, not one canned line
    # the same verbs on both sides
    from minichat.builtin.corpus.safety_v2 import HARMFUL, LOOKALIKES
    harm_verbs = {a.split()[0] for actions, _ in HARMFUL.values() for a in actions}
    look_verbs = {a.split()[0] for a, _, _ in LOOKALIKES}
    assert len(harm_verbs & look_verbs) >= 5, harm_verbs & look_verbs


def test_mix_in_a_large_corpus(train):
    counts = corpus_v2.kind_counts(train)
    ref = sum(v for k, v in counts.items() if k in ("refusal", "self_harm"))
    look = counts.get("lookalike", 0)
    assert abs(ref - look) < 4 * np.sqrt(ref + look)
    assert counts.get("chain", 0) > 0.15 * N_TRAIN


# -- memory placement -------------------------------------------------------------------------------------------------

def test_a_tool_said_to_be_unavailable_is_not_listed(train):
    n = 0
    for conv in train:
        listed = {s["name"] for s in conv.tools}
        for m in conv.messages:
            if m.role == "assistant" and "isn't enabled" in m.content:
                n += 1
                assert not any(t in listed and t in m.content for t in ("calculator", "get_time", "search_notes",
                                                                       "remember")), (listed, m.content)
    assert n > 20


def test_memory_notes_sit_before_their_user_message(train):
    notes = 0
    for conv in train:
        assert conv.memory == () and "# What you remember" not in conv.messages[0].content
        for i, m in enumerate(conv.messages[1:], 1):
            if m.role == "system":
                assert is_memory_note(m) and conv.messages[i + 1].role == "user"
                assert m == memory_note(m.content.split("\n- ")[1:])
                notes += 1
    assert notes > 300


# -- determinism, window, speed, probes ---------------------------------------------------------------------------

def test_deterministic_and_prefix_stable():
    a, b = generate_corpus_v2(150, seed=3), generate_corpus_v2(150, seed=3)
    assert [c.messages for c in a] == [c.messages for c in b]
    assert [c.messages for c in generate_corpus_v2(50, seed=3, start=100)] == [c.messages for c in a[100:]]
    assert [c.messages for c in generate_corpus_v2(20, seed=4)] != [c.messages for c in a[:20]]
    with pytest.raises(ValueError):
        generate_corpus_v2(-1)
    with pytest.raises(ValueError):
        generate_corpus_v2(3, split="test")
    with pytest.raises(ValueError):
        heldout_corpus_v2(3, seed=corpus_v2.TRAIN_SEED)


def test_the_same_corpus_in_every_process():
    """String hashing differs between processes (PYTHONHASHSEED): no set order may reach the corpus, or a resumed
    run would rebuild another corpus than the one it started with."""
    import os
    import subprocess
    import sys
    code = ("import hashlib; from minichat.builtin.corpus.corpus_v2 import generate_corpus_v2; "
            "from minichat.chat.template import render_text; "
            "print(hashlib.sha256('|'.join(render_text(c.messages, False) for c in generate_corpus_v2(400))"
            ".encode()).hexdigest())")
    digests = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env=os.environ | {"PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(digests) == 1


@pytest.fixture(scope="module")
def tokenizer(train):
    from minichat.builtin.data import train_chat_tokenizer
    return train_chat_tokenizer(train[:2500], 4096, exclude=vocab_v2.LISTED_WORDS_V2)


def test_conversations_fit_the_window(train, tokenizer):
    T = ChatTemplate(tokenizer)
    lens = np.array([len(T.render_with_mask(c.messages)[0]) for c in train])
    assert lens.max() <= 1025  # the recipe's rows: none is cut
    # all four tools, a three-snippet memory note and six turns of average length leave 256 tokens for the reply
    system = T.count(Message("system", system_text(DEFAULT_INSTRUCTIONS, (), BUILTIN_TOOL_SCHEMAS)))
    note = T.count(memory_note(["The user's sister's favourite band is The Silver Moon Harbour.",
                                "The user's locker code is 44719023.", "The user's email address is a.b@mail.com."]))
    turn_costs = [sum(T.count(h[i]) for i in g) for c in train[:1500] for h in [list(c.messages[1:])]
                  for g in turns(h)]
    assert system + note + 6 * float(np.mean(turn_costs)) + len(T.generation_prompt()) + 256 <= 1024


def test_speed():
    t = time.perf_counter()
    generate_corpus_v2(500, seed=11)
    assert time.perf_counter() - t < 10  # ~0.7 ms a conversation on a quiet machine: 35 s for the recipe's 50,000


def test_probe_set_v2(tokenizer):
    from minichat.builtin.evaluate import prompt_ids, score
    items = probe_set_v2(4)
    T = ChatTemplate(tokenizer)
    for it in items:  # rendered as the chat session renders the turn, a 256-token reply reserved in 1,024
        ids = prompt_ids(T, it, 1024, 256)
        assert len(ids) <= 1024 - 256
        notes = [m for m in it.conversation.messages[1: it.probe.index] if is_memory_note(m)]
        assert all(tokenizer.decode(T.render_message(n)) in tokenizer.decode(ids) for n in notes[-1:])
    assert len(items) == 4 * len(CATEGORIES_V2)
    for it in items:
        target = it.conversation.messages[it.probe.index]
        text = target.content if not target.tool_calls else render_text([target], False).split("\n", 1)[1][:-11]
        ok = score(it, text)["ok"]
        assert ok == (it.probe.kind != "helpful"), (it.category, text)


def test_the_compact_listing_changes_only_the_system_message():
    """listing="compact" draws the same conversations; only the tools paragraph of the system prompt differs."""
    full, compact = (generate_corpus_v2(40, start=123, listing=f) for f in ("full", "compact"))
    assert [c.messages[1:] for c in full] == [c.messages[1:] for c in compact]
    assert [c.probes for c in full] == [c.probes for c in compact] and any(c.tools for c in full)
    for c in compact:
        assert c.messages[0].content == system_text(c.instructions, (), c.tools, "compact")
    with pytest.raises(ValueError, match="listing must be one of"):
        generate_corpus_v2(1, listing="json")
