"""One conversation: `Chat.send(text)` runs a whole turn and yields an Event per stage (docs/design.md §1).

    1 safety.check_input      -> SafetyVerdict    (a refused message is answered without the model)
    2 memory.retrieve         -> MemoryHits
    3 context.assemble        -> ContextBuilt     (system + memory + tools + history + latest, trimmed)
    4 template.render         -> Tokenized        (how many prompt tokens the KV cache already holds)
    5 generate                -> Token ...        (text deltas, UTF-8 safe, through the safety output filter)
    6 tool calls in the reply -> ToolCalled, ToolResult, then back to 3 with the results appended
    8                         -> Done             (finish_reason, usage, seconds per stage)

Prompt caching across turns: the session keeps one KV cache and the ids it holds. Each turn renders the prompt
afresh, keeps the longest common prefix of those ids and the cached ones, rewinds the cache to it (trimming or an
edited history changes the prefix; a reply re-tokenized differently from how it was generated does too), and
prefills only the rest. A test checks this gives exactly the tokens of a cold run.

Closing the generator mid-reply (Ctrl-C in the terminal) keeps what was shown as the reply, marked "interrupted",
and leaves the session usable. What it leaves out: parallel tool calls run concurrently (they run in order), the
HTTP server (it forwards these same events).
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minichat.chat import events as ev
from minichat.chat.context import ContextTooLong, assemble, is_memory_note, memory_note
from minichat.chat.plugins import Guard, Memory, NoGuard, NoMemory, NoTools, Tools
from minichat.chat.profile import model_profile
from minichat.chat.template import ChatTemplate, Message, ToolCall, parse_assistant, tool_result, user
from minichat.chat.toolstream import ToolStreamParser
from minichat.config import ChatConfig, SamplingConfig
from minichat.generate.loop import generate

CONVERSATION_FORMAT = 1
REMEMBER_TOOL = "remember"  # the tool that saves a fact to memory (minichat.tools.builtin, minichat.memory)


class Chat:
    """A conversation with a model. `model` is anything with the generation loop's LanguageModel interface.

    The loop's limits are a `ChatConfig` (`config=`, or its fields as keywords: `Chat(m, t, max_new_tokens=64)`);
    the plug-ins and the instructions are the other arguments. `instructions` default to the model's own system prompt
    (minichat's for the built-in model, the one in a GGUF's or HF folder's chat template for others, none for a plain
    language model): see minichat.chat.profile. Randomness comes from one generator seeded by `sampling.seed`.
    """

    def __init__(self, model: Any, tokenizer: Any, config: ChatConfig | None = None, *,
                 instructions: str | None = None, tools: Tools | None = None, safety: Guard | None = None,
                 memory: Memory | None = None, **fields: Any):
        self.config = (config or ChatConfig()).replace(**fields)
        self.model, self.template = model, ChatTemplate(tokenizer)
        self.profile = model_profile(model)
        self.instructions = self.profile.instructions if instructions is None else instructions
        self.tools, self.safety, self.memory = tools or NoTools(), safety or NoGuard(), memory or NoMemory()
        self.context_window = min(self.config.context_window or model.config.n_ctx, model.config.n_ctx)
        if not self.config.max_new_tokens < self.context_window:
            raise ValueError(f"max_new_tokens must be in 1..{self.context_window - 1}, not "
                             f"{self.config.max_new_tokens}")
        self.rng = np.random.default_rng(self.config.sampling.seed)
        self.history: list[Message] = []
        self._cache = None  # the KV cache (batch 1) and the ids whose keys/values it holds
        self._cached_ids: list[int] = []

    @property
    def tokenizer(self):
        return self.template.tokenizer

    @property
    def max_new_tokens(self) -> int:
        return self.config.max_new_tokens

    @property
    def sampling(self) -> SamplingConfig:
        return self.config.sampling

    # -- conversation management ---------------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget the conversation (the KV cache is kept but will be rewound on the next turn)."""
        self.history.clear()

    def save(self, path: str | os.PathLike) -> None:
        data = {"format": "minichat-conversation", "version": CONVERSATION_FORMAT, "instructions": self.instructions,
                "messages": [m.to_json() for m in self.history]}
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    def load(self, path: str | os.PathLike) -> None:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            if data.get("format") != "minichat-conversation" or data.get("version") != CONVERSATION_FORMAT:
                raise ValueError(f"not a minichat conversation file of version {CONVERSATION_FORMAT}")
            messages = [Message.from_json(m) for m in data["messages"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"cannot load the conversation from {path}: {e}") from None
        self.instructions, self.history = data.get("instructions", self.instructions), messages

    # -- a turn --------------------------------------------------------------------------------------------------------

    def send(self, text: str, *, tools: Sequence[str] | None = None, tool_choice: Any = "auto",
             **sampling: Any) -> Iterator[ev.Event]:
        """Add the user's message and run the turn; yields events. `sampling` overrides SamplingConfig fields.

        Per request: `tools` names the tools enabled for this message (None: all the chat has) and `tool_choice` is
        "auto" (the model decides), "none", "required" or a tool's name; the last two are enforced by starting the
        reply with the call's opening (see `minichat.tools.toolbox.forced_prefix`).
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError("send() needs a non-empty message string")
        request_tools = self._select_tools(tools, tool_choice)
        timings: dict[str, float] = {}
        t = time.perf_counter()
        verdict = self.safety.check_input(text)
        timings["safety_input"] = time.perf_counter() - t
        yield verdict_event("input", verdict)
        before = len(self.history)
        self.history.append(user(text))
        if not verdict.allowed:
            reply = getattr(verdict, "reply", "") or "I can't help with that."
            self.history.append(Message("assistant", reply))
            yield ev.Token(reply, -1, 0)
            yield ev.Done("content_filter", {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}, timings,
                          reply)
            return
        try:
            yield from self._respond(text, timings, sampling, request_tools)
        except ContextTooLong:
            del self.history[before:]  # the message could not be answered: the conversation stays as it was
            raise

    def regenerate(self, **sampling: Any) -> Iterator[ev.Event]:
        """Drop the reply to the last user message (with its tool calls) and answer that message again."""
        last = max((i for i, m in enumerate(self.history) if m.role == "user"), default=None)
        if last is None:
            raise ValueError("nothing to regenerate: the conversation has no user message yet")
        del self.history[last + 1 :]
        yield from self._respond(self.history[last].content, {}, sampling, self.tools)

    def _select_tools(self, enabled: Sequence[str] | None, tool_choice: Any) -> Tools:
        """This request's tools: the chat's, restricted to `enabled` with `tool_choice` (a Toolbox can; a plain
        Tools socket only takes the defaults)."""
        if enabled is None and tool_choice == "auto":
            return self.tools
        if not hasattr(self.tools, "select"):
            raise ValueError("per-request tools and tool_choice need a minichat.tools.Toolbox as the chat's tools")
        return self.tools.select(enabled, tool_choice)

    def _run_tool(self, tools: Tools, call: Any) -> tuple[str, bool]:
        """One call -> (result text, ok). A failing tool is information for the model, never a crash of the chat."""
        if hasattr(tools, "call"):  # a Toolbox: checked, timed, capped (minichat/tools/toolbox.py)
            outcome = tools.call(call.name, call.arguments)
            return outcome.content, outcome.ok
        try:
            return str(tools.run(call.name, call.arguments)), True
        except Exception as e:  # noqa: BLE001
            return f"error: {type(e).__name__}: {e}", False

    def _respond(self, query: str, timings: dict[str, float], overrides: dict[str, Any],
                 tools: Tools) -> Iterator[ev.Event]:
        config = dataclasses.replace(self.sampling, **overrides) if overrides else self.sampling
        t = time.perf_counter()
        snippets = list(self.memory.retrieve(query, self.config.memory_k))
        timings["memory"] = time.perf_counter() - t
        if snippets and hasattr(self.safety, "check_memory"):  # injected instructions in memory: quarantined
            checked, verdicts = self.safety.check_memory(snippets)
            for v in verdicts:
                yield verdict_event("memory", v)
            snippets = checked
        hits = getattr(self.memory, "last_hits", ())  # a memory may say how relevant each snippet was, and why
        scores = tuple(float(h.score) for h in hits) if len(hits) == len(snippets) else ()
        yield ev.MemoryHits(query, tuple(snippets), configured=not isinstance(self.memory, NoMemory), scores=scores,
                            reason=str(getattr(self.memory, "last_reason", "")))
        last_user = max(i for i, m in enumerate(self.history) if m.role == "user")
        noted = last_user > 0 and is_memory_note(self.history[last_user - 1])  # regenerate: the note is there
        if snippets and not noted:  # just before the user's message, so the cached prefix stays stable (context.py)
            self.history.insert(last_user, memory_note(snippets))
        usage = {"prompt_tokens": 0, "cached_tokens": 0, "completion_tokens": 0}
        steer = self.safety.instructions() if self.config.guard_instructions else ""
        instructions = "\n\n".join(s for s in (self.instructions, steer) if s)
        schemas = list(tools.schemas())
        retries = getattr(tools, "max_retries", 1)  # replies whose call could not be read, answered with the error
        for round_ in range(self.config.max_tool_rounds + 1):
            t = time.perf_counter()
            try:
                ctx = assemble(self.template, self.history, instructions=instructions, tools=schemas,
                               context_window=self.context_window, max_new_tokens=self.max_new_tokens,
                               min_new_tokens=self.config.min_new_tokens, summarize=self.config.summarize,
                               listing=self.profile.tool_listing)
            except ContextTooLong:
                if round_ == 0:
                    raise  # send() takes the message back out of the history
                yield ev.Done("context_full", usage, timings, "")  # tool results filled the window mid-turn
                return
            timings["context"] = timings.get("context", 0.0) + time.perf_counter() - t
            yield ev.ContextBuilt(ctx.budget, ctx.used, ctx.system_tokens, ctx.summary_tokens, ctx.kept, ctx.dropped,
                                  window=self.context_window, tools=len(schemas), reply_room=ctx.reply_room)
            t = time.perf_counter()
            # tool_choice "required" or a named tool: the reply starts with the call's opening (first round only)
            forced = (getattr(tools, "forced_prefix", lambda: None)() or "") if round_ == 0 else ""
            ids = self.template.render(list(ctx.messages)) + self.tokenizer.encode_ordinary(forced)
            cached = self._reuse_cache(ids)
            timings["tokenize"] = timings.get("tokenize", 0.0) + time.perf_counter() - t
            usage["prompt_tokens"] += len(ids)
            usage["cached_tokens"] += cached
            yield ev.Tokenized(len(ids), cached, len(ids) - cached)
            reply = yield from self._generate(ids, config, timings, usage, forced, ctx.reply_room)
            if reply is None:  # interrupted or stopped by the output filter: already reported
                return
            text, shown, finish = reply
            message = parse_assistant(text)  # the calls come from what the model wrote...
            if message.content != shown:  # ...the words from what the user saw (redacted by the output filter)
                message = dataclasses.replace(message, content=shown)
            self.history.append(message)
            if not message.tool_calls:
                if message.errors and retries > 0 and round_ < self.config.max_tool_rounds:
                    retries -= 1  # a call that could not be read: tell the model why, let it try again
                    problem = tool_result(ToolCall("", {}, f"call_error_{round_}"),
                                          "error: ToolCallError: " + "; ".join(message.errors))
                    self.history.append(problem)
                    yield ev.ToolResult(problem.tool_call_id, "", problem.content, False)
                    continue
                yield ev.Done(finish, usage, timings, message.content)
                return
            t = time.perf_counter()
            for call in message.tool_calls:
                yield ev.ToolCalled(call.id, call.name, dict(call.arguments))
                content, ok = self._run_tool(tools, call)
                if hasattr(self.safety, "check_tool_result"):  # untrusted data: injections quarantined, PII redacted
                    content, verdicts = self.safety.check_tool_result(content)
                    for v in verdicts:
                        yield verdict_event("tool_result", v)
                self.history.append(tool_result(call, content))
                yield ev.ToolResult(call.id, call.name, content, ok)
                if call.name == REMEMBER_TOOL:  # the built-in model saves facts with this tool: say what happened
                    yield ev.MemoryUpdated("remember", content, ok and content.startswith("Saved"))
            timings["tools"] = timings.get("tools", 0.0) + time.perf_counter() - t
        yield ev.Done("tool_limit", usage, timings, "")

    def _reuse_cache(self, ids: list[int]) -> int:
        """Rewind the KV cache to the longest prefix it shares with `ids` (a strict prefix); return its length."""
        if self._cache is None:
            self._cache = self.model.new_cache(1, self.context_window)
        n = 0
        for a, b in zip(self._cached_ids, ids):
            if a != b:
                break
            n += 1
        n = min(n, len(ids) - 1)  # the last prompt token must be fed to get the next token's logits
        self._cache.crop(n)
        self._cached_ids = self._cached_ids[:n]
        return n

    def _generate(self, ids: list[int], config: SamplingConfig, timings: dict[str, float], usage: dict[str, int],
                  forced: str = "", room: int | None = None) -> Iterator[ev.Event]:
        """Stage 5: stream the reply, holding back tool calls (ToolStreamParser) and passing what is left through the
        safety output filter. `forced` is text the reply was started with (already in `ids`). Returns (the reply as
        the model wrote it, the text shown to the user, finish_reason), or None when the turn ended here (interrupted,
        or stopped by the safety filter)."""
        out_filter, calls = self.safety.output_filter(), ToolStreamParser()
        shown, generated, raw, finish = [], [], [forced], "length"
        first = calls.feed(forced).text  # the forced opening is inside a call: nothing to show
        t = time.perf_counter()
        steps = generate(self.model, ids, config, max_new_tokens=room or self.max_new_tokens,
                         stop_ids=self.template.stop_ids, tokenizer=self.tokenizer, rng=self.rng, cache=self._cache)
        try:
            for step in steps:
                if "first_token" not in timings:
                    timings["first_token"] = time.perf_counter() - t
                generated.append(step.token_id)
                raw.append(step.text)
                visible, first = first + calls.feed(step.text).text, ""
                if step.finish_reason is not None:
                    visible += calls.flush().text
                text, verdict = out_filter.feed(visible)
                if step.finish_reason is not None:
                    finish = step.finish_reason
                    tail, verdict2 = out_filter.flush()
                    text, verdict = text + tail, verdict or verdict2
                shown.append(text)
                yield ev.Token(text, step.token_id, step.index, step.logprob)
                if verdict is not None:  # redacted (the reply goes on) or stopped (it ends here)
                    yield verdict_event("output", verdict)
                if verdict is not None and not verdict.allowed:
                    self._after_generation(ids, generated)
                    self.history.append(Message("assistant", "".join(shown)))
                    yield ev.Done("content_filter", usage | {"completion_tokens": len(generated)}, timings,
                                  "".join(shown))
                    return None
        except (GeneratorExit, KeyboardInterrupt):  # the reader stopped (Ctrl-C, at a yield or mid-forward): keep
            # what was shown as the reply, so the conversation and the KV cache bookkeeping stay consistent
            steps.close()
            self._after_generation(ids, generated)
            self.history.append(Message("assistant", "".join(shown), errors=("interrupted",)))
            raise
        finally:
            timings["generate"] = timings.get("generate", 0.0) + time.perf_counter() - t
        self._after_generation(ids, generated)
        usage["completion_tokens"] += len(generated)
        return "".join(raw), "".join(shown), finish

    def _after_generation(self, prompt: list[int], generated: list[int]) -> None:
        """The cache now holds the prompt and every generated token but the last (never fed back)."""
        held = int(np.asarray(self._cache.lengths)[0])
        self._cached_ids = (prompt + generated)[:held]


def verdict_event(stage: str, v: Any) -> ev.SafetyVerdict:
    """A guard's verdict as an event: the decision and why, never the text it was about."""
    return ev.SafetyVerdict(stage, bool(v.allowed), v.action, v.policy, v.reason, getattr(v, "layer", ""),
                            getattr(v, "category", ""), float(getattr(v, "score", 0.0)),
                            float(getattr(v, "threshold", 0.0)))


def chat_events_text(events: Sequence[ev.Event]) -> str:
    """The reply text carried by a list of events (what a terminal would have printed)."""
    return "".join(e.text for e in events if isinstance(e, ev.Token))
