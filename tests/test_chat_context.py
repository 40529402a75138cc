"""Context assembly and trimming: hypothesis over random conversations, plus hand-checked cases."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.chat.context import ContextTooLong, assemble, extractive_summary, system_text, turns
from minichat.chat.template import ChatTemplate, Message, ToolCall, assistant, tool_result, user
from minichat.tokenizer.io import open_tokenizer

TPL = ChatTemplate(open_tokenizer())
words = st.text(st.sampled_from("abcdefgh ijk lmnop \n"), max_size=80)


@st.composite
def conversations(draw):
    history = []
    for t in range(draw(st.integers(1, 7))):
        history.append(user(draw(words)))
        if draw(st.booleans()):  # a tool round trip inside the turn
            call = ToolCall("calc", {"e": draw(words)}, f"call_{t}")
            history += [assistant("", [call]), tool_result(call, draw(words))]
        if t < 6 and draw(st.booleans()):
            history.append(assistant(draw(words)))
    return history


@settings(max_examples=150, deadline=None)
@given(history=conversations(), window=st.integers(60, 600), reply=st.integers(1, 50),
       instructions=words, memory=st.lists(words, max_size=2), summarize=st.booleans())
def test_trimming_properties(history, window, reply, instructions, memory, summarize):
    groups = turns(history)
    try:
        ctx = assemble(TPL, history, instructions=instructions, memory=memory, context_window=window,
                       max_new_tokens=reply, summarize=summarize)
    except ContextTooLong:
        sys_cost = TPL.count(Message("system", system_text(instructions, memory))) if system_text(
            instructions, memory) else 0
        assert sys_cost + sum(TPL.count(history[i]) for i in groups[-1]) + len(TPL.generation_prompt()) > window - reply
        return
    ids = TPL.render(list(ctx.messages))
    assert len(ids) == ctx.used <= ctx.budget == window - reply  # the budget is never exceeded
    kept = {k["index"] for k in ctx.kept}
    assert set(groups[-1]) <= kept  # the latest turn is always kept
    assert list(ctx.messages[-len(groups[-1]):]) == [history[i] for i in groups[-1]]
    if system_text(instructions, memory):
        assert ctx.messages[0].role == "system" and instructions.strip() in ctx.messages[0].content
    for g in groups:  # whole turns only: a tool call never loses its result
        assert set(g) <= kept or not set(g) & kept
    kept_turns = [g for g in groups if set(g) <= kept]
    assert kept_turns == groups[len(groups) - len(kept_turns):]  # the newest turns, contiguous
    assert {k["index"] for k in ctx.dropped} | kept == set(range(len(history)))
    if len(kept_turns) < len(groups) and not ctx.summary_tokens:  # maximal: the next older turn did not fit
        nxt = groups[len(groups) - len(kept_turns) - 1]
        assert ctx.used + sum(TPL.count(history[i]) for i in nxt) > ctx.budget


def test_hand_checked_trim():
    history = [user("first question " * 20), assistant("first answer " * 20), user("second"), assistant("ok"),
               user("latest")]
    full = assemble(TPL, history, instructions="Be brief.", context_window=4096, max_new_tokens=64)
    assert [k["index"] for k in full.kept] == [0, 1, 2, 3, 4] and full.dropped == ()
    need = full.used - sum(k["tokens"] for k in full.kept[:2])
    cut = assemble(TPL, history, instructions="Be brief.", context_window=need + 64, max_new_tokens=64)
    assert [k["index"] for k in cut.kept] == [2, 3, 4]
    assert [d["index"] for d in cut.dropped] == [0, 1] and "oldest" in cut.dropped[0]["reason"]
    assert cut.used == need


def test_summary_replaces_dropped_turns():
    history = [user("Tell me about the Eiffel tower please"), assistant("It is in Paris. " * 30), user("latest")]
    ctx = assemble(TPL, history, context_window=120, max_new_tokens=20, summarize=True)
    assert [d["index"] for d in ctx.dropped] == [0, 1]
    assert ctx.messages[0].role == "system" and "Eiffel tower" in ctx.messages[0].content
    assert ctx.summary_tokens > 0 and ctx.used <= ctx.budget
    custom = assemble(TPL, history, context_window=120, max_new_tokens=20, summarize=lambda ms: f"{len(ms)} dropped")
    assert custom.messages[0].content == "2 dropped"
    assert extractive_summary([assistant("x")]) == ""


def test_too_long_message_gives_clear_error():
    with pytest.raises(ContextTooLong, match="shorten the message"):
        assemble(TPL, [user("word " * 500)], context_window=256, max_new_tokens=32)
    with pytest.raises(ValueError, match="max_new_tokens"):
        assemble(TPL, [user("x")], context_window=32, max_new_tokens=32)
    with pytest.raises(ValueError, match="user message"):
        assemble(TPL, [assistant("x")], context_window=256, max_new_tokens=32)


def test_memory_and_tools_go_into_the_system_message():
    schema = {"name": "calc", "description": "arithmetic", "parameters": {"type": "object"}}
    ctx = assemble(TPL, [user("hi")], instructions="Be kind.", memory=["likes tea"], tools=[schema],
                   context_window=2048, max_new_tokens=64)
    text = ctx.messages[0].content
    assert text.index("Be kind.") < text.index("- likes tea") < text.index("<tools>") and '"name": "calc"' in text


def test_a_memory_note_opens_the_turn_of_the_message_after_it():
    from minichat.chat.context import memory_note, turns
    from minichat.chat.template import Message

    h = [Message("user", "a"), Message("assistant", "b"), memory_note(["likes tea"]), Message("user", "c"),
         Message("assistant", "d"), Message("user", "e")]
    assert turns(h) == [[0, 1], [2, 3, 4], [5]]
    assert memory_note(["x", "y"]).content == "# What you remember about the user\n- x\n- y"
