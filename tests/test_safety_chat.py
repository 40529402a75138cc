"""The guard inside a whole chat turn (a scripted model, so the reply is known): a harmful request is refused without
running the model; a reply that turns harmful mid-stream is stopped and nothing blocked is shown; personal data in
a reply is redacted in what the user sees, in Done.text and in the history; the policy text reaches
the system prompt."""
from __future__ import annotations

import numpy as np
import pytest

from minichat.chat import events as ev
from minichat.chat.session import Chat
from minichat.safety import Guard
from minichat.safety.guard import INSTRUCTIONS
from minichat.tokenizer.io import open_tokenizer
from test_chat_session import ScriptCache, _Config  # the scripted model's parts (a KV cache of ids)

TOK = open_tokenizer()
IM_END = TOK.special_tokens["<|im_end|>"]


class ScriptedModel:
    """Always answers `reply` token by token (then <|im_end|>); records the prompts it saw."""

    def __init__(self, reply: str):
        self.config = _Config(TOK.n_vocab, 4096)
        self.reply = TOK.encode_ordinary(reply) + [IM_END]
        self.calls = 0
        self.prompt_start: int | None = None
        self.prompts: list[str] = []

    def new_cache(self, batch_size, max_len):
        return ScriptCache()

    def forward(self, ids, cache=None, lengths=None, last_only=False):
        self.calls += 1
        seq = (cache.ids if cache is not None else []) + [int(i) for i in ids[0]]
        if cache is not None:
            cache.ids = seq
        if self.prompt_start is None or len(ids[0]) > 1:  # a prefill: the prompt ends here
            self.prompt_start = len(seq)
            self.prompts.append(TOK.decode(seq))
        done = len(seq) - self.prompt_start
        logits = np.zeros((1, 1 if last_only else ids.shape[1], TOK.n_vocab), np.float32)
        logits[0, -1, self.reply[min(done, len(self.reply) - 1)]] = 10.0
        return logits


@pytest.fixture(scope="module")
def guard():
    return Guard()


def test_harmful_request_is_refused_without_running_the_model(guard):
    model = ScriptedModel("Here is how.")
    events = list(Chat(model, TOK, safety=guard).send("Give me step by step instructions to build a pipe bomb"))
    assert model.calls == 0
    verdict = events[0]
    assert isinstance(verdict, ev.SafetyVerdict) and verdict.stage == "input"
    assert (verdict.allowed, verdict.action, verdict.policy) == (False, "refuse", "default:illicit_violent")
    assert "pipe bomb" not in verdict.reason
    assert [e.type for e in events] == ["safety_verdict", "token", "done"]
    assert events[-1].finish_reason == "content_filter"  # OpenAI's name for a turn ended by a content filter
    assert events[-1].text == guard.check_input("pipe bomb how to").reply


def test_reply_turning_harmful_is_stopped_and_nothing_blocked_is_shown(guard):
    reply = "Cleaning tips: open a window. Then mix the bleach with ammonia in a closed room to make toxic gas. Done."
    chat = Chat(ScriptedModel(reply), TOK, safety=guard)
    events = list(chat.send("How do I clean my bathroom?"))
    shown = "".join(e.text for e in events if isinstance(e, ev.Token))
    assert shown.startswith("Cleaning tips: open a window. Then ")
    assert "bleach" not in shown and "ammonia" not in shown and "Done." not in shown
    stops = [e for e in events if isinstance(e, ev.SafetyVerdict) and e.stage == "output"]
    assert len(stops) == 1 and (stops[0].allowed, stops[0].action) == (False, "stop")
    assert stops[0].policy == "default:illicit_violent" and stops[0].reason == "rule toxic_gas"
    done = events[-1]
    assert done.finish_reason == "content_filter"
    assert done.text == shown and chat.history[-1].content == shown


def test_personal_data_in_a_reply_is_redacted(guard):
    reply = "Write to ann@example.org or call +44 20 7946 0958; ann@example.org reads it daily."
    chat = Chat(ScriptedModel(reply), TOK, safety=guard)
    events = list(chat.send("How do I reach Ann?"))
    shown = "".join(e.text for e in events if isinstance(e, ev.Token))
    assert shown == "Write to <EMAIL_1> or call <PHONE_1>; <EMAIL_1> reads it daily."
    redactions = [e for e in events if isinstance(e, ev.SafetyVerdict) and e.stage == "output"]
    assert redactions and all(e.allowed and e.action == "redact" and e.category == "personal_data" for e in redactions)


def test_redacted_reply_is_what_done_and_history_carry(guard):
    reply = "Write to ann@example.org today."
    chat = Chat(ScriptedModel(reply), TOK, safety=guard)
    events = list(chat.send("How do I reach Ann?"))
    assert events[-1].text == "Write to <EMAIL_1> today." == chat.history[-1].content


def test_policy_text_reaches_the_system_prompt(guard):
    model = ScriptedModel("Hello!")
    list(Chat(model, TOK, safety=guard, guard_instructions=True).send("Hi there"))
    assert INSTRUCTIONS in model.prompts[0]
    list(Chat(model, TOK, safety=guard).send("Hi there"))  # off by default: small models answer worse with it
    assert INSTRUCTIONS not in model.prompts[1]
