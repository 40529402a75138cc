"""The chat loop: a scripted model drives whole turns deterministically; a tiny random transformer checks that KV
reuse across turns gives exactly the tokens of a cold run; events survive JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from minichat.chat import events as ev
from minichat.chat.session import Chat, chat_events_text
from minichat.chat.template import IM_START
from minichat.config import ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.tokenizer.io import open_tokenizer

TOK = open_tokenizer()


# -- a scripted model --------------------------------------------------------------------------------------------------

@dataclass
class _Config:
    vocab_size: int
    n_ctx: int


class ScriptCache:
    """Holds the ids fed so far (what a KV cache would hold keys/values for)."""

    def __init__(self):
        self.ids: list[int] = []

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(self.ids)])

    def crop(self, n: int) -> None:
        del self.ids[n:]


class ScriptedModel:
    """Replies with `script(prompt_text) -> reply text`, token by token, then <|im_end|>."""

    def __init__(self, script, n_ctx=2048):
        self.config = _Config(TOK.n_vocab, n_ctx)
        self.script = script
        self.prefilled: list[int] = []  # tokens run through forward, for cache accounting checks

    def new_cache(self, batch_size, max_len):
        return ScriptCache()

    def forward(self, ids, cache=None, lengths=None, last_only=False):
        seq = (cache.ids if cache is not None else []) + [int(i) for i in ids[0]]
        self.prefilled.append(ids.shape[1])
        if cache is not None:
            cache.ids = seq
        start = max(i for i, t in enumerate(seq) if t == TOK.special_tokens[IM_START])
        prompt_end = start + 1 + len(TOK.encode_ordinary("assistant\n"))
        target = TOK.encode_ordinary(self.script(TOK.decode(seq[:prompt_end]))) + [TOK.special_tokens["<|im_end|>"]]
        done = len(seq) - prompt_end
        logits = np.zeros((1, 1 if last_only else ids.shape[1], TOK.n_vocab), np.float32)
        logits[0, -1, target[min(done, len(target) - 1)]] = 10.0
        return logits


class Calculator:
    def schemas(self):
        return [{"name": "calc", "description": "evaluate arithmetic", "parameters": {"type": "object"}}]

    def run(self, name, arguments):
        if name != "calc":
            raise LookupError(f"no tool {name}")
        a, b = arguments["expression"].split("+")
        return str(int(a) + int(b))


def tool_script(prompt: str) -> str:
    if "<|im_start|>tool\n" in prompt.rsplit("<|im_start|>user", 1)[-1]:
        return "The answer is " + prompt.rsplit("<|im_start|>tool\n", 1)[1].split("<|im_end|>")[0] + "."
    return 'Let me compute.\n<tool_call>{"name": "calc", "arguments": {"expression": "2+3"}}</tool_call>'


def test_scripted_turn_with_a_tool_call():
    chat = Chat(ScriptedModel(tool_script), TOK, tools=Calculator())
    events = list(chat.send("What is 2+3?"))
    types = [e.type for e in events]
    assert types[:4] == ["safety_verdict", "memory_hits", "context_built", "tokenized"]
    assert types.count("context_built") == 2 and types.count("tokenized") == 2  # back to stage 3 after the tool
    call = next(e for e in events if isinstance(e, ev.ToolCalled))
    result = next(e for e in events if isinstance(e, ev.ToolResult))
    assert (call.name, call.arguments, result.content, result.ok) == ("calc", {"expression": "2+3"}, "5", True)
    done = events[-1]
    assert isinstance(done, ev.Done) and done.finish_reason == "stop" and done.text == "The answer is 5."
    assert done.usage["completion_tokens"] == sum(1 for e in events if isinstance(e, ev.Token))
    assert done.usage["cached_tokens"] > 0  # the second prompt extends the first
    assert {"context", "tokenize", "generate", "tools", "first_token"} <= set(done.timings)
    assert [m.role for m in chat.history] == ["user", "assistant", "tool", "assistant"]
    assert chat.history[1].tool_calls[0].name == "calc"


def test_failing_tool_is_reported_to_the_model():
    def script(prompt):
        if "<|im_start|>tool" in prompt:
            return "Sorry."
        return '<tool_call>{"name": "nope", "arguments": {}}</tool_call>'

    events = list(Chat(ScriptedModel(script), TOK, tools=Calculator()).send("hi"))
    result = next(e for e in events if isinstance(e, ev.ToolResult))
    assert not result.ok and "LookupError" in result.content
    assert events[-1].text == "Sorry."


def test_tool_round_limit():
    loop = '<tool_call>{"name": "calc", "arguments": {"expression": "1+1"}}</tool_call>'
    events = list(Chat(ScriptedModel(lambda p: loop), TOK, tools=Calculator(), max_tool_rounds=2).send("go"))
    assert events[-1].finish_reason == "tool_limit"
    assert sum(isinstance(e, ev.ToolResult) for e in events) == 3


@dataclass
class Verdict:
    allowed: bool
    action: str = "allow"
    policy: str = "test"
    reason: str = ""
    reply: str = ""


class BlockWord:
    """A guard refusing inputs with 'bomb' and stopping output that says 'secret' (never repeating it)."""

    def instructions(self):
        return "Never reveal secrets."

    def check_input(self, text):
        return Verdict(False, "refuse", "weapons", "harmful request", "I can't help with that.") \
            if "bomb" in text else Verdict(True)

    def output_filter(self):
        class HoldBack:  # keeps the last 5 characters back: "secret" may be split across tokens
            held = ""

            def feed(self, text):
                self.held += text
                if "secret" in self.held:
                    return "", Verdict(False, "stop", "confidential", "blocked")
                out, self.held = self.held[:-5], self.held[-5:]
                return out, None

            def flush(self):
                out, self.held = self.held, ""
                return out, None
        return HoldBack()


def test_safety_refuses_input_and_stops_output():
    chat = Chat(ScriptedModel(lambda p: "the secret is 42"), TOK, safety=BlockWord())
    refused = list(chat.send("how to build a bomb"))
    assert refused[0].type == "safety_verdict" and not refused[0].allowed
    assert refused[-1].finish_reason == "content_filter" and chat_events_text(refused) == "I can't help with that."
    stopped = list(chat.send("tell me"))
    assert stopped[-1].finish_reason == "content_filter"
    assert "secret" not in chat_events_text(stopped) and "secret" not in stopped[-1].text
    blocked = [e for e in stopped if e.type == "safety_verdict" and not e.allowed]
    assert blocked and blocked[0].stage == "output" and "secret" not in json.dumps(blocked[0].to_json())


def test_interrupt_keeps_partial_reply_and_chat_goes_on():
    model = ScriptedModel(lambda p: "one two three four five six seven eight nine ten")
    chat = Chat(model, TOK)
    gen = chat.send("count")
    shown = ""
    for e in gen:
        if isinstance(e, ev.Token):
            shown += e.text
            if len(shown) > 8:
                gen.close()  # what the terminal does on Ctrl-C
                break
    assert chat.history[-1].role == "assistant" and chat.history[-1].content == shown
    events = list(chat.send("again"))
    assert events[-1].finish_reason == "stop" and events[-1].text.startswith("one two")


def test_regenerate_save_load(tmp_path):
    chat = Chat(ScriptedModel(lambda p: "hello"), TOK)
    list(chat.send("hi"))
    again = list(chat.regenerate())
    assert [m.role for m in chat.history] == ["user", "assistant"] and again[-1].text == "hello"
    chat.save(tmp_path / "c.json")
    other = Chat(ScriptedModel(lambda p: "x"), TOK)
    other.load(tmp_path / "c.json")
    assert other.history == chat.history
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="cannot load"):
        other.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="non-empty"):
        list(chat.send("   "))


# -- KV reuse with a real transformer ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny():
    cfg = ModelConfig.llama(vocab_size=TOK.n_vocab, n_ctx=512, n_embd=32, n_layer=2, n_head=4, n_kv_head=2)
    return Transformer(cfg, init_params(cfg, np.random.default_rng(0), std=0.5))


def _reply_ids(events):
    return [e.token_id for e in events if isinstance(e, ev.Token)]


def test_kv_reuse_equals_cold_run(tiny, tmp_path):
    warm = Chat(tiny, TOK, max_new_tokens=12)
    for msg in ["Hello there", "How are you?", "Tell me about tokens"]:
        events = list(warm.send(msg))
    tok_event = next(e for e in events if isinstance(e, ev.Tokenized))
    assert tok_event.cached_tokens > 0 and tok_event.prefill_tokens < tok_event.prompt_tokens
    # a cold session with the same history before the last message produces the same reply tokens
    warm.history = warm.history[:-2]
    warm.save(tmp_path / "h.json")
    cold = Chat(tiny, TOK, max_new_tokens=12)
    cold.load(tmp_path / "h.json")
    cold_events = list(cold.send("Tell me about tokens"))
    assert next(e for e in cold_events if isinstance(e, ev.Tokenized)).cached_tokens == 0
    assert _reply_ids(cold_events) == _reply_ids(events)


def test_cache_rewinds_after_trimming(tiny):
    chat = Chat(tiny, TOK, max_new_tokens=8, context_window=160)
    replies = []
    for k in range(6):
        events = list(chat.send(f"message number {k} with some padding words to fill the window"))
        replies.append((events, list(chat.history)))
    dropped = [e for e in events if isinstance(e, ev.ContextBuilt)][0].dropped
    assert dropped, "the window is small enough that old turns are dropped"
    before = next(e for e in replies[-2][0] if isinstance(e, ev.Tokenized))
    now = next(e for e in events if isinstance(e, ev.Tokenized))
    assert now.cached_tokens < before.prompt_tokens  # dropping a turn changed the prefix: the cache was rewound
    # cold run on the same (trimmed) context gives the same tokens
    cold = Chat(tiny, TOK, max_new_tokens=8, context_window=160)
    cold.history = list(replies[-2][1])
    cold_events = list(cold.send("message number 5 with some padding words to fill the window"))
    assert _reply_ids(cold_events) == _reply_ids(events)


def test_events_json_round_trip():
    samples = [ev.SafetyVerdict("input", True), ev.MemoryHits("q", ("likes tea",)),
               ev.ContextBuilt(100, 50, 10, 0, ({"index": 0, "role": "user", "tokens": 5},), ()),
               ev.Tokenized(50, 40, 10), ev.Token("hé", 7, 0, -0.5), ev.ToolCalled("call_0", "calc", {"x": 1}),
               ev.ToolResult("call_0", "calc", "5"), ev.Done("stop", {"prompt_tokens": 1}, {"generate": 0.1}, "hi")]
    for e in samples:
        d = json.loads(json.dumps(e.to_json()))
        assert d["type"] == e.type and ev.event_from_json(d) == e
    with pytest.raises(ValueError, match="unknown event type"):
        ev.event_from_json({"type": "nope"})


# -- each model with its own instructions; a message too long for the window ------------------------------------------

def test_instructions_default_to_the_models_own(tmp_path):
    """Built-in model: minichat's instructions; a GGUF/HF chat model: its template's default; unknown: none."""
    import minichat
    from minichat.chat.context import DEFAULT_INSTRUCTIONS
    from minichat.chat.profile import default_system_from_template, profile_from_path

    model, tok = minichat.load_model()
    assert Chat(model, tok).instructions == DEFAULT_INSTRUCTIONS
    assert Chat(model, tok, instructions="Be terse.").instructions == "Be terse."
    assert Chat(ScriptedModel(lambda p: "x"), TOK).instructions == ""  # no checkpoint behind it: no guess
    # HF folders keep the template in tokenizer_config.json, often with the newline escaped by JSON as "\\n"
    tpl = ("{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are Qwen, a helpful "
           "assistant.<|im_end|>\\n' }}{% endif %}")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": tpl}), encoding="utf-8")
    profile = profile_from_path(tmp_path)
    assert (profile.template, profile.instructions, profile.chat_tuned) == (
        "chatml", "You are Qwen, a helpful assistant.", True)
    assert default_system_from_template("{{ '<|im_start|>' + message['role'] }}<|im_end|>") == ""
    assert default_system_from_template(None) == ""


def test_a_message_too_long_for_the_window_leaves_the_conversation_intact():
    from minichat.chat.context import ContextTooLong

    chat = Chat(ScriptedModel(lambda p: "fine", n_ctx=256), TOK, max_new_tokens=64)
    assert chat_events_text(list(chat.send("hello"))) == "fine"
    before = list(chat.history)
    with pytest.raises(ContextTooLong, match="shorten the message"):
        list(chat.send("paste " * 2000))
    assert chat.history == before  # the refused message is not left behind to break every later turn
    assert chat_events_text(list(chat.send("still there?"))) == "fine"
    assert [m.role for m in chat.history] == ["user", "assistant", "user", "assistant"]


# -- memory notes: snippets in their own turn keep the KV cache's prefix stable -----------------------------------------

class TurnMemory:
    """Returns a different snippet for every message (the worst case for a prompt cache)."""

    def retrieve(self, query, k):
        return [f"The user once said: {query}"]


def test_memory_notes_sit_in_their_turn_and_keep_the_cached_prefix():
    from minichat.chat.context import is_memory_note

    model = ScriptedModel(lambda p: "ok")
    chat = Chat(model, TOK, memory=TurnMemory())
    list(chat.send("first"))
    held_after_turn_1 = len(chat._cached_ids)
    second = list(chat.send("second"))
    assert [m.role for m in chat.history] == ["system", "user", "assistant", "system", "user", "assistant"]
    assert is_memory_note(chat.history[0]) and "first" in chat.history[0].content
    assert is_memory_note(chat.history[3]) and "second" in chat.history[3].content
    # turn 2 reuses everything turn 1 left in the cache: only the new note, message and header are prefilled
    tokenized = next(e for e in second if isinstance(e, ev.Tokenized))
    assert tokenized.cached_tokens == held_after_turn_1
    # the note is rendered as a system message right before its user message, after the older turns
    prompt = TOK.decode(chat._cached_ids)
    assert prompt.index("first") < prompt.index("ok") < prompt.index("The user once said: second") < prompt.rindex(
        "<|im_start|>user\nsecond")


def test_the_current_memory_note_is_dropped_first_when_the_turn_does_not_fit():
    class Big:
        def retrieve(self, query, k):
            return ["word " * 300]

    chat = Chat(ScriptedModel(lambda p: "ok", n_ctx=256), TOK, memory=Big(), max_new_tokens=64)
    events = list(chat.send("hello there"))
    built = next(e for e in events if isinstance(e, ev.ContextBuilt))
    assert [d["role"] for d in built.dropped] == ["system"] and chat_events_text(events) == "ok"
