"""Tool-use conversations for the synthetic corpus: the calculator, the clock and the user's notes.

Every one follows the Hermes/Qwen convention the chat session parses (minichat/chat/template.py):

    user       What is 347 times 29?
    assistant  <tool_call>{"name": "calculator", "arguments": {"expression": "347 * 29"}}</tool_call>
    tool       10063
    assistant  347 × 29 = 10063.

The model has to learn three things here: *when* a tool is needed, how to copy the user's numbers or topic into the
arguments, and how to copy the result into the answer. It never has to do the arithmetic itself.

The four built-in tools are the tools package's (minichat/tools/builtin.py): their schemas as listed in the system
prompt (`BUILTIN_TOOL_SCHEMAS`), the safe `calculate` and the result formats (`calculator_result`, `time_result`,
`notes_result`, `remember_result`) are imported from there, so the tools the model learned and the tools it calls
cannot drift apart.
A failing tool reaches the model as "error: <ExceptionName>: <message>" (the session's format).

What it leaves out: parallel tool calls in one message, tools beyond the four built-in ones.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from minichat.builtin.corpus.synthetic_pools import ITEMS, WEEKDAYS, Episode, Pools, distinct, long_date, short_date
from minichat.chat.template import Message, ToolCall, assistant, user
from minichat.tools.builtin import (BUILTIN_TOOL_SCHEMAS, calculate, calculator_result, format_number,  # noqa: F401
                                    notes_result, remember_result, time_result)

TOOL_NAMES = tuple(s["name"] for s in BUILTIN_TOOL_SCHEMAS)


def arguments_match(tool: str, expected: Mapping[str, Any], got: Mapping[str, Any], contains=()) -> bool:
    """Whether a call's arguments do what the expected ones do (the evaluation's notion of "right arguments").

    calculator: the expressions evaluate to the same number; get_time: no unknown arguments; search_notes: every word
    of the expected query appears in the query; remember: the fact mentions every string of `contains` (the value to
    remember, e.g. the colour), or equals the expected fact.
    """
    try:
        if tool == "calculator":
            want, have = calculate(expected["expression"]), calculate(got["expression"])
            return math.isclose(want, have, rel_tol=1e-9, abs_tol=1e-9)
        if tool == "get_time":
            return not set(got) - {"timezone"}
        if tool == "search_notes":
            have = str(got["query"]).casefold()
            return all(w in have for w in str(expected["query"]).casefold().split())
        if tool == "remember":
            fact = str(got["fact"]).casefold()
            return fact == str(expected["fact"]).casefold() or bool(contains) and all(
                c.casefold() in fact for c in contains)
    except (KeyError, ValueError, TypeError, ZeroDivisionError, OverflowError, ArithmeticError):
        return False
    return dict(expected) == dict(got)


def call(name: str, **arguments: Any) -> Message:
    return assistant("", [ToolCall(name, arguments, "call_0")])


def result(name: str, content: str) -> Message:
    return Message("tool", content, tool_call_id="call_0", name=name)


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


# -- calculator conversations ------------------------------------------------------------------------------------------

_OP_WORDS = {"+": ("+", "+", "plus"), "-": ("-", "-", "minus"), "*": ("*", "×", "x", "times", "multiplied by"),
             "/": ("/", "÷", "divided by")}
_ASK = ("What is {e}?", "What's {e}?", "Calculate {e}.", "How much is {e}?", "Can you work out {e}?", "{e} = ?",
        "Compute {e} for me, please.", "Quick question: what's {e}?", "Please calculate {e}.", "what is {e}",
        "Could you tell me what {e} is?", "I need {e}.", "Help me with some maths: {e}?", "Solve {e}.")
_SAY = ("{e} = {r}.", "The answer is {r}.", "{e} is {r}.", "That comes to {r}.", "It's {r}.", "{r}.",
        "The result is {r}.", "{e} equals {r}.")


def _operands(rng: np.random.Generator, P: Pools, op: str) -> tuple[int, int]:
    if op in "+-":
        a, b = P.number(rng, 10, 99999), P.number(rng, 10, 9999)
        return (max(a, b), min(a, b)) if op == "-" and rng.random() < 0.8 else (a, b)
    if op == "*":
        return P.number(rng, 2, 9999), P.number(rng, 2, 999)
    b = P.number(rng, 2, 99)  # division: mostly exact, sometimes with a decimal result
    return (P.multiple(rng, b, 2, 999), b) if rng.random() < 0.75 else (P.number(rng, 10, 9999), b)


def _expression(rng: np.random.Generator, P: Pools) -> tuple[str, str]:
    """(what the user writes, the canonical expression for the tool)."""
    shape = rng.random()
    if shape < 0.62:
        op = pick(rng, "+-*/")
        a, b = _operands(rng, P, op)
        return f"{a} {pick(rng, _OP_WORDS[op])} {b}", f"{a} {op} {b}"
    if shape < 0.8:
        a, b, c = P.number(rng, 2, 999), P.number(rng, 2, 999), P.number(rng, 2, 99)
        o1, o2 = pick(rng, "+-*"), pick(rng, "+-*")
        if rng.random() < 0.5:
            return f"({a} {o1} {b}) {o2} {c}", f"({a} {o1} {b}) {o2} {c}"
        return f"{a} {o1} {b} {o2} {c}", f"{a} {o1} {b} {o2} {c}"
    if shape < 0.9:
        p, x = P.number(rng, 2, 95), P.number(rng, 10, 9999)
        return pick(rng, (f"{p}% of {x}", f"{p} percent of {x}")), f"{x} * {p} / 100"
    n = P.number(rng, 2, 999)
    return pick(rng, (f"{n} squared", f"the square of {n}", f"{n} to the power of 2")), f"{n} ** 2"


def _word_problem(rng: np.random.Generator, P: Pools) -> tuple[str, str, str]:
    """(question, canonical expression, answer template with {r})."""
    k = int(rng.integers(6))
    name, item = P.name(rng), pick(rng, ITEMS)
    if k == 0:
        a, b = P.number(rng, 2, 99), P.number(rng, 2, 99)
        return (f"I bought {a} packs with {b} {item} in each. How many {item} is that?", f"{a} * {b}",
                f"That's {{r}} {item}.")
    if k == 1:
        a, b = P.number(rng, 100, 9999), P.number(rng, 10, 99)
        b = min(a - 1, b)
        return (f"{name} had {a} euros and spent {b}. How much is left?", f"{a} - {b}", f"{name} has {{r}} euros left.")
    if k == 2:
        b = P.number(rng, 2, 12)
        a = P.multiple(rng, b, 10, 250) if rng.random() < 0.7 else P.number(rng, 20, 2999)
        return (f"We have to split a bill of {a} euros between {b} people. How much does each pay?", f"{a} / {b}",
                "Each person pays {r} euros.")
    if k == 3:
        a, b = P.number(rng, 20, 300), P.number(rng, 2, 12)
        return (f"A train goes {a} km per hour for {b} hours. How far does it travel?", f"{a} * {b}",
                "It travels {r} km.")
    if k == 4:
        a, b = P.number(rng, 10, 9999), P.number(rng, 10, 9999)
        return (f"{name} has {a} points and wins {b} more. What's the total?", f"{a} + {b}",
                f"{name} now has {{r}} points.")
    m = P.number(rng, 61, 999)
    return (f"How many hours is {m} minutes?", f"{m} / 60", f"{m} minutes is {{r}} hours.")


def calculator_exchange(rng: np.random.Generator, P: Pools, ep: Episode) -> str:
    """Append one calculator exchange to `ep` (with probes); return the result text."""
    if rng.random() < 0.25:
        question, expr, say = _word_problem(rng, P)
        shown = expr
    else:
        shown, expr = _expression(rng, P)
        question = pick(rng, _ASK).format(e=shown)
        say = pick(rng, _SAY)
    ep.messages += [user(question), call("calculator", expression=expr)]
    ep.probe("tool_call", "calculator", {"expression": expr})
    r = calculator_result(expr)
    ep.messages += [result("calculator", r), assistant(say.format(e=shown, r=r))]
    ep.probe("answer", "calculator", contains=(r,))
    ep.uses_tools = True
    return r


def calculator(rng: np.random.Generator, P: Pools) -> Episode:
    ep = Episode("calculator", [])
    if rng.random() < 0.03:  # a failing call: the error comes back as the tool's result
        a = P.number(rng, 10, 9999)
        ep.messages += [user(pick(rng, _ASK).format(e=f"{a} / 0")), call("calculator", expression=f"{a} / 0"),
                        result("calculator", "error: ZeroDivisionError: division by zero"),
                        assistant(pick(rng, ("That can't be computed: dividing by zero is undefined.",
                                             "Division by zero is undefined, so there is no answer.")))]
        ep.uses_tools = True
        return ep
    for _ in range(1 + int(rng.random() < 0.5) + int(rng.random() < 0.2)):  # 1, 2 or 3 unrelated calculations
        calculator_exchange(rng, P, ep)
    return ep


_FOLLOW = (("Now multiply that by {k}.", "*"), ("And times {k}?", "*"), ("Add {k} to that.", "+"),
           ("What if I add {k}?", "+"), ("Now subtract {k}.", "-"), ("Take away {k} from that.", "-"),
           ("Divide that by {k}.", "/"), ("And that divided by {k}?", "/"))


def calculator_followup(rng: np.random.Generator, P: Pools) -> Episode:
    """A calculation, then one on its result ("now multiply that by 3"): the number comes from an earlier turn."""
    ep = Episode("calculator_followup", [])
    r = calculator_exchange(rng, P, ep)
    text, op = pick(rng, _FOLLOW)
    k = P.number(rng, 2, 99)
    expr = f"{r} {op} {k}"
    ep.messages += [user(text.format(k=k)), call("calculator", expression=expr)]
    ep.probe("tool_call", "calculator", {"expression": expr})
    r2 = calculator_result(expr)
    ep.messages += [result("calculator", r2), assistant(pick(rng, _SAY).format(e=expr, r=r2))]
    ep.probe("answer", "calculator", contains=(r2,))
    return ep


# -- the clock ---------------------------------------------------------------------------------------------------------

_TIME_ASKS = {
    "time": (("What time is it?", "What's the time?", "Do you know what time it is?", "what time is it now",
              "Can you tell me the time?", "Time check, please."), ("It's {clock}.", "The time is {clock}.",
                                                                    "Right now it's {clock}.")),
    "date": (("What's the date today?", "What is today's date?", "Which date is it?", "what's the date",
              "Can you tell me today's date?"), ("Today is {long}.", "It's {long}.", "The date is {long}.")),
    "weekday": (("What day is it today?", "Which day of the week is it?", "Is it the weekend yet? What day is it?",
                 "what day is today"), ("It's {weekday}.", "Today is {weekday}.")),
    "year": (("What year is it?", "Which year are we in?"), ("It's {year}.", "We're in {year}.")),
    "both": (("What's the date and time?", "Tell me the current date and time.", "What day and time is it now?"),
             ("It's {clock} on {long}.", "Right now it's {long}, {clock}.")),
}


def clock(rng: np.random.Generator, P: Pools) -> Episode:
    ep = Episode("time", [], uses_tools=True)
    what = pick(rng, tuple(_TIME_ASKS))
    asks, says = _TIME_ASKS[what]
    h, m = (int(x) for x in P.clock(rng).split(":"))
    when = dt.datetime.combine(P.date(rng), dt.time(h, m))
    ep.messages += [user(pick(rng, asks)), call("get_time")]
    ep.probe("tool_call", "get_time", {})
    slots = {"clock": f"{when:%H:%M}", "long": long_date(when.date()), "weekday": WEEKDAYS[when.weekday()],
             "year": str(when.year)}
    ep.messages += [result("get_time", time_result(when)), assistant(pick(rng, says).format(**slots))]
    need = {"time": ("clock",), "date": ("long",), "weekday": ("weekday",), "year": ("year",),
            "both": ("clock", "long")}[what]
    ep.probe("answer", "get_time", contains=tuple(slots[k] for k in need))
    return ep


# -- the user's notes --------------------------------------------------------------------------------------------------

def _note(rng: np.random.Generator, P: Pools, topic: str) -> tuple[str, tuple[str, ...]]:
    """A note about `topic` and the details an answer must repeat."""
    name, sur, city, day, t = P.name(rng), P.surname(rng), P.city(rng), P.word(rng, WEEKDAYS), P.clock(rng)
    date = short_date(P.date(rng))
    n = P.number(rng, 10, 999)
    items = distinct(lambda: P.word(rng, ITEMS), 3)  # in training sometimes other words (Pools.word)
    notes = {
        "dentist": (f"Dentist appointment with Dr. {sur} on {day} at {t}.", (sur, day, t)),
        "passport": (f"Passport renewal: bring two photos to the {city} office before {date}.", (city, date)),
        "book club": (f"Book club meets at {name}'s place on {day} at {t}.", (name, day, t)),
        "groceries": (f"Buy {items[0]}, {items[1]} and {items[2]}.", tuple(items)),
        "flight": (f"Flight to {city} leaves on {date} at {t}, gate {n % 60 + 1}.", (city, date, t)),
        "rent": (f"Rent of {n + 300} euros is due on {date}.", (str(n + 300), date)),
        "meeting": (f"Meeting with {name} {sur} about the budget on {day} at {t}.", (name, day, t)),
        "gym": (f"Gym class with {name} every {day} at {t}.", (name, day, t)),
        "birthday": (f"{name}'s birthday is on {date}.", (name, date)),
        "car": (f"Car service at {sur} Garage in {city} on {date}.", (sur, date)),
        "wifi": (f"The guest wifi password is {sur.lower()}{n}.", (f"{sur.lower()}{n}",)),
        "doctor": (f"Doctor's appointment with Dr. {sur} on {date} at {t}.", (sur, date, t)),
        "train": (f"Train to {city} on {date}, coach {n % 12 + 1}, seat {n}.", (city, date)),
        "parcel": (f"Parcel from {name} arrives on {day}; tracking number {n}{P.number(rng, 10, 999)}.", (day,)),
    }
    return notes[topic]


NOTE_TOPICS = ("dentist", "passport", "book club", "groceries", "flight", "rent", "meeting", "gym", "birthday", "car",
               "wifi", "doctor", "train", "parcel")
_NOTE_ASKS = ("What did I write about the {q}?", "Check my notes for the {q}.", "Do I have any notes on the {q}?",
              "Search my notes for {q}.", "Can you look up my {q} note?", "What do my notes say about the {q}?",
              "Find my note about the {q}.", "Look in my notes: {q}?")
_NOTE_SAYS = ("Your note says: {n}", "According to your notes: {n}", "I found this note: {n}", "Here it is: {n}",
              "Your notes say: {n}")
_NONE_SAYS = ("I couldn't find any notes about {q}.", "There are no notes about {q}.",
              "I searched your notes but found nothing about {q}.")


def notes_exchange(rng: np.random.Generator, P: Pools, ep: Episode, topic: str, ask: str | None = None) -> None:
    ep.messages += [user((ask or pick(rng, _NOTE_ASKS)).format(q=topic)), call("search_notes", query=topic)]
    ep.probe("tool_call", "search_notes", {"query": topic})
    if rng.random() < 0.12:
        ep.messages += [result("search_notes", notes_result(topic, [])),
                        assistant(pick(rng, _NONE_SAYS).format(q=topic))]
        ep.probe("answer", "search_notes", contains=(topic,))
    else:
        text, keys = _note(rng, P, topic)
        ep.messages += [result("search_notes", notes_result(topic, [text])),
                        assistant(pick(rng, _NOTE_SAYS).format(n=text))]
        ep.probe("answer", "search_notes", contains=keys)
    ep.uses_tools = True


def notes(rng: np.random.Generator, P: Pools) -> Episode:
    ep = Episode("notes", [])
    first = pick(rng, NOTE_TOPICS)
    notes_exchange(rng, P, ep, first)
    if rng.random() < 0.25:  # a follow-up about another topic: "And the passport?"
        other = pick(rng, tuple(t for t in NOTE_TOPICS if t != first))
        notes_exchange(rng, P, ep, other, pick(rng, ("And what about the {q}?", "And the {q}?",
                                                     "Now check the {q} too.")))
        ep.kind = "notes_followup"
    return ep
