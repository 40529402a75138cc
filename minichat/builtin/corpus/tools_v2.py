"""Tool-use episodes of the v2 corpus: the calculator, the clock and the notes, with errors and missing tools.

Every tool message is what the real tool (minichat/tools/builtin.py) returns for the call's arguments, and every
answer copies the part of it that was asked for (tests/test_corpus_v2.py runs the real tools to check):

    calculator   operands as users type them (signs, decimals, 0.x, 1-8 digits, thousands separators: the tool
                 drops them), about 50 operator phrasings including
                 reversed orders ("subtract 7 from 19" -> "19 - 7", "divide 4 into 96" -> "96 / 4"), percent-of,
                 squared, cubed, square roots, averages, halves and doubles, three-term sums, word problems,
                 follow-ups on the last result
    get_time     time, date, weekday, month, year, both, and the time in a city (the `timezone` argument)
    search_notes the query is the topic's words; the result is ranked as the real tool ranks a folder of one-note
                 files (note0.txt, note1.txt, ...); the answer copies the whole note or the asked detail (when, who,
                 where, which number), says when nothing was found, or when the note does not hold the detail
    errors       division by zero, no notes folder; and a tool that is not listed this turn gets an honest answer
                 without a call

What it leaves out: parallel calls, calls that need two rounds of results, tools beyond the four built-in ones.
"""
from __future__ import annotations

import datetime as dt
import zoneinfo
from dataclasses import dataclass, field

import numpy as np

from minichat.bm25 import BM25, tokenize
from minichat.builtin.corpus.frames_v2 import ask
from minichat.builtin.corpus.synthetic_pools import Episode
from minichat.builtin.corpus.synthetic_tools import call, result
from minichat.builtin.corpus.vocab_v2 import Vocab, invented_word, pick
from minichat.chat.template import assistant, user
from minichat.tools.builtin import MONTHS, WEEKDAYS, calculator_result, long_date, notes_result, time_result
from minichat.tools.notes import NotesIndex
from minichat.tools.toolbox import error_text


@dataclass
class Ep(Episode):
    """An Episode that may also name tools that must NOT be listed (the "tool is not available" episodes)."""

    absent: set[str] = field(default_factory=set)


# -- the calculator ----------------------------------------------------------------------------------------------------
# (user phrase, tool expression), {a} {b} operands as typed. Verb phrases go to the "calc_verb" intent.
_NP = {
    "+": (("{a} plus {b}", "{a} + {b}"), ("{a} + {b}", "{a} + {b}"), ("{a}+{b}", "{a} + {b}"),
          ("the sum of {a} and {b}", "{a} + {b}"), ("{a} added to {b}", "{b} + {a}"),
          ("{a} and {b} added together", "{a} + {b}"), ("{a} increased by {b}", "{a} + {b}")),
    "-": (("{a} minus {b}", "{a} - {b}"), ("{a} - {b}", "{a} - {b}"), ("{a} take away {b}", "{a} - {b}"),
          ("{a} less {b}", "{a} - {b}"), ("the difference between {a} and {b}", "{a} - {b}"),
          ("{b} subtracted from {a}", "{a} - {b}"), ("{b} less than {a}", "{a} - {b}"),
          ("{a} decreased by {b}", "{a} - {b}")),
    "*": (("{a} times {b}", "{a} * {b}"), ("{a} * {b}", "{a} * {b}"), ("{a} x {b}", "{a} * {b}"),
          ("{a} × {b}", "{a} * {b}"), ("{a} multiplied by {b}", "{a} * {b}"),
          ("the product of {a} and {b}", "{a} * {b}"), ("{a}*{b}", "{a} * {b}")),
    "/": (("{a} divided by {b}", "{a} / {b}"), ("{a} / {b}", "{a} / {b}"), ("{a} ÷ {b}", "{a} / {b}"),
          ("{a} over {b}", "{a} / {b}"), ("the quotient of {a} and {b}", "{a} / {b}"), ("{a}/{b}", "{a} / {b}")),
}
_VERB = {
    "+": (("add {a} and {b}", "{a} + {b}"), ("add {a} to {b}", "{b} + {a}"), ("sum {a} and {b}", "{a} + {b}")),
    "-": (("subtract {b} from {a}", "{a} - {b}"), ("take {b} away from {a}", "{a} - {b}"),
          ("deduct {b} from {a}", "{a} - {b}"), ("take away {b} from {a}", "{a} - {b}")),
    "*": (("multiply {a} by {b}", "{a} * {b}"), ("multiply {a} and {b}", "{a} * {b}")),
    "/": (("divide {a} by {b}", "{a} / {b}"), ("divide {b} into {a}", "{a} / {b}"),
          ("split {a} into {b} equal parts", "{a} / {b}")),
}
_PERCENT = ("{p}% of {x}", "{p} percent of {x}", "{p} per cent of {x}", "{p}% of {x}")
_POWER = (("{a} squared", "{a} ** 2"), ("the square of {a}", "{a} ** 2"), ("{a} cubed", "{a} ** 3"),
          ("{a} to the power of {k}", "{a} ** {k}"), ("{a}^{k}", "{a} ** {k}"),
          ("the square root of {a}", "{a} ** 0.5"))
_SAY = ("{x} = {r}.", "The answer is {r}.", "That's {r}.", "It comes to {r}.", "The result is {r}.", "{r}.",
        "{x} is {r}.", "That makes {r}.", "You get {r}.")


def _expression(rng: np.random.Generator, V: Vocab) -> tuple[str, str, str]:
    """(what the user writes, the tool's expression, the intent: "calc" or "calc_verb")."""
    r = rng.random()
    a, b = V.operand(rng), V.operand(rng)
    if r < 0.5:
        said, expr = pick(rng, _NP[pick(rng, "+-*/")])
        return said.format(a=a, b=b), expr.format(a=a, b=b), "calc"
    if r < 0.7:
        said, expr = pick(rng, _VERB[pick(rng, "+-*/")])
        return said.format(a=a, b=b), expr.format(a=a, b=b), "calc_verb"
    if r < 0.8:
        p = str(V.integer(rng, 1, 99)) if rng.random() < 0.8 else f"{V.integer(rng, 1, 99)}.5"
        x = V.operand(rng).lstrip("-")
        return pick(rng, _PERCENT).format(p=p, x=x), f"{x} * {p} / 100", "calc"
    if r < 0.88:
        said, expr = pick(rng, _POWER)
        k = str(int(rng.integers(2, 5)))
        base = V.digits(rng, int(rng.integers(1, 3))) if "{k}" in expr or "3" in expr else V.digits(
            rng, int(rng.integers(1, 5)))
        return said.format(a=base, k=k), expr.format(a=base, k=k), "calc"
    if r < 0.95:  # averages and simple fractions/multiples, in words
        c = V.operand(rng)
        forms = ((f"the average of {a}, {b} and {c}", f"({a} + {b} + {c}) / 3"),
                 (f"the mean of {a} and {b}", f"({a} + {b}) / 2"), (f"the average of {a} and {b}", f"({a} + {b}) / 2"),
                 (f"half of {a}", f"{a} / 2"), (f"a third of {a}", f"{a} / 3"), (f"a quarter of {a}", f"{a} / 4"),
                 (f"double {a}", f"{a} * 2"), (f"twice {a}", f"{a} * 2"), (f"triple {a}", f"{a} * 3"))
        said, expr = pick(rng, forms)
        return said, expr, "calc"
    c = V.operand(rng)
    o1, o2 = pick(rng, "+-*"), pick(rng, "+-")
    text = f"({a} {o1} {b}) {o2} {c}" if rng.random() < 0.5 else f"{a} {o1} {b} {o2} {c}"
    return text, text, "calc"


_ITEMS = ("apples", "books", "chairs", "tickets", "boxes", "eggs", "pencils", "bottles", "plates", "stamps",
          "marbles", "cupcakes", "bricks", "seeds", "tiles")


def _word_problem(rng: np.random.Generator, V: Vocab) -> tuple[str, str, str]:
    """(question, tool expression, answer template with {r})."""
    n, item = V.name(rng), pick(rng, _ITEMS) if rng.random() < 0.8 else invented_word(rng, 2, 4, False) + "s"
    a, b = str(V.integer(rng, 2, 99999)), str(V.integer(rng, 2, 999))
    p = str(V.integer(rng, 1, 95))
    problems = (
        (f"{n} has {a} {item} and gets {b} more. How many {item} does {n} have now?", f"{a} + {b}",
         f"{n} has {{r}} {item} now."),
        (f"{n} had {a} euros and spent {b}. How much is left?", f"{a} - {b}", f"{n} has {{r}} euros left."),
        (f"A box holds {b} {item}. How many {item} are in {a} boxes?", f"{b} * {a}", f"There are {{r}} {item}."),
        (f"{a} {item} are shared equally among {b} people. How many does each get?", f"{a} / {b}",
         f"Each person gets {{r}} {item}."),
        (f"A ticket costs {b} euros. What do {a} tickets cost?", f"{b} * {a}", "They cost {r} euros."),
        (f"The temperature was {b} degrees and dropped by {a}. What is it now?", f"{b} - {a}",
         "It is now {r} degrees."),
        (f"I drove {a} km on Monday and {b} km on Tuesday. How far did I drive in total?", f"{a} + {b}",
         "You drove {r} km in total."),
        (f"{p}% of the {a} people in {V.place(rng)} voted. How many people voted?", f"{a} * {p} / 100",
         "{r} people voted."),
        (f"A jacket costs {a} euros and is {p}% off. How much do I save?", f"{a} * {p} / 100", "You save {r} euros."),
        (f"I owe {n} {a} euros and paid back {b}. How much do I still owe?", f"{a} - {b}",
         f"You still owe {n} {{r}} euros."),
    )
    return pick(rng, problems)


def calc_exchange(rng: np.random.Generator, V: Vocab, ep: Ep) -> str:
    """One question -> call -> result -> answer, appended to ep (with probes); returns the result text."""
    if rng.random() < 0.2:
        question, expr, say = _word_problem(rng, V)
        shown = expr
    else:
        shown, expr, intent = _expression(rng, V)
        question = ask(rng, V.split, intent, e=shown)
        say = pick(rng, _SAY)
    r = calculator_result(expr)
    ep.messages += [user(question), call("calculator", expression=expr)]
    ep.probe("tool_call", "calculator", {"expression": expr})
    ep.messages += [result("calculator", r), assistant(say.format(x=expr, r=r))]
    ep.probe("answer", "calculator", contains=(r,))
    ep.uses_tools = True
    return r


_FOLLOW = (("now multiply that by {k}", "{r} * {k}"), ("and times {k}?", "{r} * {k}"), ("add {k} to that", "{r} + {k}"),
           ("what if I add {k}?", "{r} + {k}"), ("now subtract {k}", "{r} - {k}"), ("take {k} away from that",
                                                                                    "{r} - {k}"),
           ("divide that by {k}", "{r} / {k}"), ("and that divided by {k}?", "{r} / {k}"),
           ("what's {k}% of that?", "{r} * {k} / 100"), ("now minus {k}", "{r} - {k}"))


def calculator(rng: np.random.Generator, V: Vocab) -> Ep:
    ep = Ep("calculator", [])
    u = rng.random()
    if u < 0.04:  # division by zero: the error comes back as the result
        a = V.operand(rng)
        q = ask(rng, V.split, "calc", e=f"{a} divided by 0")
        try:  # the chat's report of the tool's exception ("float division by zero" for a decimal)
            calculator_result(f"{a} / 0")
        except ZeroDivisionError as e:
            error = error_text(e)
        ep.messages += [user(q), call("calculator", expression=f"{a} / 0"), result("calculator", error),
                        assistant(pick(rng, ("You can't divide by zero, so {a} / 0 has no answer.",
                                             "Division by zero is undefined, so there is no result for {a} / 0."))
                                  .format(a=a))]
        ep.probe("answer", "calculator", contains=("zero",))
        ep.uses_tools = True
        return ep
    if u < 0.09:  # the calculator is not listed in this chat: say so instead of guessing
        shown, _, intent = _expression(rng, V)
        ep.messages += [user(ask(rng, V.split, intent, e=shown)), assistant(pick(rng, (
            "I can't calculate that reliably here: the calculator tool isn't enabled in this chat. Turn it on "
            "and ask me again.", "The calculator isn't available in this chat, so I can't work that out for sure. "
            "Enable the calculator tool and I'll compute it.")))]
        ep.probe("answer", contains=("calculator",))
        ep.absent.add("calculator")
        ep.kind = "calculator_unavailable"
        return ep
    r = calc_exchange(rng, V, ep)
    if rng.random() < 0.3:  # a follow-up on the result: the number comes from the last tool message
        text, expr = pick(rng, _FOLLOW)
        k = V.operand(rng).lstrip("-")
        expr = expr.format(r=r, k=k)
        r2 = calculator_result(expr)
        ep.messages += [user(text.format(k=k)), call("calculator", expression=expr)]
        ep.probe("tool_call", "calculator", {"expression": expr})
        ep.messages += [result("calculator", r2), assistant(pick(rng, _SAY).format(x=expr, r=r2))]
        ep.probe("answer", "calculator", contains=(r2,))
        ep.kind = "calculator_followup"
    elif rng.random() < 0.2:
        calc_exchange(rng, V, ep)
    return ep


# -- the clock ---------------------------------------------------------------------------------------------------------
ZONES = {"Tokyo": "Asia/Tokyo", "New York": "America/New_York", "London": "Europe/London", "Paris": "Europe/Paris",
         "Berlin": "Europe/Berlin", "Sydney": "Australia/Sydney", "Los Angeles": "America/Los_Angeles",
         "Mumbai": "Asia/Kolkata", "São Paulo": "America/Sao_Paulo", "Cairo": "Africa/Cairo",
         "Nairobi": "Africa/Nairobi", "Dubai": "Asia/Dubai", "Singapore": "Asia/Singapore", "Seoul": "Asia/Seoul",
         "Mexico City": "America/Mexico_City", "Toronto": "America/Toronto", "Bangkok": "Asia/Bangkok",
         "Lagos": "Africa/Lagos", "Buenos Aires": "America/Argentina/Buenos_Aires", "Moscow": "Europe/Moscow",
         "UTC": "UTC", "Istanbul": "Europe/Istanbul", "Jakarta": "Asia/Jakarta", "Auckland": "Pacific/Auckland"}
_TIME_SAYS = {
    "time_clock": (("It's {clock}.", "The time is {clock}.", "Right now it's {clock}.", "It is {clock}."), ("clock",)),
    "time_date": (("Today is {long}.", "It's {long}.", "The date is {date}.", "Today is {date}."), ("date",)),
    "time_weekday": (("It's {weekday}.", "Today is {weekday}.", "Today is {weekday}, {date}."), ("weekday",)),
    "time_year": (("It's {year}.", "We're in {year}.", "The year is {year}."), ("year",)),
    "time_month": (("It's {month}.", "We're in {month} {year}.", "The month is {month}."), ("month",)),
    "time_both": (("It's {clock} on {long}.", "Right now it's {long}, {clock}.", "It's {long}, {clock}."),
                  ("clock", "date")),
    "time_zone": (("In {p} it's {clock}.", "It's {clock} in {p}, on {weekday}.", "The time in {p} is {clock}."),
                  ("clock",)),
}


def clock(rng: np.random.Generator, V: Vocab) -> Ep:
    ep = Ep("time", [], uses_tools=True)
    what = pick(rng, tuple(_TIME_SAYS))  # one in seven asks for the time in a city (the timezone argument)
    if rng.random() < 0.05:  # get_time is not listed: say so instead of inventing a time
        ep.messages += [user(ask(rng, V.split, "time_clock")), assistant(pick(rng, (
            "I can't check the time in this chat: the get_time tool isn't enabled. Your device's clock will show it.",
            "I don't have the clock tool here (get_time isn't enabled), so I can't tell you the time.")))]
        ep.probe("answer", contains=("get_time",))
        ep.absent.add("get_time")
        ep.uses_tools, ep.kind = False, "time_unavailable"
        return ep
    d = V.date(rng)
    when = dt.datetime(d.year, d.month, d.day, int(rng.integers(24)), int(rng.integers(60)), tzinfo=dt.timezone.utc)
    slots: dict[str, str] = {}
    if what == "time_zone":
        p = pick(rng, tuple(ZONES))
        slots["p"] = p
        when = when.astimezone(zoneinfo.ZoneInfo(ZONES[p]))
        ep.messages += [user(ask(rng, V.split, what, p=p)), call("get_time", timezone=ZONES[p])]
        ep.probe("tool_call", "get_time", {"timezone": ZONES[p]})
    else:
        ep.messages += [user(ask(rng, V.split, what)), call("get_time")]
        ep.probe("tool_call", "get_time", {})
    day = when.date()
    slots |= {"clock": f"{when:%H:%M}", "long": long_date(day), "date": f"{day.day} {MONTHS[day.month - 1]} {day.year}",
              "weekday": WEEKDAYS[day.weekday()], "year": str(day.year), "month": MONTHS[day.month - 1]}
    says, need = _TIME_SAYS[what]
    ep.messages += [result("get_time", time_result(when)), assistant(pick(rng, says).format(**slots))]
    ep.probe("answer", "get_time", contains=tuple(slots[k] for k in need))
    return ep


# -- the notes ---------------------------------------------------------------------------------------------------------
_NOTE_FORMS = (  # (text, details it holds)
    ("{T} with {who} on {date} at {time}.", ("when", "who")),
    ("{T}: {date} at {time}, at {where}.", ("when", "where")),
    ("{T} booked for {date}; contact {who} on {phone}.", ("when", "who", "number")),
    ("{T} at {where} on {weekday} at {time}, reference {code}.", ("when", "where", "number")),
    ("{T} costs {amount} euros, due on {date}.", ("when", "number")),
    ("{T} - {who} - {where} - {date}.", ("when", "who", "where")),
    ("{T} code is {code}.", ("number",)),
    ("{T}: ask {who} at {where}.", ("who", "where")),
    ("{T} on {weekday} at {time} with {who}, room {room}.", ("when", "who", "number")),
    ("Remember the {t}: {where}, {date}.", ("when", "where")),
)


def make_note(rng: np.random.Generator, V: Vocab, topic: str) -> tuple[str, dict[str, str]]:
    """A note about `topic` and the details it holds: {"when": "3 May 2031 at 14:05", "who": ..., "number": ...}."""
    form, holds = pick(rng, _NOTE_FORMS)
    d = V.date(rng)
    s = {"T": topic[0].upper() + topic[1:], "t": topic, "who": V.full_name(rng) if rng.random() < 0.5 else V.name(rng),
         "date": f"{d.day} {MONTHS[d.month - 1]}" + (f" {d.year}" if rng.random() < 0.5 else ""),
         "time": V.clock(rng), "where": V.place(rng) if rng.random() < 0.6 else V.value(rng, "street"),
         "phone": V.value(rng, "phone"), "code": V.code(rng) if rng.random() < 0.5 else V.digits(rng, 6),
         "amount": V.operand(rng).lstrip("-"), "weekday": pick(rng, WEEKDAYS), "room": V.value(rng, "small")}
    text = form.format(**s)
    numbers = [s[k] for k in ("phone", "code", "amount", "room") if "{" + k + "}" in form]
    number = numbers[0] if "number" in holds else ""
    when = s["date"] if "{date}" in form else s["weekday"]
    details = {"when": (when + (f" at {s['time']}" if "{time}" in form else "")) if "when" in holds else "",
               "who": s["who"] if "who" in holds else "", "where": s["where"] if "where" in holds else "",
               "number": number}
    return text, {k: v for k, v in details.items() if v}


def search(notes: list[str], query: str, k: int = 3) -> str:
    """What search_notes returns for a folder holding note{i}.txt = notes[i] (NotesIndex.search, in memory)."""
    docs = [NotesIndex.document(f"note{i}.txt", t) for i, t in enumerate(notes)]
    terms = tokenize(query)
    if not terms or not docs:
        return notes_result(query, [])
    wanted = set(terms)
    ranked = BM25(docs).top_k(terms, len(docs))
    hits = [i for i, _ in ranked if not wanted.isdisjoint(docs[i])]
    return notes_result(query, [notes[i] for i in hits[:k]])


_DETAIL_INTENT = {"when": "notes_when", "who": "notes_who", "where": "notes_where", "number": "notes_number"}
_DETAIL_SAYS = {"when": ("Your {t} is on {v}.", "It's on {v}.", "According to your notes, {v}."),
                "who": ("It's with {v}.", "Your notes say it's with {v}.", "{v}."),
                "where": ("It's at {v}.", "Your note says {v}.", "At {v}."),
                "number": ("The number is {v}.", "It's {v}.", "Your note says {v}.")}
_WHOLE = ("Your note says: {n}", "Here's your note: {n}", "I found this: {n}", "Your notes say: {n}",
          "According to your notes: {n}")
_NONE = ("I couldn't find any notes about the {t}.", "There's nothing about the {t} in your notes.",
         "I searched your notes but found nothing about the {t}.")


def notes_exchange(rng: np.random.Generator, V: Vocab, ep: Ep, topic: str | None = None) -> None:
    topic = topic or V.topic(rng)
    note, details = make_note(rng, V, topic)
    others = []
    for _ in range(int(rng.integers(0, 4))):  # other notes in the folder; some share a word with the topic
        other = V.topic(rng)
        if other != topic:
            others.append(make_note(rng, V, other)[0])
    found = rng.random() > 0.12
    folder = others + ([note] if found else [])
    order = rng.permutation(len(folder))
    folder = [folder[i] for i in order]
    asked = pick(rng, tuple(details)) if rng.random() < 0.45 else None
    if asked and rng.random() < 0.1:  # asks a detail the note does not hold
        asked = pick(rng, tuple(k for k in _DETAIL_INTENT if k not in details) or (asked,))
    q = ask(rng, V.split, _DETAIL_INTENT[asked] if asked else "notes", t=topic)
    ep.messages += [user(q), call("search_notes", query=topic)]
    ep.probe("tool_call", "search_notes", {"query": topic})
    res = search(folder, topic)
    ep.messages.append(result("search_notes", res))
    if not found:
        reply, keys = pick(rng, _NONE).format(t=topic), (topic,)
    elif asked and asked in details:
        reply, keys = pick(rng, _DETAIL_SAYS[asked]).format(t=topic, v=details[asked]), (details[asked],)
    elif asked:
        reply, keys = f"Your note about the {topic} doesn't say. It says: {note}", (note,)
    else:
        reply, keys = pick(rng, _WHOLE).format(n=note), (note,)
    ep.messages.append(assistant(reply))
    ep.probe("answer", "search_notes", contains=keys)
    ep.uses_tools = True


def notes(rng: np.random.Generator, V: Vocab) -> Ep:
    ep = Ep("notes", [])
    if rng.random() < 0.06:  # no notes folder configured: the tool's error, explained
        topic = V.topic(rng)
        ep.messages += [user(ask(rng, V.split, "notes", t=topic)), call("search_notes", query=topic),
                        result("search_notes", "error: FileNotFoundError: no notes folder is set; start the chat "
                                               "with --notes DIR"),
                        assistant("I can't search your notes: no notes folder is set up. Start the chat with "
                                  "--notes DIR, pointing at the folder with your notes.")]
        ep.probe("answer", "search_notes", contains=("--notes",))
        ep.uses_tools = True
        return ep
    if rng.random() < 0.05:  # the notes tool is not listed
        topic = V.topic(rng)
        ep.messages += [user(ask(rng, V.split, "notes", t=topic)), assistant(
            f"I can't look at your notes in this chat: the search_notes tool isn't enabled. Turn it on and ask me "
            f"about the {topic} again.")]
        ep.probe("answer", contains=(topic,))
        ep.absent.add("search_notes")
        ep.kind = "notes_unavailable"
        return ep
    notes_exchange(rng, V, ep)
    if rng.random() < 0.2:
        notes_exchange(rng, V, ep)
        ep.kind = "notes_followup"
    return ep
