"""Memory conversations for the synthetic corpus: saving facts with the `remember` tool, answering from memory
snippets in the system prompt, and recalling what the user said earlier in the same conversation.

A fact has three faces, generated from one record so they always agree:

    the user says      "Please remember that my favourite colour is teal."      (first person, many phrasings)
    the stored fact    "The user's favourite colour is teal."                   (the remember call's argument, and
                                                                                  later a memory snippet)
    the assistant says "Your favourite colour is teal."                         (second person)

Memory snippets reach the model the way the chat session puts them there: `system_text(instructions, memory, tools)`
lists them under "# What you remember about the user". When the asked-about fact is not there, the assistant says it
does not know instead of guessing (a small model's most useful honesty).

Closed-set values (colours, foods, jobs, months, ...) come from `Pools.word`, so in training some are words of
another kind ("my favourite colour is lentils"): the answer must be copied, not guessed from the kind of fact.

What it leaves out: updating or forgetting stored facts, facts about other people than the user.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minichat.builtin.corpus.synthetic_pools import (ALLERGIES, ANIMALS, COLOURS, FOODS, INSTRUMENTS, JOBS, MONTHS,
                                                     SPORTS, Episode, Pools)
from minichat.builtin.corpus.synthetic_tools import call, pick, remember_result, result
from minichat.chat.template import assistant, user


def _article(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


Slots = Callable[[np.random.Generator, Pools], dict]

# key: (slots, user statements, stored fact, second-person clause, questions). {v} is the value; "k" in the slots is
# the string an answer must contain.
FACTS: dict[str, tuple[Slots, tuple[str, ...], str, str, tuple[str, ...]]] = {
    "name": (lambda r, P: {"v": P.name(r)}, ("my name is {v}", "I'm called {v}", "you should call me {v}"),
             "The user's name is {v}.", "your name is {v}", ("What's my name?", "Do you know my name?", "Who am I?")),
    "city": (lambda r, P: {"v": P.city(r)}, ("I live in {v}", "I moved to {v}", "my home town is {v}"),
             "The user lives in {v}.", "you live in {v}", ("Where do I live?", "Which city do I live in?",
                                                          "Do you know where I live?")),
    "colour": (lambda r, P: {"v": P.word(r, COLOURS)}, ("my favourite colour is {v}", "I like {v} best of all colours"),
               "The user's favourite colour is {v}.", "your favourite colour is {v}",
               ("What's my favourite colour?", "Which colour do I like best?")),
    "food": (lambda r, P: {"v": P.word(r, FOODS)}, ("my favourite food is {v}", "I love {v} more than any other dish"),
             "The user's favourite food is {v}.", "your favourite food is {v}",
             ("What's my favourite food?", "What do I like to eat most?")),
    "animal": (lambda r, P: {"v": P.word(r, ANIMALS)}, ("my favourite animal is the {v}", "I love the {v} most"),
               "The user's favourite animal is the {v}.", "your favourite animal is the {v}",
               ("What's my favourite animal?", "Which animal do I like best?")),
    "sport": (lambda r, P: {"v": P.word(r, SPORTS)}, ("my hobby is {v}", "I spend my weekends on {v}"),
              "The user's hobby is {v}.", "your hobby is {v}", ("What's my hobby?", "What do I do at weekends?")),
    "job": (lambda r, P: {"v": _article(P.word(r, JOBS))}, ("I work as {v}", "I'm {v} by profession"),
            "The user works as {v}.", "you work as {v}", ("What's my job?", "What do I do for a living?")),
    "allergy": (lambda r, P: {"v": P.word(r, ALLERGIES)}, ("I'm allergic to {v}", "I have an allergy to {v}"),
                "The user is allergic to {v}.", "you're allergic to {v}",
                ("What am I allergic to?", "Do I have any allergies?")),
    "pet": (lambda r, P: {"v": P.pet(r), "a": pick(r, ("dog", "cat", "rabbit", "parrot", "tortoise"))},
            ("my {a} is called {v}", "I have a {a} named {v}"), "The user's {a} is called {v}.",
            "your {a} is called {v}", ("What's my {a} called?", "What's the name of my {a}?")),
    "sibling": (lambda r, P: {"v": P.name(r), "a": pick(r, ("sister", "brother", "cousin", "best friend"))},
                ("my {a}'s name is {v}", "my {a} is called {v}"), "The user's {a} is called {v}.",
                "your {a} is called {v}", ("What's my {a}'s name?", "Do you remember my {a}'s name?")),
    "birthday": (lambda r, P: {"v": f"{int(r.integers(1, 29))} {P.word(r, MONTHS)}"},
                 ("my birthday is on {v}", "I was born on {v}"), "The user's birthday is on {v}.",
                 "your birthday is on {v}", ("When is my birthday?", "Do you know when my birthday is?")),
    "instrument": (lambda r, P: {"v": P.word(r, INSTRUMENTS)}, ("I play the {v}", "I'm learning the {v}"),
                   "The user plays the {v}.", "you play the {v}", ("Which instrument do I play?",
                                                                   "What instrument am I learning?")),
}


class Fact:
    """One fact about the user, in its three faces."""

    def __init__(self, key: str, rng: np.random.Generator, P: Pools):
        slots_fn, self._says, fact, you, asks = FACTS[key]
        self.key, self.slots = key, slots_fn(rng, P)
        self.value = self.slots["v"]
        self.check = self.value.split()[-1] if key == "job" else self.value  # "an architect" -> "architect"
        self.fact = fact.format(**self.slots)
        self.you = you.format(**self.slots)
        self.asks = tuple(a.format(**self.slots) for a in asks)
        self.rng = rng

    def said(self) -> str:
        return pick(self.rng, self._says).format(**self.slots)

    def answer(self) -> str:
        return self.you[0].upper() + self.you[1:] + "."


def facts(rng: np.random.Generator, P: Pools, k: int) -> list[Fact]:
    """k facts with different keys."""
    keys = rng.choice(sorted(FACTS), size=k, replace=False)
    return [Fact(str(key), rng, P) for key in keys]


_REMEMBER = ("Please remember that {s}.", "Remember that {s}.", "Can you remember that {s}?", "Save this: {s}.",
             "Note for later: {s}.", "Keep in mind that {s}.", "Please save to memory that {s}.",
             "Don't forget: {s}.", "For the future, remember {s}.")
_SAVED = ("Got it, I'll remember that {y}.", "Saved! I'll remember that {y}.", "Okay, I've noted that {y}.",
          "Done. From now on I'll remember that {y}.")
_UNKNOWN = ("I don't know that yet: you haven't told me. If you tell me, I can remember it.",
            "I don't have that in my memory. Tell me and I'll remember it.",
            "Sorry, I don't know. It isn't in what I remember about you.")


def remember(rng: np.random.Generator, P: Pools) -> Episode:
    """The user asks to remember a fact: call `remember`, then confirm in the second person."""
    (f,) = facts(rng, P, 1)
    ep = Episode("remember", [], uses_tools=True)
    ep.messages += [user(pick(rng, _REMEMBER).format(s=f.said())), call("remember", fact=f.fact)]
    ep.probe("tool_call", "remember", {"fact": f.fact}, contains=(f.check,))
    ep.messages += [result("remember", remember_result(f.fact)), assistant(pick(rng, _SAVED).format(y=f.you))]
    ep.probe("answer", "remember", contains=(f.check,))
    if rng.random() < 0.3:  # asked again later in the same conversation: the answer is in the history
        ep.messages += [user(pick(rng, f.asks)), assistant(f.answer())]
        ep.probe("answer", contains=(f.check,))
        ep.kind = "remember_then_ask"
    return ep


def from_memory(rng: np.random.Generator, P: Pools) -> Episode:
    """Memory snippets in the system prompt, and a question about one of them (or about something not there)."""
    fs = facts(rng, P, int(rng.integers(2, 5)))
    known, asked = fs[:-1], fs[-1]
    shown = known[: int(rng.integers(1, len(known) + 1))]
    ep = Episode("memory", [], memory=[f.fact for f in shown])
    if rng.random() < 0.8:
        f = pick(rng, shown)
        ep.messages += [user(pick(rng, f.asks)), assistant(f.answer())]
        ep.probe("answer", contains=(f.check,))
    else:
        ep.messages += [user(pick(rng, asked.asks)), assistant(pick(rng, _UNKNOWN))]
    return ep


_THINGS = (
    ("parking spot", lambda r, P: f"level {int(r.integers(1, 6))}, spot {P.number(r, 10, 299)}"),
    ("order number", lambda r, P: f"{P.number(r, 100, 9999)}-{P.number(r, 10, 999)}"),
    ("locker code", lambda r, P: str(P.number(r, 1000, 9999))),
    ("hotel room", lambda r, P: str(P.number(r, 100, 999))),
    ("train time", lambda r, P: P.clock(r)),
    ("meeting point",
     lambda r, P: f"the {pick(r, ('north', 'south', 'east', 'west'))} entrance of {P.city(r)} station"),
    ("friend's phone number",
     lambda r, P: f"{P.number(r, 100, 999)} {P.number(r, 100, 999)} {P.number(r, 1000, 9999)}"),
)
_TELL = ("My {t} is {v}.", "Just so you know, my {t} is {v}.", "FYI: my {t} is {v}.", "My {t}? It's {v}.")
_ACK = ("Okay, noted.", "Got it.", "Thanks, I've got that.", "All right.")
_ASK_AGAIN = ("What was my {t}?", "What's my {t} again?", "Remind me, what is my {t}?", "Did I tell you my {t}?")
_REPLY = ("Your {t} is {v}.", "You said your {t} is {v}.", "It's {v}.")


def told_earlier(rng: np.random.Generator, P: Pools) -> tuple[list, list, str]:
    """A detail told in passing (no tool call: the user did not ask to save it), and the question that recalls it
    later. Returns (the telling exchange, the asking exchange, the detail); the caller puts turns between."""
    thing, value_fn = pick(rng, _THINGS)
    value = value_fn(rng, P)
    tell = [user(pick(rng, _TELL).format(t=thing, v=value)), assistant(pick(rng, _ACK))]
    ask = [user(pick(rng, _ASK_AGAIN).format(t=thing)), assistant(pick(rng, _REPLY).format(t=thing, v=value))]
    return tell, ask, value
