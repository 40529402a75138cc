"""Checkers for notebooks 00 (the journey) and 05 (context and memory): rebuild the chat layer's key steps.

    check_turns(turns)            [user, assistant, user, tool, assistant] roles -> [[0, 1], [2, 3, 4]]
    check_fit_newest(fit_newest)  turn costs [5, 7, 3], room 10 -> 1 (the newest turn only; contiguous, newest first)
    check_common_prefix(lcp)      [1, 2, 3, 4], [1, 2, 9] -> 2 (tokens the KV cache can keep)

The references are minichat's own: `minichat.chat.context.turns`, the trimming rule of `assemble`, and the
longest-common-prefix rule the session uses to rewind its KV cache (`Chat._reuse_cache`, without the "strict prefix"
adjustment, which the notebook explains separately).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from minichat.chat.context import turns as reference_turns
from minichat.chat.template import Message
from minichat.exercises import Feedback, run_cases


def _messages(roles: str) -> list[Message]:
    names = {"s": "system", "u": "user", "a": "assistant", "t": "tool"}
    return [Message(names[r], f"message {i}") for i, r in enumerate(roles)]


def check_turns(fn: Callable[[Sequence[Message]], list[list[int]]], seed: int = 0) -> Feedback:
    """Group a history's message indices into turns: a turn starts at each user message."""
    rng = np.random.default_rng(seed)
    cases = ["ua", "uaua", "uatau", "u", "suaua", "uatatau"]
    cases += ["".join(rng.choice(list("uaat"), size=int(rng.integers(1, 10)))) for _ in range(6)]
    return run_cases("turns", fn, [(c, (_messages(c),), reference_turns(_messages(c))) for c in cases])


def reference_fit_newest(costs: Sequence[int], room: int) -> int:
    """How many of the newest turns fit in `room` tokens, taken newest first and without gaps."""
    n = 0
    for c in reversed(costs):
        if c > room:
            break
        room -= c
        n += 1
    return n


def check_fit_newest(fn: Callable[[Sequence[int], int], int], seed: int = 0) -> Feedback:
    """Count the newest whole turns that fit the room left after the system prompt and the latest turn."""
    rng = np.random.default_rng(seed)
    cases = [([5, 7, 3], 10), ([5, 7, 3], 15), ([5, 7, 3], 2), ([], 10), ([4, 4], 8), ([100, 1, 1], 3),
             ([1, 100, 3], 10)]  # the last: the big turn stops the count; older small ones stay dropped
    cases += [(rng.integers(1, 20, int(rng.integers(0, 8))).tolist(), int(rng.integers(0, 60))) for _ in range(8)]
    return run_cases("fit_newest", fn, [(f"costs={c} room={r}", (c, r), reference_fit_newest(c, r))
                                        for c, r in cases])


def reference_common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def check_common_prefix(fn: Callable[[Sequence[int], Sequence[int]], int], seed: int = 0) -> Feedback:
    """Length of the longest common prefix of the cached ids and the new prompt's ids."""
    rng = np.random.default_rng(seed)
    cases = [([1, 2, 3, 4], [1, 2, 9]), ([], [1]), ([1, 2], [1, 2, 3]), ([1, 2, 3], [1, 2]), ([5], [6]),
             ([1, 2, 3, 4], [1, 9, 3, 4])]  # equal again after a difference: the prefix still ends at 1
    for _ in range(8):
        a = rng.integers(0, 3, int(rng.integers(0, 8))).tolist()
        cases.append((a, a[: int(rng.integers(0, len(a) + 1))] + rng.integers(0, 3, 3).tolist()))
    return run_cases("common_prefix", fn, [(f"{a} vs {b}", (a, b), reference_common_prefix(a, b)) for a, b in cases])
