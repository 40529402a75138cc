"""The synthetic chat corpus the built-in model is trained and evaluated on, written by this project.

A conversation is a list of chat messages (minichat.chat.template.Message) whose first message is the system
prompt exactly as the chat session builds it: `system_text(instructions, memory, tools)` with the session's
`DEFAULT_INSTRUCTIONS`, the memory snippets the conversation relies on, and the JSON schemas of the built-in tools
that are enabled for it (`BUILTIN_TOOL_SCHEMAS`: the ones it calls, each other one with probability `TOOL_ENABLED`,
as per-request tool flags would choose; shorter prompts also leave more of each training row to assistant tokens).
Kinds, and their weight in the default mix (`MIX`, weights summing to 1.13; copying drills 0.31: docs/training.md
explains why):

    smalltalk            greetings, thanks, "who are you", jokes; greets by name when memory knows it
    knowledge            how a chat assistant works: tokens, context window, attention, streaming, tools, ...
    calculator           <tool_call> calculator -> result -> an answer that repeats the result (1-3 of them)
    calculator_followup  a second calculation on the first result ("now multiply that by 7")
    time                 get_time -> "Thursday, 17 April 2031, 14:05" -> the part that was asked for
    notes                search_notes -> a note (or none) -> the note's details (sometimes a second search)
    remember             remember(fact) -> "Saved to memory: ..." -> a confirmation (sometimes asked back later)
    memory               facts in the system prompt, a question about one (or one that is not there: "I don't know")
    refusal              a harmful request -> a refusal (sometimes a push-back and a second refusal)
    lookalike            a harmless request with an alarming word ("kill a Python process") -> a helpful answer
    echo                 copying drills: "Repeat exactly: 4417, Naomi, 19:05", "The code is 83620. What is the
                         code?" (the skill every answer after a tool result needs, at a high density of loss tokens;
                         tools listed in only ECHO_TOOLS_SHOWN of them, to keep them short)
    chain                two or three of the above in one conversation, often with a detail told at the start
                         and asked for at the end

Randomness: conversation i of a corpus draws from `np.random.default_rng([seed, split, i])`, so a corpus is a pure
function of (n, seed, split), and the first k conversations of a bigger corpus are the corpus of size k. The
held-out split uses another seed by default and disjoint pools of names, cities, numbers and dates
(synthetic_pools.py), so evaluating on it tests copying from context, not recall of training examples.

Each conversation carries `probes`: the assistant messages an evaluation can ask the model to write, and what makes
the written one right (see synthetic_pools.Probe and minichat/builtin/evaluate.py).

What it leaves out: real user data, languages other than English, long documents, parallel tool calls, self-harm
conversations (which need care beyond a refusal).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from minichat.builtin.corpus import synthetic_memory as memory
from minichat.builtin.corpus import synthetic_talk as talk
from minichat.builtin.corpus import synthetic_tools as tools
from minichat.builtin.corpus.synthetic_pools import SPLITS, Episode, Pools, Probe, pools
from minichat.builtin.corpus.synthetic_tools import BUILTIN_TOOL_SCHEMAS
from minichat.chat.context import DEFAULT_INSTRUCTIONS, system_text
from minichat.chat.template import Message, render_text

TRAIN_SEED, HELDOUT_SEED = 0, 7919  # default seeds of the two splits
TOOLS_SHOWN = 0.6  # chance that a conversation which needs no tool still lists them (as the chat session does)
ECHO_TOOLS_SHOWN = 0.2  # the same for copying drills, kept short so that most of their tokens are copies
TOOL_ENABLED = 0.5  # chance that a tool the conversation does not call is listed anyway
CHAIN_CHARS = 880  # a chain stops adding episodes beyond this many characters of ChatML (~4 characters a token)
DISTRACTORS = 0.2  # chance of unrelated memory snippets in a conversation that needs none

Generator = Callable[[np.random.Generator, Pools], Episode]

EPISODES: dict[str, Generator] = {
    "smalltalk": talk.smalltalk, "knowledge": talk.knowledge, "calculator": tools.calculator,
    "calculator_followup": tools.calculator_followup, "time": tools.clock, "notes": tools.notes,
    "remember": memory.remember, "memory": memory.from_memory, "refusal": talk.refusal, "lookalike": talk.lookalike,
    "echo": talk.echo,
}
MIX: dict[str, float] = {"smalltalk": 0.04, "knowledge": 0.06, "calculator": 0.15, "calculator_followup": 0.04,
                         "time": 0.05, "notes": 0.11, "remember": 0.08, "memory": 0.06, "refusal": 0.07,
                         "lookalike": 0.06, "chain": 0.10, "echo": 0.31}
CHAINABLE = ("smalltalk", "knowledge", "calculator", "time", "notes", "remember", "refusal", "lookalike", "echo")


@dataclass(frozen=True)
class Conversation:
    """One synthetic conversation: messages (the system prompt first) and what that system prompt was built from."""

    kind: str
    messages: tuple[Message, ...]
    probes: tuple[Probe, ...] = ()
    instructions: str = DEFAULT_INSTRUCTIONS
    memory: tuple[str, ...] = ()
    tools: tuple[Mapping, ...] = field(default=(), hash=False)

    @property
    def history(self) -> tuple[Message, ...]:
        """The messages after the system prompt (what the chat session keeps as its history)."""
        return self.messages[1:]


def _chars(messages) -> int:
    return len(render_text(messages, add_generation_prompt=False))


def _chain(rng: np.random.Generator, P: Pools) -> Episode:
    """Two to four short episodes in one conversation, within CHAIN_CHARS characters (so that with the system
    prompt it fits a 512-token context); half the time a detail told first is asked for last."""
    kinds = [str(k) for k in rng.choice(CHAINABLE, size=int(rng.integers(2, 5)), replace=False)]
    if "smalltalk" in kinds:  # a greeting belongs at the start
        kinds.remove("smalltalk")
        kinds.insert(0, "smalltalk")
    ep = Episode("chain", [])
    tell = ask = None
    if rng.random() < 0.5:
        tell, ask, value = memory.told_earlier(rng, P)
        ep.messages += tell
    parts: list[Episode] = []
    used = _chars(ep.messages) + (_chars(ask) if ask else 0)
    for k in kinds:
        part = EPISODES[k](rng, P)
        if parts and used + _chars(part.messages) > CHAIN_CHARS:
            break
        parts.append(part)
        used += _chars(part.messages)
    for part in parts:
        base = len(ep.messages)
        ep.messages += part.messages
        ep.probes += [p.shifted(base) for p in part.probes]
        ep.memory += [m for m in part.memory if m not in ep.memory]
        ep.uses_tools |= part.uses_tools
    if ask is not None:
        ep.messages += ask
        ep.probe("answer", contains=(value,))
    return ep


def draw_kind(rng: np.random.Generator, mix: Mapping[str, float]) -> str:
    """A conversation kind drawn with the mix's weights (in sorted order of the kinds, so the draw is reproducible)."""
    names = sorted(mix)
    weights = np.array([mix[k] for k in names], dtype=np.float64)  # (K,)
    if (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"mix weights must be >= 0 and not all zero, got {dict(mix)}")
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def conversation(rng: np.random.Generator, split: str = "train", kind: str | None = None,
                 instructions: str = DEFAULT_INSTRUCTIONS, mix: Mapping[str, float] = MIX) -> Conversation:
    """One conversation drawn with `rng` from the pools of `split`; `kind` None draws it from `mix`."""
    P = pools(split)
    kind = draw_kind(rng, mix) if kind is None else kind
    if kind == "chain":
        ep = _chain(rng, P)
    elif kind in EPISODES:
        ep = EPISODES[kind](rng, P)
    else:
        raise ValueError(f"unknown conversation kind {kind!r}; known: {sorted(EPISODES) + ['chain']}")
    shown = ep.uses_tools or rng.random() < (ECHO_TOOLS_SHOWN if kind == "echo" else TOOLS_SHOWN)
    mem = list(ep.memory)
    if not mem and kind not in ("smalltalk", "chain") and rng.random() < DISTRACTORS:
        mem = [f.fact for f in memory.facts(rng, P, int(rng.integers(1, 3)))]
    schemas = enabled_tools(rng, ep) if shown else ()
    sys = Message("system", system_text(instructions, mem, schemas))
    return Conversation(ep.kind if kind != "chain" else "chain", (sys, *ep.messages),
                        tuple(p.shifted(1) for p in ep.probes), instructions, tuple(mem), tuple(schemas))


def enabled_tools(rng: np.random.Generator, ep: Episode) -> tuple[dict, ...]:
    """The schemas listed for a conversation: every tool it calls, and each other built-in tool with probability
    TOOL_ENABLED; at least one (a random one when nothing is called and no draw succeeds)."""
    called = {c.name for m in ep.messages for c in m.tool_calls}
    keep = [s["name"] in called or rng.random() < TOOL_ENABLED for s in BUILTIN_TOOL_SCHEMAS]
    if not any(keep):
        keep[int(rng.integers(len(keep)))] = True
    return tuple(s for s, k in zip(BUILTIN_TOOL_SCHEMAS, keep) if k)


def _split_code(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return SPLITS.index(split)


def generate_corpus(n: int, seed: int | None = None, split: str = "train", *, kinds: Sequence[str] | None = None,
                    mix: Mapping[str, float] = MIX, instructions: str = DEFAULT_INSTRUCTIONS,
                    start: int = 0) -> list[Conversation]:
    """Conversations start .. start+n-1 of the corpus (seed, split). `seed` None: the split's default seed.

    kinds: cycle through these kinds instead of drawing from `mix` (conversation i has kind kinds[i % len(kinds)]).
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, not {n!r}")
    code = _split_code(split)
    seed = (TRAIN_SEED, HELDOUT_SEED)[code] if seed is None else int(seed)
    out = []
    for i in range(start, start + n):
        rng = np.random.default_rng([seed, code, i])
        out.append(conversation(rng, split, kinds[i % len(kinds)] if kinds else None, instructions, mix))
    return out


def heldout_corpus(n: int, seed: int = HELDOUT_SEED, **kwargs) -> list[Conversation]:
    """`generate_corpus` on the held-out split (unseen names, cities, numbers and dates; another seed)."""
    if seed == TRAIN_SEED:
        raise ValueError(f"the held-out corpus must use another seed than the training one ({TRAIN_SEED})")
    return generate_corpus(n, seed, "heldout", **kwargs)


def kind_counts(conversations: Sequence[Conversation]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in conversations:
        out[c.kind] = out.get(c.kind, 0) + 1
    return dict(sorted(out.items()))


__all__ = ["BUILTIN_TOOL_SCHEMAS", "CHAINABLE", "Conversation", "EPISODES", "HELDOUT_SEED", "MIX", "Probe",
           "TRAIN_SEED", "conversation", "generate_corpus", "heldout_corpus", "kind_counts"]
