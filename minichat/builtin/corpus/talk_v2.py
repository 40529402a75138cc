"""Talk episodes of the v2 corpus: out-of-scope requests answered honestly, small talk, a small set of simple
knowledge answers (plus "I don't know" for the rest), how an assistant works, and copying drills.

    out of scope   live data ("the weather in Kigali"), actions ("book me a flight"), long tasks ("a 5000-word
                   essay"): a short answer that says what the model cannot do and what it can, composed from the
                   request so it stays on topic; never a random memorised line
    knowledge      KNOWN: a few dozen facts a small model can state; anything else of the same shapes ("the capital
                   of <a country not in KNOWN>", "the population of <a city>") gets "I don't know that reliably"
    copying        "Repeat exactly: ..." with long invented words (4-6 syllables), codes, long numbers and
                   multi-word values; lookups ("Mirela's locker code is 4471 and Tom's is 9902. What is Tom's?")

Copying drills are short, dense in copy targets, and drawn uniformly through the corpus (corpus_v2: the batches are a
uniform shuffle), so the induction circuit is trained from the first step on every seed.

What it leaves out: open-ended chit-chat beyond a turn or two, general knowledge beyond KNOWN.
"""
from __future__ import annotations

import numpy as np

from minichat.builtin.corpus.frames_v2 import ask
from minichat.builtin.corpus.synthetic_talk import KNOWLEDGE, _HELLO, _HELLO_BACK, _SMALL
from minichat.builtin.corpus.tools_v2 import Ep
from minichat.builtin.corpus.vocab_v2 import ATTRIBUTES, Vocab, invented_word, long_word, pick
from minichat.chat.template import assistant, user

CAN_DO = ("I can chat, do arithmetic with the calculator, tell the date and time, search your notes and remember "
          "things about you.")

# live data: (question, what it is, where to look)
LIVE = (("what's the weather in {place}", "the weather in {place}", "a weather app"),
        ("will it rain in {place} tomorrow", "the forecast for {place}", "a weather service"),
        ("what's in the news today", "today's news", "a news site"),
        ("who won the match last night", "last night's results", "a sports site"),
        ("what's the price of bitcoin right now", "the bitcoin price", "an exchange or finance site"),
        ("what's the exchange rate from euros to yen", "exchange rates", "your bank or a currency site"),
        ("how's the traffic to {place}", "the traffic to {place}", "a map app"),
        ("when does the next bus to {place} leave", "bus times to {place}", "the transport company's app"),
        ("are the shops in {place} open now", "opening hours in {place}", "the shops' websites"),
        ("what's the stock price of {title}", "the stock price of {title}", "a finance site"),
        ("is the {title} concert sold out", "ticket sales for {title}", "the ticket seller's site"))
# actions: (request, what it is)
ACTIONS = (("book a flight to {place}", "book flights"), ("send an email to {name}", "send emails"),
           ("order a pizza", "order food"), ("call {name}", "make phone calls"), ("set an alarm for {time}",
                                                                                 "set alarms"),
           ("play some music", "play music"), ("turn on the lights", "control your lights"),
           ("buy tickets for {title}", "buy tickets"), ("text {name} that I'm late", "send messages"),
           ("pay my electricity bill", "make payments"), ("post this on Instagram", "post on social media"),
           ("add a meeting with {name} to my calendar", "change your calendar"),
           ("open the front door", "control devices"), ("transfer 50 euros to {name}", "move money"))
# long tasks: (request, what it is)
LONG = (("write a 5000-word essay about {topic}", "a 5000-word essay"), ("write a whole novel about {name}",
                                                                         "a whole novel"),
        ("translate this entire book into {lang}", "translating a whole book"),
        ("build me a complete online shop", "a complete online shop"),
        ("write a full business plan for my café in {place}", "a full business plan"),
        ("summarise the entire history of {place}", "a whole history"), ("write my thesis on {topic}", "a thesis"))
_TOPICS = ("climate change", "the Roman Empire", "artificial intelligence", "bees", "jazz", "volcanoes", "football")
_LANGS = ("Spanish", "Japanese", "Swahili", "Polish", "Hindi", "Arabic", "Finnish")

KNOWN = (("what's the capital of France", "The capital of France is Paris."),
         ("what's the capital of Japan", "The capital of Japan is Tokyo."),
         ("what's the capital of Kenya", "The capital of Kenya is Nairobi."),
         ("what's the capital of Canada", "The capital of Canada is Ottawa."),
         ("what's the capital of Italy", "The capital of Italy is Rome."),
         ("what's the capital of Egypt", "The capital of Egypt is Cairo."),
         ("how many days are in a week", "There are 7 days in a week."),
         ("how many minutes are in an hour", "There are 60 minutes in an hour."),
         ("how many hours are in a day", "A day has 24 hours."),
         ("how many months are in a year", "A year has 12 months."),
         ("what colour is the sky", "On a clear day the sky is blue."),
         ("what is water made of", "Water is made of hydrogen and oxygen: H2O."),
         ("at what temperature does water boil", "At sea level water boils at 100 °C (212 °F)."),
         ("at what temperature does water freeze", "Water freezes at 0 °C (32 °F)."),
         ("how many continents are there", "There are seven continents."),
         ("what's the largest planet", "Jupiter is the largest planet in the solar system."),
         ("what do bees make", "Bees make honey and beeswax."),
         ("how many legs does a spider have", "A spider has eight legs."),
         ("what's the opposite of hot", "The opposite of hot is cold."),
         ("who wrote Romeo and Juliet", "William Shakespeare wrote Romeo and Juliet."),
         ("what is the closest star to Earth", "The Sun is the closest star to Earth."),
         ("how many sides does a triangle have", "A triangle has three sides."))
UNKNOWN = ("what's the capital of {place}", "what's the population of {place}", "who is the mayor of {place}",
           "who won the {year} world cup", "how tall is the tallest building in {place}",
           "who invented the {word}", "when was {title} founded", "what's the history of {place}",
           "who wrote {title}", "how far is it from {place} to {place2}")
_SOURCES = ("an encyclopedia", "a search engine", "a reliable website")


def out_of_scope(rng: np.random.Generator, V: Vocab) -> Ep:
    """A request the model cannot fulfil: an honest, short answer naming it, and what the model can do."""
    s = {"place": V.place(rng), "name": V.name(rng), "time": V.clock(rng), "title": V.title(rng),
         "topic": pick(rng, _TOPICS), "lang": pick(rng, _LANGS)}
    r = rng.random()
    ep = Ep("out_of_scope", [])
    if r < 0.4:
        q, what, where = (t.format(**s) for t in pick(rng, LIVE))
        text = ask(rng, V.split, "question", x=q)
        reply = pick(rng, (f"I can't check {what}: I have no internet access and no tool for live information. "
                           f"{where[0].upper() + where[1:]} will have it.",
                           f"I don't have access to live data, so I can't tell you {what}. Try {where}."))
        key = what
    elif r < 0.75:
        q, what = (t.format(**s) for t in pick(rng, ACTIONS))
        text = ask(rng, V.split, "task", a=q)
        reply = pick(rng, (f"I can't {what} for you: I can only write text here. {CAN_DO}",
                           f"Sorry, I'm not able to {what}. I'm a small chat model without access to your apps; "
                           f"you'll need to {q} yourself."))
        key = what
    else:
        q, what = (t.format(**s) for t in pick(rng, LONG))
        text = ask(rng, V.split, "task", a=q)
        reply = pick(rng, (f"That's more than I can do well: I'm a very small model and only write short answers, "
                           f"so {what} is beyond me. I can help with a short outline or a single paragraph.",
                           f"{what[0].upper() + what[1:]} is too long a task for me; I write short replies. "
                           f"A bigger model (minichat chat --model smollm2) or a person will do it better."))
        key = what
    ep.messages += [user(text), assistant(reply)]
    ep.probe("answer", contains=(key,))
    return ep


def knowledge(rng: np.random.Generator, V: Vocab) -> Ep:
    """A simple fact it knows, a question it cannot know (an honest "I don't know"), or how an assistant works."""
    r = rng.random()
    ep = Ep("knowledge", [])
    if r < 0.4:
        q, a = pick(rng, KNOWN)
        ep.messages += [user(ask(rng, V.split, "question", x=q)), assistant(a)]
        ep.probe("answer", contains=(a.split()[-1].rstrip("."),))
    elif r < 0.7:
        s = {"place": V.place(rng), "place2": V.place(rng), "year": str(int(rng.integers(1950, 2023))),
             "word": invented_word(rng, 2, 4, False), "title": V.title(rng)}
        q = pick(rng, UNKNOWN).format(**s)
        ep.messages += [user(ask(rng, V.split, "question", x=q)), assistant(pick(rng, (
            f"I don't know that reliably: I'm a small model with very little general knowledge. "
            f"{pick(rng, _SOURCES).capitalize()} will have the answer.",
            f"I'm not sure, and I'd rather not guess. I don't have that kind of knowledge; try "
            f"{pick(rng, _SOURCES)}.")))]
        ep.probe("answer", contains=("know" if "know" in ep.messages[-1].content else "sure",))
        ep.kind = "unknown"
    else:
        asks, says = KNOWLEDGE[pick(rng, sorted(KNOWLEDGE))]
        ep.messages += [user(pick(rng, asks)), assistant(pick(rng, says))]
    return ep


_MOODS = ((("I'm bored.", "i'm so bored", "Nothing to do today..."),
           ("Want to try something? I can tell you a joke, do some maths, or help you plan something from your "
            "notes.", "Sorry to hear that! How about a joke, or a quick question you've always wondered about?")),
          (("I'm feeling a bit down today.", "Today was a bad day.", "I'm tired and a bit sad."),
           ("I'm sorry you're having a hard day. Do you want to talk about it? Sometimes a walk, some rest or a "
            "chat with a friend helps too.", "That sounds tough. I'm here if you want to talk, and it's okay to take "
            "it easy today.")),
          (("ok", "cool", "lol", "nice", "Okay, got it."), ("Anything else I can help with?", "Glad to help. "
                                                                                            "What's next?")),
          (("Good night!", "I'm off to bed.", "Night!"), ("Good night! Sleep well.", "Sleep well, see you soon!")),
          (("Can you browse the internet?", "Can you see pictures?", "Do you remember our last chat?"),
           ("No. I only read the text of our conversation, plus your notes and the facts you asked me to remember "
            "when those tools are on.", "Not really: I work with text only, and from other chats I only know the "
            "facts saved to my memory.")))


def smalltalk(rng: np.random.Generator, V: Vocab) -> Ep:
    ep = Ep("smalltalk", [])
    r = rng.random()
    if r > 0.85:
        asks, says = pick(rng, _MOODS)
        ep.messages += [user(pick(rng, asks)), assistant(pick(rng, says))]
    elif r < 0.25:
        ep.messages += [user(pick(rng, _HELLO)), assistant(pick(rng, _HELLO_BACK))]
    elif r < 0.45:
        n = V.name(rng)
        said = pick(rng, ("Hi, I'm {n}.", "Hello! My name is {n}.", "Hey, {n} here.", "I'm {n}, nice to meet you.",
                          "hi its {n}", "Call me {n}."))
        ep.messages += [user(said.format(n=n)), assistant(pick(rng, (
            "Nice to meet you, {n}! How can I help?", "Hi {n}! What can I do for you today?",
            "Hello {n}, good to meet you. What would you like to do?")).format(n=n))]
        ep.probe("answer", contains=(n,))
    else:
        asks, says = pick(rng, _SMALL)
        ep.messages += [user(pick(rng, asks)), assistant(pick(rng, says))]
    return ep


# -- copying drills ----------------------------------------------------------------------------------------------------

def _thing(rng: np.random.Generator, V: Vocab) -> str:
    """A value to copy: a long invented word, a name, a place, a code, a number of up to 12 digits, a title."""
    k = int(rng.integers(8))
    if k < 2:
        return long_word(rng)
    if k == 2:
        return V.code(rng)
    if k == 3:
        return V.digits(rng, int(rng.integers(2, 13)))
    if k == 4:
        return V.full_name(rng)
    if k == 5:
        return V.place(rng)
    if k == 6:
        return V.title(rng)
    return V.value(rng, pick(rng, tuple(sorted(set(ATTRIBUTES.values())))))  # sorted: set order varies by process


def copy_drill(rng: np.random.Generator, V: Vocab) -> Ep:
    """Two to five copying exchanges: repeat a string exactly, or pick one value out of a sentence."""
    ep = Ep("copy", [])
    for _ in range(int(rng.integers(1, 5))):
        if rng.random() < 0.5:
            items = [_thing(rng, V) for _ in range(int(rng.integers(1, 6)))]
            text = pick(rng, (", ", " ", " / ", "; ")).join(items)
            ep.messages += [user(ask(rng, V.split, "copy", s=text)), assistant(text)]
            ep.probe("answer", contains=(text,))
        else:
            a, b = V.name(rng), V.name(rng)
            if a == b:
                continue
            attr = pick(rng, tuple(ATTRIBUTES))
            kind = ATTRIBUTES[attr]
            v, w = V.value(rng, kind), V.value(rng, kind)
            if rng.random() < 0.5:
                q, val = f"{a}'s {attr} is {v}. What is {a}'s {attr}?", v
            else:
                who = pick(rng, (a, b))
                q, val = f"{a}'s {attr} is {v} and {b}'s is {w}. What is {who}'s {attr}?", (v if who == a else w)
            ep.messages += [user(q), assistant(pick(rng, ("{v}", "{v}.", "It's {v}.")).format(v=val))]
            ep.probe("answer", contains=(val,))
    if not ep.messages:
        text = long_word(rng)
        ep.messages += [user(ask(rng, V.split, "copy", s=text)), assistant(text)]
        ep.probe("answer", contains=(text,))
    return ep
