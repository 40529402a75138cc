"""Memory episodes of the v2 corpus: `remember` calls, answers from memory notes, "forget" requests, and details told
earlier in the same conversation.

A fact is relation x attribute x value (vocab_v2), or (a quarter) a verb fact ("I live in Kigali", `VERB_FACTS`, two
kinds held out), in three faces generated from one record:

    the user says      "my sister's shoe size is 38"          (inside a frame: "Could you remember that ...?")
    the stored fact    "The user's sister's shoe size is 38."  (the remember call's argument; later a memory snippet)
    the assistant says "your sister's shoe size is 38"

Memory snippets reach the model as the chat session puts them (minichat/chat/context.py): a *memory note*, a system
message named "memory" ("# What you remember about the user\\n- ...") just before the user message it was retrieved
for, and it stays in the history with its turn. Retrieval returns up to three snippets, the asked one among
unrelated ones, or only unrelated ones (then the honest answer is "I don't know"). "What do you remember about me?"
gets the whole list, as StoreMemory answers it.

Forgetting: the built-in tools cannot delete a memory (minichat.memory's `forget` is the terminal's `/forget TEXT`
and `minichat memory forget --matching TEXT`), so the assistant says how to do it, naming what to forget. The
remember tool's "Not saved: this is a temporary chat, memory is off." result is answered as such.

What it leaves out: updating a fact in place, facts about third parties beyond the relations listed.
"""
from __future__ import annotations

import numpy as np

from minichat.builtin.corpus.frames_v2 import HELD_OPENINGS, OPENINGS, ask, render
from minichat.builtin.corpus.synthetic_tools import call, result
from minichat.builtin.corpus.tools_v2 import Ep
from minichat.builtin.corpus.vocab_v2 import ATTRIBUTES, Vocab, held, pick
from minichat.chat.context import memory_note
from minichat.chat.template import assistant, user
from minichat.tools.builtin import remember_result

TEMPORARY = "Not saved: this is a temporary chat, memory is off."


# facts said with a verb rather than "my X is Y": (statement, stored fact, second person, questions, value kind)
VERB_FACTS = (
    ("I live in {v}", "The user lives in {v}.", "you live in {v}", ("where do I live", "which city do I live in",
                                                                     "where's my home"), "place"),
    ("I work as {v}", "The user works as {v}.", "you work as {v}", ("what's my job", "what do I do for a living",
                                                                     "what do I work as"), "job"),
    ("I'm allergic to {v}", "The user is allergic to {v}.", "you're allergic to {v}",
     ("what am I allergic to", "do I have any allergies", "what's my allergy"), "phrase"),
    ("I was born in {v}", "The user was born in {v}.", "you were born in {v}", ("where was I born",
                                                                                 "what's my birthplace"), "place"),
    ("I play the {v}", "The user plays the {v}.", "you play the {v}", ("which instrument do I play",
                                                                        "what do I play"), "word"),
    ("I drive a {v}", "The user drives a {v}.", "you drive a {v}", ("what car do I drive", "what do I drive"),
     "title"),
    ("I support {v}", "The user supports {v}.", "you support {v}", ("which team do I support", "what's my team"),
     "title"),
    ("I'm {v} years old", "The user is {v} years old.", "you're {v} years old", ("how old am I", "what's my age"),
     "small"),
    ("I go to {v} on Fridays", "The user goes to {v} on Fridays.", "you go to {v} on Fridays",
     ("where do I go on Fridays", "what do I do on Fridays"), "title"),
    ("I speak {v}", "The user speaks {v}.", "you speak {v}", ("which language do I speak", "what do I speak"),
     "word"),
)
VERB_SHARE = 0.25  # share of facts said with a verb


def verb_facts(split: str) -> tuple:
    """The verb facts of a split: the held-out split has its own kinds ("I support ...", by hash)."""
    return tuple(v for v in VERB_FACTS if held("verb:" + v[0], 0.2) == (split == "heldout"))


class Fact:
    """One fact about the user: what it is about (`thing`: "my sister's shoe size"), its value, and its faces:
    `said` (the user's words), `fact` (stored), `clause` (second person), `asks` (questions, for verb facts)."""

    def __init__(self, rng: np.random.Generator, V: Vocab, verbs: bool = True):
        self.asks: tuple[str, ...] = ()
        pool = verb_facts(V.split)
        if verbs and pool and rng.random() < VERB_SHARE:
            said, stored, you, self.asks, kind = pick(rng, pool)
            self.value = V.value(rng, kind)
            self.thing, self.attribute = said.split(" {v}")[0], ""
            self.said, self.fact, self.clause = (t.format(v=self.value) for t in (said, stored, you))
            return
        self.relation, self.attribute = V.fact_kind(rng)
        self.value = V.value(rng, ATTRIBUTES[self.attribute])
        self.thing = f"{self.relation} {self.attribute}"  # my sister's shoe size
        self.your = "your" + self.thing[2:]  # your sister's shoe size
        owner = "The user's" if self.relation == "my" else "The user's " + self.relation[3:]
        self.fact = f"{owner} {self.attribute} is {self.value}."
        self.said = f"{self.thing} is {self.value}"
        self.clause = f"{self.your} is {self.value}"

    def question(self, rng: np.random.Generator, split: str) -> str:
        if self.asks:
            openings = OPENINGS if split == "heldout" else tuple(o for o in OPENINGS if o not in HELD_OPENINGS)
            return render(rng, pick(rng, openings), pick(rng, ("{c}?", "{c}", "Do you know {c}?")),
                          pick(rng, self.asks), "", {})
        if ATTRIBUTES[self.attribute] == "day" and rng.random() < 0.5:  # "when is my sister's birthday?"
            return ask(rng, split, "recall_when", x=self.thing)
        return ask(rng, split, "recall", x=self.thing)

    def answer(self, rng: np.random.Generator) -> str:
        c = self.clause[0].upper() + self.clause[1:]
        return pick(rng, (f"{c}.", f"You told me {self.clause}.", f"I have it saved: {self.clause}.")
                    + (() if self.asks else (f"It's {self.value}.",)))


def facts(rng: np.random.Generator, V: Vocab, k: int) -> list[Fact]:
    """k facts about different things."""
    out: list[Fact] = []
    while len(out) < k:
        f = Fact(rng, V)
        if all(f.thing != g.thing for g in out):
            out.append(f)
    return out


_SAVED = ("Got it, I'll remember that {c}.", "Saved! I'll remember that {c}.", "Okay, I've noted that {c}.",
          "Done. I'll remember: {c}.", "I've saved that {c}.")
_UNKNOWN = ("I don't know that: you haven't told me yet. If you tell me, I can remember it.",
            "I don't have that in my memory. Tell me and I'll remember it.",
            "Sorry, I don't know. It isn't in what I remember about you.")


def remember(rng: np.random.Generator, V: Vocab) -> Ep:
    """The user asks to remember a fact: call `remember` with the stored fact, then confirm (or explain a temporary
    chat); sometimes asked back later in the same conversation."""
    (f,) = facts(rng, V, 1)
    if rng.random() < 0.04:  # the remember tool is not listed: say so, never claim it was saved
        ep = Ep("remember_unavailable", [user(ask(rng, V.split, "remember", s=f.said)), assistant(
            "I can't save that: the remember tool isn't enabled in this chat, so I'll only know it until this "
            "conversation ends.")], absent={"remember"})
        ep.probe("answer", contains=("remember",))
        return ep
    ep = Ep("remember", [], uses_tools=True)
    ep.messages += [user(ask(rng, V.split, "remember", s=f.said)), call("remember", fact=f.fact)]
    ep.probe("tool_call", "remember", {"fact": f.fact}, contains=(f.value,))
    if rng.random() < 0.06:
        ep.messages += [result("remember", TEMPORARY), assistant(
            "I couldn't save that: this is a temporary chat, so memory is off. Start a normal chat and tell me again.")]
        ep.probe("answer", "remember", contains=("temporary",))
        return ep
    ep.messages += [result("remember", remember_result(f.fact)),
                    assistant(pick(rng, _SAVED).format(c=f.clause))]
    ep.probe("answer", "remember", contains=(f.value,))
    if rng.random() < 0.25:  # asked back later in the same conversation: the answer is in the history
        ep.messages += [user(f.question(rng, V.split)), assistant(f.answer(rng))]
        ep.probe("answer", contains=(f.value,))
        ep.kind = "remember_then_ask"
    return ep


def recall(rng: np.random.Generator, V: Vocab) -> Ep:
    """A question about a fact, with the memory note retrieval would put before it."""
    fs = facts(rng, V, int(rng.integers(2, 5)))
    asked, others = fs[0], fs[1:]
    ep = Ep("memory", [])
    if rng.random() < 0.8:
        shown = [asked] + others[: int(rng.integers(0, len(others) + 1))]
        order = rng.permutation(len(shown))
        snippets = [shown[i].fact for i in order]
        ep.messages += [memory_note(snippets), user(asked.question(rng, V.split)), assistant(asked.answer(rng))]
        ep.probe("answer", contains=(asked.value,))
    else:  # not remembered: a note with other facts, or none at all
        if rng.random() < 0.6:
            ep.messages.append(memory_note([g.fact for g in others]))
        ep.messages += [user(asked.question(rng, V.split)), assistant(pick(rng, _UNKNOWN))]
        ep.probe("answer", contains=("don't",))
        ep.kind = "memory_unknown"
    return ep


_LIST_ASKS = ("What do you remember about me?", "What do you know about me?", "What have you saved about me?",
              "what's in your memory about me", "Tell me everything you remember about me.",
              "What do you have stored about me?")


def everything(rng: np.random.Generator, V: Vocab) -> Ep:
    """"What do you remember about me?": the note lists every fact; the answer lists them in the second person."""
    ep = Ep("memory_list", [])
    if rng.random() < 0.15:
        ep.messages += [user(pick(rng, _LIST_ASKS)), assistant(
            "I don't have anything saved about you yet. Ask me to remember something and I will.")]
        ep.probe("answer", contains=("don't",))
        return ep
    fs = facts(rng, V, int(rng.integers(1, 4)))
    items = [f.clause for f in fs]
    ep.messages += [memory_note([f.fact for f in fs]), user(pick(rng, _LIST_ASKS)),
                    assistant("Here's what I remember: " + "; ".join(items) + ".")]
    ep.probe("answer", contains=tuple(f.value for f in fs))
    return ep


_FORGET = ("I can't delete memories myself. To remove {y}, type /forget {w} in the chat, or run: minichat memory "
           "forget --matching \"{w}\"",
           "I have no tool to forget things. You can delete it yourself: /forget {w} in the chat removes every "
           "memory containing \"{w}\".",
           "Deleting memories is up to you: type /forget {w} here (or /forget --all to erase everything), and "
           "{y} will be gone for good.")


def forget(rng: np.random.Generator, V: Vocab) -> Ep:
    """A request to forget something: no tool can, so say how (naming the thing), never claim it is done."""
    f = Fact(rng, V, verbs=False)
    ep = Ep("forget", [])
    if rng.random() < 0.6:
        ep.messages.append(memory_note([f.fact]))
    ep.messages += [user(ask(rng, V.split, "forget", x=f.thing)),
                    assistant(pick(rng, _FORGET).format(y=f.your, w=f.attribute))]
    ep.probe("answer", contains=("/forget", f.attribute))
    return ep


_TELL = ("{s}.", "Just so you know, {s}.", "FYI: {s}.", "By the way, {s}.", "Note that {s}, okay?")
_ACK = ("Okay, noted.", "Got it.", "Thanks, I've got that.", "All right.", "Understood.")


def told_earlier(rng: np.random.Generator, V: Vocab) -> tuple[list, list, str]:
    """A detail told in passing (no tool call: the user did not ask to save it) and the question that recalls it
    later: (the telling exchange, the asking exchange, the value)."""
    (f,) = facts(rng, V, 1)
    s = f.said[0].upper() + f.said[1:]
    tell = [user(pick(rng, _TELL).format(s=s if rng.random() < 0.5 else f.said)), assistant(pick(rng, _ACK))]
    ask_ = [user(f.question(rng, V.split)), assistant(f.answer(rng))]
    return tell, ask_, f.value
