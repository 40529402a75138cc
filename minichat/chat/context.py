"""Context assembly: what the model sees this turn, fitted to its context window by token budget.

    system message  = instructions + the tools (listed as the model was trained: full or compact, always kept)
    [summary]       = a short note standing in for dropped turns          (optional)
    history         = earlier turns, newest kept first, whole turns only
    current turn    = [memory note] + the latest user message and any tool call/result since (always kept)

Memory snippets go in a *memory note*, a system message just before the user message they were retrieved for
(`memory_note`), and it stays in the history with its turn. Not in the system message at the top: what memory
retrieves changes from message to message, and a change at the top of the prompt would invalidate the whole KV
cache (everything after the first differing token must be recomputed); a note inside its own turn leaves the prefix
of every earlier turn untouched, so the cache keeps serving it. When the current turn does not fit, its memory note
is dropped before anything else (memory is lower-trust and lower-priority than the user's own words).

Budget: the window minus the tokens reserved for the reply; the prompt, including the `<|im_start|>assistant` line
that opens the reply, must fit in it. The reserve is `max_new_tokens`, or, when `min_new_tokens` is given, only that
much: the prompt may then grow into the rest of the reply's room, and the reply gets what is left (at least
`min_new_tokens`, at most `max_new_tokens`: `Context.reply_room`). Small windows need this: the first built-in model had
512 tokens (the current one 1,024), its four tool schemas take half of them, and reserving a full 256-token reply would leave no room for
the message itself. Trimming drops the *oldest whole turns* first. A turn starts at a user message and runs to the next one,
so an assistant's tool call and the tool's result always stay or go together. Kept turns stay contiguous: once a turn
does not fit, it and everything older goes (a conversation with a hole in the middle reads as nonsense). When the
system message and the current turn alone exceed the budget, `ContextTooLong` says by how much.

The summary, when asked for, replaces the dropped turns by one system note ("Earlier in this conversation ...") made
by `summarize(dropped_messages) -> str`; the default is extractive (the first words of each dropped user message),
since the built-in model is too small to summarise well. It is kept only if it fits.

What it leaves out: relevance-based selection of old turns (memory retrieval does that job), token-level truncation
inside a message.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minichat.chat.template import ChatTemplate, Message, tools_prompt
from minichat.tools.listing import compact_listing


DEFAULT_INSTRUCTIONS = "You are minichat, a small helpful assistant. Answer briefly and truthfully."


class ContextTooLong(ValueError):
    """The parts that must always be kept (system message + current turn) do not fit the budget."""


@dataclass(frozen=True)
class Context:
    """The assembled context and the account of how it was made (what the ContextBuilt event reports)."""

    messages: tuple[Message, ...]
    budget: int  # tokens the prompt may take: context window - the reply's reserve
    used: int  # tokens the prompt takes, the reply prompt included; never more than budget
    kept: tuple[dict, ...]  # {"index", "role", "tokens"} per history message kept (index into the history)
    dropped: tuple[dict, ...]  # {"index", "role", "tokens", "reason"} per history message dropped
    system_tokens: int
    summary_tokens: int
    reply_room: int = 0  # tokens left for the reply: min(max_new_tokens, context window - used)


MEMORY_NOTE = "memory"  # the `name` that marks a system message in the history as a memory note


def memory_note(snippets: Sequence[str]) -> Message:
    """The system message that carries memory snippets into the turn they were retrieved for."""
    return Message("system", "# What you remember about the user\n" + "\n".join(f"- {s}" for s in snippets),
                   name=MEMORY_NOTE)


def is_memory_note(m: Message) -> bool:
    return m.role == "system" and m.name == MEMORY_NOTE


def turns(history: Sequence[Message]) -> list[list[int]]:
    """Indices of history grouped into turns; a turn starts at each user message, or at the memory note before it.

    >>> [m.role for m in h]                               # doctest: +SKIP
    ['system', 'user', 'assistant', 'user', 'assistant', 'tool', 'assistant']
    >>> turns(h)                                          # doctest: +SKIP
    [[0], [1, 2], [3, 4, 5, 6]]
    """
    groups: list[list[int]] = []
    for i, m in enumerate(history):
        opens_turn = is_memory_note(m) or (m.role == "user" and not (i and is_memory_note(history[i - 1])))
        if opens_turn or not groups:
            groups.append([])
        groups[-1].append(i)
    return groups


LISTINGS = ("full", "compact")  # how tools are listed: every JSON schema in full, or one signature line each


def system_text(instructions: str, memory: Sequence[str] = (), tools: Sequence[Mapping[str, Any]] = (),
                listing: str = "full") -> str:
    """Instructions, then what memory retrieved, then the tools, as one system message. `listing` is the form the
    model was trained on: "full" (template.tools_prompt, each JSON schema) or "compact" (tools/listing.py, a
    signature line per tool, under half the tokens)."""
    if listing not in LISTINGS:
        raise ValueError(f"listing must be one of {LISTINGS}, not {listing!r}")
    parts = [instructions.strip()] if instructions.strip() else []
    if memory:
        parts.append("# What you remember about the user\n" + "\n".join(f"- {s}" for s in memory))
    if tools:
        parts.append(tools_prompt(tools) if listing == "full" else compact_listing(tools))
    return "\n\n".join(parts)


def extractive_summary(dropped: Sequence[Message], words: int = 8) -> str:
    """The default summary: the first few words of each dropped user message."""
    asked = [" ".join(m.content.split()[:words]) for m in dropped if m.role == "user" and m.content.strip()]
    return "Earlier in this conversation the user asked: " + "; ".join(f"“{a}”" for a in asked) + "." if asked else ""


def assemble(
    template: ChatTemplate,
    history: Sequence[Message],
    *,
    instructions: str = "",
    memory: Sequence[str] = (),
    tools: Sequence[Mapping[str, Any]] = (),
    context_window: int,
    max_new_tokens: int,
    min_new_tokens: int | None = None,
    summarize: bool | Callable[[Sequence[Message]], str] = False,
    listing: str = "full",
) -> Context:
    """Build the prompt's messages for `history`, whose last turn (from its last user message on) is the current one.

    System messages inside `history` are ignored, but for memory notes: the system message is always rebuilt from
    `instructions`, `memory` and `tools`, so that it is current and comes first. (`memory` here puts snippets in the
    system message, as the built-in model's training corpus does; the chat session uses memory notes instead.)
    """
    if max_new_tokens < 1 or context_window <= max_new_tokens:
        raise ValueError(f"need 1 <= max_new_tokens < context_window, got {max_new_tokens} and {context_window}")
    reserve = max_new_tokens if min_new_tokens is None else max(1, min(min_new_tokens, max_new_tokens))
    if not history or not any(m.role == "user" for m in history):
        raise ValueError("the history must contain at least one user message (the latest)")
    budget = context_window - reserve
    reply_prompt = len(template.generation_prompt())
    sys_text = system_text(instructions, memory, tools, listing)
    sys_msgs = [Message("system", sys_text)] if sys_text else []
    sys_tokens = sum(template.count(m) for m in sys_msgs)
    cost = [0 if m.role == "system" and not is_memory_note(m) else template.count(m) for m in history]

    groups = [[i for i in g if history[i].role != "system" or is_memory_note(history[i])] for g in turns(history)]
    groups = [g for g in groups if g]
    current, older = groups[-1], groups[:-1]
    latest = sum(cost[i] for i in current)
    must = sys_tokens + latest + reply_prompt
    notes = [i for i in current if is_memory_note(history[i])]
    if must > budget and notes:  # the current turn's memory note goes first
        current = [i for i in current if i not in notes]
        must -= sum(cost[i] for i in notes)
        latest -= sum(cost[i] for i in notes)
    if must > budget:
        raise ContextTooLong(
            f"the system message ({sys_tokens} tokens), the latest turn ({latest}) and the reply prompt "
            f"({reply_prompt}) need {must} tokens but only {budget} fit (context window {context_window} - "
            f"{reserve} reserved for the reply); shorten the message or the instructions"
            f"{', or lower max_new_tokens' if reserve > 1 and min_new_tokens is None else ''}")

    def fit(room: int) -> int:
        """How many of the newest older turns fit in `room` tokens (contiguous, newest first)."""
        n = 0
        for g in reversed(older):
            t = sum(cost[i] for i in g)
            if t > room:
                break
            room -= t
            n += 1
        return n

    n_keep = fit(budget - must)
    summary_msgs: list[Message] = []
    if summarize and n_keep < len(older):
        fn = extractive_summary if summarize is True else summarize
        # the summary and the kept turns share the room: keep fewer turns until the summary of the rest fits too
        for n in range(n_keep, -1, -1):
            dropped_msgs = [history[i] for g in older[: len(older) - n] for i in g]
            text = fn(dropped_msgs)
            cand = [Message("system", text)] if text else []
            s_cost = sum(template.count(m) for m in cand)
            if s_cost + sum(cost[i] for g in older[len(older) - n :] for i in g) <= budget - must:
                n_keep, summary_msgs = n, cand
                break
    kept_groups = older[len(older) - n_keep :] + [current]
    kept_idx = [i for g in kept_groups for i in g]
    dropped_idx = [i for g in older[: len(older) - n_keep] for i in g] + [i for i in notes if i not in current]
    messages = tuple(sys_msgs + summary_msgs + [history[i] for i in kept_idx])
    summary_tokens = sum(template.count(m) for m in summary_msgs)
    used = sys_tokens + summary_tokens + sum(cost[i] for i in kept_idx) + reply_prompt
    reason = "oldest turns dropped to fit the budget" + (" (replaced by a summary)" if summary_msgs else "")
    return Context(
        messages=messages, budget=budget, used=used,
        kept=tuple({"index": i, "role": history[i].role, "tokens": cost[i]} for i in kept_idx),
        dropped=tuple({"index": i, "role": history[i].role, "tokens": cost[i], "reason": reason}
                      for i in dropped_idx),
        system_tokens=sys_tokens, summary_tokens=summary_tokens,
        reply_room=min(max_new_tokens, context_window - used))
