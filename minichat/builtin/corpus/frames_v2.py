"""Sentence frames for the v2 corpus's user messages, composed from parts, with typing noise and a held-out split.

A user message is opening x shape x core x extra clause, then noise:

    opening   "Quick question: "                       (or none)
    shape     "Could you {c}?"                          (how the request is put: question, imperative, indirect)
    core      "work out {e}"                            (the intent's verb and its slots; intents below)
    extra     " for me"                                 (or none)
    noise     lower case, dropped final punctuation, a typo, "pls"/"u"/"whats", doubled spaces, capitals
    ->        "quick question: could u work out 4417 minus -23.5 for me"

Cores are imperative verb phrases (VP, "work out {e}") or questions (WH, "what is {e}"); each kind has its own shapes
("Can you {c}?" / "Do you know {c}?"); statement intents ("want": "I want to {a}") have their own (`OWN_SHAPES`).
The slots' values are filled in *after* the noise, so a typo never touches a value the assistant must copy.

The held-out split (`HELD_*`, `held`): some whole parts never appear in training (three openings, two VP shapes, two
WH shapes, two extras, about a fifth of each intent's cores), and a sixth of the remaining (opening, shape, core)
combinations are held out as wholes. `ask(rng, split, intent, **slots)` draws a frame of its split: training frames
use no held-out part and no held-out combination; held-out frames use at least one of them. The tests check on the
generated text that no held-out part ever reaches a training conversation.

What it leaves out: languages other than English, multi-sentence requests with several intents.
"""
from __future__ import annotations

import re
import string

import numpy as np

from minichat.builtin.corpus.vocab_v2 import held, pick

OPENINGS = ("", "", "", "", "", "", "Hi! ", "Hello, ", "Hey there. ", "Quick question: ", "Sorry to bother you, ",
            "Um, ", "Okay, ", "Right, ", "Good morning! ", "Excuse me, ", "One more thing: ", "Hi minichat, ", "Hiya. ",
            "Yo, ", "Morning! ", "Listen, ", "Another question. ", "So, ", "Hey, ", "Real quick: ", "Dear assistant, ",
            "Alright so ")
HELD_OPENINGS = ("Real quick: ", "Dear assistant, ", "Alright so ")

VP_SHAPES = ("{c}.", "{c}", "{c}.", "Can you {c}?", "Could you {c}?", "Could you please {c}?", "Please {c}.",
             "Can you please {c}?", "I need you to {c}.", "I'd like you to {c}.", "Would you {c}?", "Will you {c}?",
             "I want you to {c}.", "Go ahead and {c}.", "{c} please.", "Pls {c}", "Be a dear and {c}.",
             "{c}, would you?")
HELD_VP = ("Be a dear and {c}.", "{c}, would you?")
WH_SHAPES = ("{c}?", "{c}", "{c}?", "Do you know {c}?", "Can you tell me {c}?", "Tell me {c}.", "I want to know {c}.",
             "I'm wondering {c}.", "So {c}?", "Could you tell me {c}?", "I need to know {c}.",
             "{c}? Thanks in advance.",
             "I was wondering {c}.", "Any idea {c}?")
HELD_WH = ("I was wondering {c}.", "Any idea {c}?")

EXTRAS = ("", "", "", "", "", "", " please", " for me", ", thanks", " thx", ", cheers", " if you can",
          " when you have a moment", ", I need it for work", " right now", " asap", ", ty", " - thanks a lot",
          " (no rush)", " real fast")
HELD_EXTRAS = (" (no rush)", " real fast")

# intent: (VP cores, WH cores). Slot names: e expression, t topic, s statement, x thing asked about, a action, p place.
INTENTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "calc": (("calculate {e}", "work out {e}", "compute {e}", "figure out {e}", "solve {e}", "evaluate {e}",
              "do {e}", "tell me {e}", "give me the answer to {e}", "find {e}", "crunch {e}", "check {e}",
              "help me with {e}", "get me {e}"),
             ("what is {e}", "what's {e}", "how much is {e}", "what does {e} come to", "what do you get for {e}",
              "what's the result of {e}", "what is the answer to {e}", "what does {e} equal", "how much does {e} make",
              "what's {e} equal to", "whats the value of {e}")),
    "calc_verb": (("{e}", "{e} for me", "quickly {e}", "now {e}"),
                  ("what do I get if I {e}", "what's the result if you {e}", "what happens if you {e}",
                   "what do you get when you {e}")),
    "time_clock": (("tell me the time", "give me the current time", "check the time", "check what time it is"),
                   ("what time is it", "what's the time", "what time is it now", "what's the time right now",
                    "how late is it", "what's the current time", "what hour is it")),
    "time_date": (("tell me today's date", "give me the date", "check the date", "check today's date"),
                  ("what's the date", "what is today's date", "what date is it today", "which date is it",
                   "what's the date today", "what day of the month is it", "what's today")),
    "time_weekday": (("tell me what day it is", "check what day of the week it is", "remind me what day it is"),
                     ("what day is it", "which day of the week is it", "what day is it today", "is it Monday or what",
                      "what weekday is it", "what day are we on")),
    "time_year": (("tell me the year", "remind me which year it is"),
                  ("what year is it", "which year are we in", "what's the current year", "what year is it now")),
    "time_month": (("tell me the month", "remind me what month it is"),
                   ("what month is it", "which month are we in", "what's the current month", "what month is it now")),
    "time_both": (("tell me the date and time", "give me the date and the time", "check the date and time"),
                  ("what's the date and time", "what day and time is it", "what is the date and time now",
                   "what's the time and date")),
    "time_zone": (("tell me the time in {p}", "check the time in {p}", "look up the time in {p}"),
                  ("what time is it in {p}", "what's the time in {p}", "what time is it in {p} right now",
                   "how late is it in {p}")),
    "notes": (("check my notes for the {t}", "look up the {t} in my notes", "search my notes for {t}",
               "find my note about the {t}", "pull up my {t} notes", "look through my notes for the {t}",
               "see what I wrote about the {t}", "dig out my note on the {t}", "open my {t} note",
               "read me my note about the {t}", "go through my notes about the {t}", "fetch the {t} note"),
              ("what did I write about the {t}", "what do my notes say about the {t}", "do I have a note about the {t}",
               "what's in my notes about the {t}", "is there anything in my notes on the {t}",
               "what does my {t} note say", "did I write anything down about the {t}",
               "where's my note about the {t}")),
    "notes_when": (("look up when the {t} is", "check my notes for when the {t} is", "find out when my {t} is"),
                   ("when is the {t}", "when's my {t}", "what day is the {t}", "when did I write the {t} is",
                    "when is my {t} again", "what date is my {t}")),
    "notes_who": (("check my notes for who the {t} is with", "find out who my {t} is with"),
                  ("who is the {t} with", "who's my {t} with", "who did I write the {t} is with",
                   "who am I meeting for the {t}")),
    "notes_where": (("check my notes for where the {t} is", "find out where the {t} is"),
                    ("where is the {t}", "where's my {t}", "where did I write the {t} is",
                     "where do I go for the {t}")),
    "notes_number": (("look up the number for the {t}", "find the number in my {t} note"),
                     ("what's the number for the {t}", "which number did I note for the {t}",
                      "what number is in my {t} note", "what's the {t} number")),
    "remember": (("remember that {s}", "save that {s}", "note that {s}", "keep in mind that {s}",
                  "store this: {s}", "don't forget that {s}", "memorise that {s}", "add to your memory that {s}",
                  "write down that {s}", "remember this: {s}", "save this to memory: {s}", "log that {s}",
                  "make sure you remember that {s}", "commit to memory that {s}", "remember {s}",
                  "keep this in mind: {s}", "save this: {s}"),
                 ("can you remember that {s}", "will you remember that {s}", "could you save that {s}")),
    "recall": (("remind me of {x}", "tell me {x}", "remind me what {x} is", "look up {x} in your memory",
                "say what {x} is", "recall {x}", "check {x} in your memory"),
               ("what is {x}", "what's {x}", "do you remember {x}", "do you know {x}", "what was {x} again",
                "can you recall {x}", "what did I say {x} was", "what's {x} again", "have I told you {x}")),
    "recall_when": (("remind me when {x} is",), ("when is {x}", "what date is {x}")),
    "forget": (("forget {x}", "delete {x} from your memory", "remove {x} from memory", "erase {x}",
                "stop remembering {x}", "wipe {x} from your memory", "drop {x} from what you remember"),
               ("can you forget {x}", "could you delete {x}", "will you forget {x}")),
    "howto": (("tell me how to {a}", "explain how to {a}", "give me step-by-step instructions to {a}",
               "help me {a}", "teach me to {a}", "show me how to {a}", "write a guide on how to {a}",
               "describe how to {a}", "walk me through how to {a}", "give me tips to {a}"),
              ("how do I {a}", "how can I {a}", "what's the best way to {a}", "how would someone {a}",
               "what's the easiest way to {a}", "how should I {a}", "is there a way to {a}", "how to {a}",
               "what do I need to {a}")),
    "want": (("I want to {a}", "I need to {a}", "I'm going to {a}", "I'd like to {a}", "I have to {a}",
              "I'm planning to {a}", "I've decided to {a}"), ()),
    "task": (("{a}", "{a} for me", "go and {a}", "try to {a}"),
             ("can you {a}", "are you able to {a}", "is it possible for you to {a}", "would you be able to {a}")),
    "question": (("tell me {x}", "explain {x}", "give me {x}"),
                 ("{x}", "do you know {x}")),
    "copy": (("repeat exactly: {s}", "say this back to me: {s}", "copy this: {s}", "echo {s}", "type back {s}",
              "repeat after me: {s}", "write this exactly: {s}", "read this back: {s}",
              "repeat this word for word: {s}",
              "say {s}", "print {s}"),
             ("can you repeat {s}", "could you say back {s}")),
}


# intents whose cores are whole statements take these shapes instead of VP_SHAPES / WH_SHAPES
OWN_SHAPES = {"want": ("{c}.", "{c}", "{c}. How?", "{c}. Can you help?", "{c}, any tips?", "{c}. What should I do?",
                       "{c}. Tell me how.", "{c}. Where do I start?")}


def held_core(intent: str, core: str) -> bool:
    vp, wh = INTENTS[intent]
    if len(vp) + len(wh) < 5 or intent in OWN_SHAPES:  # these keep all their cores in training ("I want to" is
        return False  # also a shape's words); their combinations still split
    return held(f"core:{intent}:{core}", 0.2)


def frame_held(intent: str, opening: str, shape: str, core: str, extra: str) -> bool:
    """Whether a whole frame belongs to the held-out split."""
    return (opening in HELD_OPENINGS or shape in HELD_VP + HELD_WH or extra in HELD_EXTRAS
            or held_core(intent, core) or held(f"frame:{intent}|{opening}|{shape}|{core}", 1 / 6))


def draw_frame(rng: np.random.Generator, split: str, intent: str, kind: str | None = None) -> tuple[str, str, str, str]:
    """(opening, shape, core, extra) of `split` for `intent`; kind "vp" or "wh" restricts the core's kind."""
    vp, wh = INTENTS[intent]
    for _ in range(200):
        k = kind or ("vp" if rng.random() < len(vp) / (len(vp) + len(wh)) else "wh")
        core = pick(rng, vp if k == "vp" else wh)
        shape = pick(rng, OWN_SHAPES.get(intent) or (VP_SHAPES if k == "vp" else WH_SHAPES))
        opening, extra = pick(rng, OPENINGS), pick(rng, EXTRAS)
        if frame_held(intent, opening, shape, core, extra) == (split == "heldout"):
            return opening, shape, core, extra
    raise ValueError(f"no {split} frame for intent {intent!r}")


_SWAPS = (("you", "u"), ("please", "pls"), ("what's", "whats"), ("I'm", "im"), ("don't", "dont"), ("are", "r"),
          ("thanks", "thx"))


def _typo(rng: np.random.Generator, text: str) -> str:
    """One keyboard slip in a word of four letters or more: two letters swapped, one dropped, or one doubled."""
    words = text.split(" ")
    cands = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cands:
        return text
    i = pick(rng, cands)
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    r = rng.random()
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if r < 0.4 else (w[:j] + w[j + 1:] if r < 0.7 else
                                                                       w[:j] + w[j] + w[j:])
    return " ".join(words)


def noisy(rng: np.random.Generator, literal: str, first: bool, last: bool, style: dict) -> str:
    """Typing noise on one literal piece of a frame (never on slot values)."""
    t = literal
    if style["lower"]:
        t = t.lower()
    if style["slang"]:
        for a, b in _SWAPS:
            t = re.sub(r"\b" + re.escape(a) + r"\b", b, t)
    if style["typo"] and rng.random() < 0.5:
        t = _typo(rng, t)
    if last and style["nopunct"]:
        t = t.rstrip(".?!")
    if style["caps"]:
        t = t.upper()
    if style["spaces"] and " " in t:
        t = t.replace(" ", "  ", 1)
    return t


def render(rng: np.random.Generator, opening: str, shape: str, core: str, extra: str, slots: dict[str, str],
           noise: bool = True) -> str:
    """The user message of a frame, noise on its literal text and then the slot values."""
    if opening.endswith((", ", "so ")) and not shape.startswith(("I ", "I'")):  # "Okay, could you ..."
        shape = shape[:1].lower() + shape[1:]
    template = opening + shape.replace("{c}", core + extra)
    style = {"lower": noise and rng.random() < 0.3, "slang": noise and rng.random() < 0.12,
             "typo": noise and rng.random() < 0.15, "nopunct": noise and rng.random() < 0.25,
             "caps": noise and rng.random() < 0.02, "spaces": noise and rng.random() < 0.04}
    pieces = list(string.Formatter().parse(template))
    out = []
    for n, (lit, field, _, _) in enumerate(pieces):
        lit = lit.replace("{", "{{").replace("}", "}}")
        out.append(noisy(rng, lit, n == 0, n == len(pieces) - 1, style) if lit else "")
        if field is not None:
            out.append("{" + field + "}")
    text = "".join(out)
    if not style["lower"] and pieces and pieces[0][0] and text[:1].islower():  # capitalise literal text only
        text = text[0].upper() + text[1:]
    return text.format(**slots).strip()


def ask(rng: np.random.Generator, split: str, intent: str, kind: str | None = None, noise: bool = True,
        **slots: str) -> str:
    """A user message for `intent` in a frame of `split`, with `slots` filled in (see the module docstring)."""
    return render(rng, *draw_frame(rng, split, intent, kind), slots, noise)
