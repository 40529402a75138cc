"""The word pools the synthetic chat corpus draws from (split into a training and a held-out part), and the small
records every conversation generator returns (`Episode`, `Probe`).

A small model trained on templated conversations could pass a test by remembering "Priya lives in Lyon" instead of
reading it from the context. So every name, surname, city, number and date the corpus uses comes from one of two
disjoint pools: `pools("train")` for the training conversations and `pools("heldout")` for the evaluation ones. A
held-out conversation therefore mentions people, places and numbers the model has never seen, and can only be
answered by copying from the context (the user's message, a tool result, a memory snippet).

How each pool is split (deterministic, no randomness involved):
  - listed words (names, surnames, cities, pet names, ...): every fifth entry (index % 5 == 0) is held out; the
    training split also invents words (`invented_word`, never equal to a listed one) for 30 % of its names;
  - integers >= 10: held out when a multiplicative hash of the value falls in the lowest fifth (`heldout_number`);
    0..9 are shared (they are single digits, and the tokenizer splits every number into digits anyway);
  - dates: held out when the same hash of the day number (`date.toordinal()`) falls in the lowest fifth;
  - closed sets (colours, foods, weekdays, ...): shared by both splits, since a held-out colour would be a word the
    model never saw. To stop the model from *guessing* such a value from its kind ("favourite colour is" -> a likely
    colour) instead of copying it, the training split swaps 30 % of them for a word of any other closed set
    (`Pools.word`): "my favourite colour is lentils" can only be answered by copying.

What it leaves out: real-world frequency of names; any claim that the lists are representative of anything.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minichat.chat.template import Message

SPLITS = ("train", "heldout")

NAMES = """
Aaliyah Abdul Ada Adebayo Adele Aditi Ahmed Aiko Aisha Akira Alba Alejandro Alexei Alice Amara Amelie Amir Ana Anders
Andrea Anika Anton Arjun Astrid Aurora Ayesha Bashir Beatriz Bella Benjamin Bilal Bjorn Blessing Bruno Camille Carlos
Carmen Catalina Chen Chiara Chidi Clara Daniel Dario Dmitri Elena Elif Eliza Emeka Emil Emma Enzo Esther Ezra Fatima
Felix Fernando Fiona Freya Gabriel Giulia Grace Hana Hannah Haruto Hassan Hector Helga Hiroshi Ibrahim Ida Ines Ingrid
Isaac Isabel Ivan Jamal Jana Javier Jin Joao Jonas Jorge Joseph Julia Kai Kamala Karim Kate Keiko Kenji Kofi Lars
Layla Leila Leon Liam Lina Luca Lucia Magnus Maya Mehmet Mei Mia Miguel Mina Moana Mohammed Nadia Naomi Nia Nikolai
Noah Nora Olga Oliver Omar Oscar Pablo Paolo Pedro Petra Priya Rafael Rahul Rania Rosa Ruth Sadia Samir Sara Sebastian
Selin Seo-yeon Shira Sipho Sofia Soren Sunita Tariq Thabo Theo Tomas Uma Valentina Victor Wei Wiktor Yara Yuki Yusuf
Zainab Zara Zoe Ruben Malik Ayaan Lucas Elsa Tobias Nikita Farah Kwame Imani Diego Lea Hugo Marta Ewa Kasia Oskar Mateo
Renata Anouk Sander Femke Linnea Aino Eero Tuomas Greta Milan Vesna Goran Dragan Bogdan Yannick Amelia Rohan Devika
Kiran Anjali Vikram Tanvir Nasrin Farid Reza Shirin Dariush Leilani Keanu Tane Aroha Kalani Mele Sione Ana-Maria Ioana
""".split()

SURNAMES = """
Abara Adeyemi Alvarez Andersen Bauer Becker Bianchi Brandt Castillo Castro Costa Dubois Duarte Eriksen Fischer Fontaine
Garcia Gonzalez Gupta Haddad Hansen Hoffmann Idowu Ivanova Jansen Jensen Kaur Kim Kowalski Kruger Larsen Lee Lindqvist
Lopez Mahmoud Martin Mehta Meyer Moreau Muller Nakamura Nguyen Novak Nowak Okafor Okonkwo Olsen Ortiz Park Patel Petrov
Popescu Quispe Rahman Reyes Ricci Rossi Sato Schmidt Schneider Silva Singh Sokolov Suzuki Tanaka Torres Vargas Weber
Wojcik Yamamoto Yilmaz Zhang Zimmermann Achebe Banerjee Carvalho Demir Ekstrom Ferrari Grieg Horvath Ishikawa Juarez
Kovacs Laine Mbeki Nilsson Osei Pereira Quinn Romano Sandoval Takahashi Urbano Virtanen Walsh Xu Yoon Zeller Mensah
""".split()

CITIES = """
Lyon Porto Kraków Accra Nairobi Osaka Busan Hanoi Lima Quito Bogotá Oslo Bergen Tampere Gdańsk Brno Graz Ghent Utrecht
Leipzig Bremen Turin Bologna Seville Valencia Bilbao Toulouse Nantes Marseille Cork Galway Leeds Bristol Glasgow
Cardiff Halifax Calgary Winnipeg Quebec Denver Austin Portland Boise Tucson Omaha Memphis Savannah Monterrey Puebla
Oaxaca Medellín Cali Cusco Arequipa Valparaíso Mendoza Córdoba Montevideo Asunción Recife Curitiba Salvador Fortaleza
Dakar Kumasi Lagos Ibadan Kigali Kampala Arusha Mombasa Durban Windhoek Gaborone Lusaka Harare Maputo Tunis Fez Agadir
Izmir Bursa Tabriz Shiraz Isfahan Muscat Doha Amman Beirut Haifa Tbilisi Yerevan Baku Almaty Tashkent Samarkand Lahore
Karachi Pune Jaipur Kochi Mysore Chennai Dhaka Chittagong Kandy Kathmandu Pokhara Penang Cebu Davao Surabaya Bandung
Medan Hue Sapporo Sendai Fukuoka Nagoya Kobe Daegu Incheon Taichung Kaohsiung Xiamen Chengdu Kunming Harbin
Ulaanbaatar Perth Adelaide Hobart Darwin Wellington Dunedin Nadi Apia Reykjavik Tromsø Uppsala Malmö Aarhus Odense
Turku Tartu Riga Vilnius Lviv Odesa Cluj Varna Plovdiv Split Zadar Ljubljana Maribor Salzburg Linz Basel Bern Lausanne
Lucerne Antwerp Bruges Nancy Dijon Rennes Lille Genoa Verona Palermo Bari Granada Málaga Braga Coimbra
""".split()

PET_NAMES = """
Biscuit Pepper Luna Mochi Ziggy Nacho Clover Pickle Waffles Juniper Olive Bandit Pumpkin Maple Ginger Pixel Tofu Sushi
Noodle Peanut Cosmo Ruby Fudge Kiwi Bagel Sprout Pretzel Hazel Marble Socks Pippin Dumpling Taco Basil Cinnamon Muffin
Nugget Jasper Willow Poppy
""".split()

COLOURS = tuple("teal crimson olive navy lavender amber coral turquoise maroon indigo mustard emerald ochre lilac"
                .split())
FOODS = ("ramen", "paella", "lasagne", "dumplings", "falafel", "sushi", "tacos", "pho", "risotto", "curry", "pierogi",
         "jollof rice", "moussaka", "pad thai", "shakshuka", "pancakes", "goulash", "bibimbap", "couscous", "ceviche")
ANIMALS = ("otter", "owl", "fox", "dolphin", "red panda", "hedgehog", "penguin", "elephant", "octopus", "giraffe",
           "lynx", "sloth", "koala", "capybara", "raven", "axolotl", "seal", "badger", "tiger", "wombat")
SPORTS = ("tennis", "climbing", "football", "swimming", "cycling", "badminton", "volleyball", "chess", "rowing",
          "basketball", "table tennis", "surfing", "judo", "cricket", "hiking", "skiing")
JOBS = ("nurse", "teacher", "software engineer", "carpenter", "pharmacist", "architect", "bus driver", "chef",
        "librarian", "electrician", "translator", "dentist", "farmer", "journalist", "physiotherapist", "accountant",
        "graphic designer", "firefighter", "lab technician", "baker")
ALLERGIES = ("peanuts", "shellfish", "cats", "pollen", "penicillin", "gluten", "eggs", "bee stings", "dust", "soy",
             "sesame", "milk")
INSTRUMENTS = ("piano", "guitar", "violin", "drums", "cello", "flute", "saxophone", "ukulele", "trumpet", "harp")
BOOKS = ("The Quiet River", "Salt and Stars", "A Map of Small Things", "The Last Lighthouse", "Paper Birds",
         "The Glass Orchard", "North of Nowhere", "The Clockmaker's Daughter", "Seven Lanterns", "Winter Tides",
         "The Copper Garden", "Letters from the Valley", "The Long Afternoon", "Blue Hour", "Iron and Honey")
ITEMS = ("milk", "bread", "eggs", "rice", "apples", "coffee", "tomatoes", "onions", "cheese", "yoghurt", "lentils",
         "spinach", "bananas", "olive oil", "pasta", "carrots", "garlic", "lemons", "oats", "butter")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
# every closed-set word (the pool `Pools.word` swaps from, and the copying drills' single words)
CLOSED_WORDS = tuple(sorted(set(COLOURS + FOODS + ANIMALS + SPORTS + JOBS + ALLERGIES + INSTRUMENTS + ITEMS
                                + WEEKDAYS + MONTHS)))


def _half(words, split: str) -> tuple:
    """Every fifth entry for "heldout", the other four fifths for "train"."""
    keep = (lambda i: i % 5 == 0) if split == "heldout" else (lambda i: i % 5 != 0)
    return tuple(w for i, w in enumerate(words) if keep(i))


def _hash_fifth(n: int) -> bool:
    """True for about one integer in five, scattered (Knuth's multiplicative hash, top bits)."""
    h = (n * 2654435761) & 0xFFFFFFFF  # scrambles n over 32 bits
    return (h * 5) >> 32 == 0  # h in the lowest fifth of its range


def heldout_number(n: int) -> bool:
    """Whether the integer n belongs to the held-out pool. 0..9 belong to both; negatives follow their magnitude."""
    n = abs(int(n))
    return n >= 10 and _hash_fifth(n)


def heldout_date(d: dt.date) -> bool:
    return _hash_fifth(d.toordinal())


# -- invented words ------------------------------------------------------------------------------------------------------
# A name the tokenizer never saw is cut into small pieces (" M", "il", "ó" as two bytes...). If such a piece never
# occurs as a *target* in training, a tied output head learns only to push it down, and the model can never write it:
# a held-out name cannot be copied however well the model copies. Invented words (syllables, sometimes with accented
# letters) used as training names, places and copying-drill items make every small piece a frequent target.

INVENTED = 0.3  # chance that a training-split name, surname, city or pet name is invented
SWAPPED = 0.3  # chance that a training-split closed-set value is a word of any closed set (see the module docstring)
_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "q", "r", "s", "t", "v", "w", "x", "y", "z",
           "br", "ch", "dr", "gr", "kh", "pl", "sh", "st", "th", "tr", "", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ia", "ou", "y")
_ACCENTED = ("á", "é", "í", "ó", "ú", "ø", "ü", "ö", "ä", "å", "ã", "ç", "ñ", "ł", "ś", "ą", "ę", "ğ", "ş")
_CODAS = ("n", "r", "s", "l", "k", "m", "t", "nd", "rt", "sk", "x", "z")
# the listed words of both splits; the recipe keeps them out of the text its vocabulary is learned from (recipe.py)
LISTED_WORDS = tuple(NAMES + SURNAMES + CITIES + PET_NAMES)
_REAL = frozenset(w.casefold() for w in LISTED_WORDS)


def invented_word(rng: np.random.Generator) -> str:
    """A pronounceable made-up word of two or three syllables, capitalised (Velmora, Trøsik), never a listed word."""
    while True:
        parts = []
        for k in range(int(rng.integers(2, 4))):
            vowel = _ACCENTED[int(rng.integers(len(_ACCENTED)))] if rng.random() < 0.08 else \
                _VOWELS[int(rng.integers(len(_VOWELS)))]
            coda = _CODAS[int(rng.integers(len(_CODAS)))] if rng.random() < 0.3 else ""
            parts.append(_ONSETS[int(rng.integers(len(_ONSETS)))] + vowel + coda)
        word = "".join(parts).capitalize()
        if len(word) >= 3 and word.casefold() not in _REAL:
            return word


def scramble(rng: np.random.Generator) -> str:
    """A random string of 3 to 8 letters, some capital or accented (for copying drills): qTzéxa."""
    letters = []
    for _ in range(int(rng.integers(3, 9))):
        r = rng.random()
        if r < 0.1:
            letters.append(_ACCENTED[int(rng.integers(len(_ACCENTED)))])
        else:
            c = chr(ord("a") + int(rng.integers(26)))
            letters.append(c.upper() if r < 0.3 else c)
    return "".join(letters)


def distinct(draw: Callable[[], str], k: int) -> list[str]:
    """k different values of draw(), in the order drawn (repeats are drawn again)."""
    out: list[str] = []
    while len(out) < k:
        v = draw()
        if v not in out:
            out.append(v)
    return out


@dataclass(frozen=True)
class Pools:
    """One split's words, and samplers for its numbers and dates. Every method takes the caller's Generator."""

    split: str
    names: tuple[str, ...]
    surnames: tuple[str, ...]
    cities: tuple[str, ...]
    pet_names: tuple[str, ...]

    def pick(self, rng: np.random.Generator, seq):
        return seq[int(rng.integers(len(seq)))]

    def _word(self, rng: np.random.Generator, listed: tuple[str, ...]) -> str:
        """A listed word or, in the training split, sometimes an invented one (see `invented_word`)."""
        if self.split == "train" and rng.random() < INVENTED:
            return invented_word(rng)
        return self.pick(rng, listed)

    def name(self, rng: np.random.Generator) -> str:
        return self._word(rng, self.names)

    def word(self, rng: np.random.Generator, closed: tuple[str, ...]) -> str:
        """A word of the closed set `closed` or, in the training split, sometimes any closed-set word (SWAPPED)."""
        if self.split == "train" and rng.random() < SWAPPED:
            return self.pick(rng, CLOSED_WORDS)
        return self.pick(rng, closed)

    def names_k(self, rng: np.random.Generator, k: int) -> list[str]:
        """k different names."""
        return distinct(lambda: self.name(rng), k)

    def surname(self, rng: np.random.Generator) -> str:
        return self._word(rng, self.surnames)

    def city(self, rng: np.random.Generator) -> str:
        return self._word(rng, self.cities)

    def pet(self, rng: np.random.Generator) -> str:
        return self._word(rng, self.pet_names)

    def owns_number(self, n: int) -> bool:
        n = abs(int(n))
        return n < 10 or heldout_number(n) == (self.split == "heldout")

    def number(self, rng: np.random.Generator, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi] from this split's pool (rejection sampling; both bounds inclusive)."""
        if hi < lo:
            raise ValueError(f"empty range [{lo}, {hi}]")
        for _ in range(1000):
            n = int(rng.integers(lo, hi + 1))
            if self.owns_number(n):
                return n
        raise ValueError(f"no {self.split} number in [{lo}, {hi}]: widen the range")

    def multiple(self, rng: np.random.Generator, b: int, lo: int, hi: int) -> int:
        """b * q for a q in [lo, hi], with the product also in this split's pool (exact divisions)."""
        for _ in range(1000):
            n = b * int(rng.integers(lo, hi + 1))
            if self.owns_number(n):
                return n
        raise ValueError(f"no {self.split} multiple of {b} in [{b * lo}, {b * hi}]")

    def date(self, rng: np.random.Generator, first_year: int = 2024, last_year: int = 2039) -> dt.date:
        start, end = dt.date(first_year, 1, 1).toordinal(), dt.date(last_year, 12, 31).toordinal()
        while True:
            d = dt.date.fromordinal(int(rng.integers(start, end + 1)))
            if heldout_date(d) == (self.split == "heldout"):
                return d

    def clock(self, rng: np.random.Generator) -> str:
        """A time of day as HH:MM (24-hour), minutes in steps of five."""
        return f"{int(rng.integers(6, 23)):02d}:{5 * int(rng.integers(12)):02d}"


def pools(split: str) -> Pools:
    """The pools of one split: "train" or "heldout"."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return Pools(split, _half(NAMES, split), _half(SURNAMES, split), _half(CITIES, split), _half(PET_NAMES, split))


def long_date(d: dt.date) -> str:
    """Thursday, 17 April 2031"""
    return f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}"


def short_date(d: dt.date) -> str:
    """17 April 2031"""
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


# -- what a conversation generator returns -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Probe:
    """A point where the evaluation can cut a conversation and let the model write the next assistant message.

    index: position (in the conversation's `messages`, system message included) of that assistant message; the
    prompt is everything before it. kind: what is checked —
      "tool_call"  exactly one call, to `tool`, with arguments matching `arguments` (see
                   synthetic_tools.arguments_match; `contains` lists strings a remember call's fact must contain);
      "answer"     a reply without tool calls containing every string in `contains` (after a result of `tool`, or
                   from memory / history when `tool` is "");
      "refusal"    a refusal (harmful request);  "helpful"  not a refusal (harmless look-alike).
    """

    index: int
    kind: str
    tool: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    contains: tuple[str, ...] = ()

    def shifted(self, by: int) -> "Probe":
        return Probe(self.index + by, self.kind, self.tool, self.arguments, self.contains)


@dataclass
class Episode:
    """A piece of conversation without its system message: one or more exchanges, plus what the system prompt must
    hold for it (memory snippets) and where it can be probed (indices into `messages`)."""

    kind: str
    messages: list[Message]
    probes: list[Probe] = field(default_factory=list)
    memory: list[str] = field(default_factory=list)
    uses_tools: bool = False

    def probe(self, kind: str, tool: str = "", arguments: Mapping[str, Any] | None = None,
              contains: tuple[str, ...] = ()) -> None:
        """Mark the last message (an assistant one) as a probe."""
        self.probes.append(Probe(len(self.messages) - 1, kind, tool, dict(arguments or {}), tuple(contains)))
