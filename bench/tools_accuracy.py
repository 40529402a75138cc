"""The built-in model answering arithmetic it cannot know, end to end through `Chat` with its four tools.

    python bench/tools_accuracy.py [-n 200] [--seed 0]

Each question is a fresh chat: the model must call `calculator` with the right expression and copy the exact result
into its answer. Operands have 3 to 5 digits, the operators are + - * and /, and the phrasings below were written
for this benchmark (not drawn from the training corpus's generator). A question counts as right when the reply
contains the exact result (thousands separators ignored). Printed: accuracy with its standard error, the share of
questions where the right tool was called with the right value, and the failures' shapes. Target (issue 15): >= 90 %.
There is no peer to compare with: the figure is the model's, measured through the library's real loop.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import time

import minichat
from minichat.chat import events as ev
from minichat.tools import Toolbox, builtin_tools
from minichat.tools.builtin import calculator_result

PHRASINGS = [
    "What is {a} {op} {b}?",
    "Can you work out {a} {op} {b} for me?",
    "Quick question: {a} {op} {b} = ?",
    "Please calculate {a} {op} {b}.",
    "I need the result of {a} {op} {b}.",
    "How much is {a} {op} {b}?",
    "Tell me {a} {op} {b}, please.",
    "Compute {a} {op} {b}.",
]


def question(rng: random.Random) -> tuple[str, str]:
    op = rng.choice("+-*/")
    a, b = rng.randint(100, 99_999), rng.randint(100, 9_999)
    if op == "/":  # whole quotients: "1234 / 2" should not hinge on how a decimal is written
        a = b * rng.randint(2, 99)
    return rng.choice(PHRASINGS).format(a=a, op=op, b=b), f"{a} {op} {b}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model, tok = minichat.load_model()
    box = Toolbox(builtin_tools())
    rng = random.Random(args.seed)
    right = called = 0
    misses: list[str] = []
    t0 = time.perf_counter()
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    for _ in range(args.n):
        text, expression = question(rng)
        expected = calculator_result(expression)  # the tool's own format: "125", not "125.0"
        events = list(minichat.Chat(model, tok, tools=box).send(text))
        results = [e.content for e in events if isinstance(e, ev.ToolResult) and e.name == "calculator" and e.ok]
        reply = events[-1].text.replace(",", "")
        called += bool(results) and results[0] == expected
        if expected in reply:
            right += 1
        else:
            misses.append(f"{text!r}: tool {results[:1]} reply {reply!r}")
    p = right / args.n
    print(f"{args.n} questions in {time.perf_counter() - t0:.0f} s; load average at the end: {os.getloadavg()[0]:.2f}")
    print("first misses:\n  " + "\n  ".join(misses[:8]))
    print(f"right tool with the right value: {called / args.n:.1%}")
    print(f"calculator questions answered exactly: {p:.1%} (+- {math.sqrt(p * (1 - p) / args.n):.1%}; target >= 90 %)")


if __name__ == "__main__":
    main()
