"""Open vocabularies for the v2 corpus: names from many languages, invented words, numbers of every shape, note
topics and facts about the user composed from parts, each split deterministically into a training and a held-out part.

The v1 corpus drew its values from short lists, and a model trained on it snapped anything new to the nearest listed
thing (a note topic outside its fourteen became "dentist"). Here most things are *composed*, so their number is the
product of the parts' sizes and no single one is frequent enough to memorise:

    note topic   object x event          "boiler" x "service"             -> "boiler service"        (~2,000)
    fact kind    relation x attribute    "my sister's" x "shoe size"      -> "my sister's shoe size" (~2,000)
    value        by the attribute's kind: a name, a number, a code, a date, a multi-word phrase, an invented word

How the split works (`held(key, rate)`: a CRC-32 of the key, no randomness): a name, place, topic, fact kind or
integer belongs to the held-out part when its hash falls in the lowest `rate` of the range. Some whole parts are
held out too (an object such as "kayak", an attribute such as "shoe size"), so the held-out split also has
topics and fact kinds whose every word combination is new. Invented words (`invented_word`: 2-6 syllables, sometimes
accented) are drawn fresh in both splits; they teach copying of words no vocabulary token fits.

What it leaves out: real-world frequencies, grammar beyond what the frames need (articles, plurals of compounds).
"""
from __future__ import annotations

import datetime as dt
import zlib

import numpy as np

from minichat.builtin.corpus.synthetic_pools import CITIES, NAMES, PET_NAMES, SURNAMES, heldout_number

SPLITS = ("train", "heldout")


def held(key: str, rate: float = 0.2) -> bool:
    """Whether `key` belongs to the held-out part: its CRC-32 lies in the lowest `rate` of the 32-bit range."""
    return zlib.crc32(key.casefold().encode("utf-8")) < rate * 2**32


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


MORE_NAMES = """
Xiaoming Li-Na Jun-seo Minh Thanh Quang Linh Arash Golnaz Parisa Babak Nkechi Ngozi Chiamaka Oluwaseun Tunde Folake
Wanjiru Njeri Otieno Amani Zawadi Baraka Thandiwe Lerato Kagiso Mpho Tsegaye Abebe Meron Hamza Yasmin Khadija Youssef
Mariam Layth Noor Dalia Siddharth Lakshmi Meenakshi Arvind Harpreet Gurpreet Ishaan Pooja Sneha Anh Hoa Bao Tuan
Wojciech Małgorzata Zbigniew Agnieszka Jiří Zdeněk Lucie Ondřej Katalin Zsófia Bence Levente Matti Kaisa Jukka Aleksi
Siobhán Niamh Eoghan Aoife Tadhg Cerys Rhys Gwen Mairéad Iñaki Ainhoa Xabier Joaquín Mercedes Graciela Rodrigo
Thiago Gonçalo Leonor Beatriz Dimitrios Eleni Giorgos Vasiliki Ayşe Emre Burak Zeynep Gülşen Oğuz Anahit Tigran Nino
Giorgi Aigerim Nursultan Dilnoza Bekzod Batbayar Oyuna Tenzin Pema Kalinda Manaia Tevita Losa Akoni Nalani Inuk
Aputsiaq Sámi Ailo Ánde Björk Sigríður Þórunn Kristján Ragnhild Solveig Torbjørn Hedda Vibeke Mette Søren Frederikke
""".split()

MORE_PLACES = """
Trondheim Stavanger Aalborg Esbjerg Kuopio Oulu Klaipėda Daugavpils Pärnu Poznań Wrocław Łódź Ostrava Plzeň Košice
Debrecen Szeged Timișoara Iași Constanța Burgas Niš Mostar Sarajevo Skopje Ohrid Durrës Patras Heraklion Thessaloniki
Antalya Trabzon Konya Gaziantep Mosul Basra Erbil Jeddah Medina Sohar Nizwa Aden Sanaa Asmara Mekelle Bahir_Dar
Gondar Jimma Kisumu Eldoret Mwanza Dodoma Zanzibar Lilongwe Blantyre Ndola Bulawayo Beira Nampula Toamasina Antsirabe
Port_Louis Saint-Denis Bamako Ségou Niamey Zinder Ouagadougou Bobo-Dioulasso Tamale Cotonou Lomé Abeokuta Enugu Jos
Maroua Garoua Douala Libreville Pointe-Noire Lubumbashi Kisangani Huambo Benguela Lubango Swakopmund Francistown
Bloemfontein Polokwane Gqeberha Iquitos Trujillo Chiclayo Cochabamba Sucre Potosí Rosario Salta Bahía_Blanca Temuco
Antofagasta Punta_Arenas Maracaibo Barquisimeto Cartagena Manizales Pasto Guayaquil Cuenca Loja Tegucigalpa León
Granada Quetzaltenango Mérida Campeche Hermosillo Culiacán Saskatoon Regina Moncton Sudbury Kelowna Fairbanks Juneau
Duluth Fargo Spokane Eugene Flagstaff Amarillo Shreveport Chattanooga Asheville Burlington Bangor Hilo Nuuk Tórshavn
Akureyri Kiruna Luleå Umeå Bodø Rovaniemi Vaasa Jyväskylä Hakodate Kanazawa Matsuyama Kagoshima Naha Gwangju Jeonju
Ulsan Tainan Hsinchu Guilin Lhasa Kashgar Urumqi Hohhot Datong Luang_Prabang Vientiane Battambang Siem_Reap Mandalay
Bagan Chiang_Mai Hat_Yai Ipoh Kuching Kota_Kinabalu Makassar Manado Ambon Kupang Dili Lae Suva Nukuʻalofa Rarotonga
""".split()
MORE_PLACES = [p.replace("_", " ") for p in MORE_PLACES]  # multi-word places are written with "_" above

# places that fixed answers name in both splits (time zones, capitals), so they are no split's values
FIXED_PLACES = frozenset(("Tokyo", "New York", "London", "Paris", "Berlin", "Sydney", "Los Angeles", "Mumbai",
                          "São Paulo", "Cairo", "Nairobi", "Dubai", "Singapore", "Seoul", "Mexico City", "Toronto",
                          "Bangkok", "Lagos", "Buenos Aires", "Moscow", "Istanbul", "Jakarta", "Auckland", "Ottawa",
                          "Rome"))
# names and places: the v1 lists and more, every one split by its hash (so held-out ones are never training values)
ALL_NAMES = tuple(dict.fromkeys(NAMES + MORE_NAMES + PET_NAMES))
ALL_SURNAMES = tuple(SURNAMES)
ALL_PLACES = tuple(p for p in dict.fromkeys(CITIES + MORE_PLACES) if p not in FIXED_PLACES)
LISTED_WORDS_V2 = tuple(dict.fromkeys(ALL_NAMES + ALL_SURNAMES + ALL_PLACES))  # kept out of the vocabulary's merges
_LISTED = frozenset(w.casefold() for w in LISTED_WORDS_V2)

_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch",
           "dr", "gr", "kh", "pl", "sh", "st", "th", "tr", "kw", "ts", "ng", "", "", "")
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "i", "o", "ai", "ei", "ia", "ou", "y", "au", "ee", "oo")
_ACCENTED = ("á", "é", "í", "ó", "ú", "ø", "ü", "ö", "ä", "å", "ã", "ç", "ñ", "ł", "ś", "ą", "ę", "ğ", "ş", "ő", "ā")
_CODAS = ("n", "r", "s", "l", "k", "m", "t", "nd", "rt", "sk", "x", "z", "ng", "sh")


def invented_word(rng: np.random.Generator, lo: int = 2, hi: int = 6, capital: bool | None = None) -> str:
    """A pronounceable made-up word of lo..hi syllables (Velmora, trøsikandelu), sometimes capitalised; never a
    listed name or place (a held-out one must not turn up in training by chance)."""
    while True:
        parts = []
        for _ in range(int(rng.integers(lo, hi + 1))):
            vowel = pick(rng, _ACCENTED) if rng.random() < 0.07 else pick(rng, _VOWELS)
            coda = pick(rng, _CODAS) if rng.random() < 0.25 else ""
            parts.append(pick(rng, _ONSETS) + vowel + coda)
        word = "".join(parts)
        if len(word) >= 2 and word.casefold() not in _LISTED:
            break
    if capital is None:
        capital = rng.random() < 0.6
    return word.capitalize() if capital else word


def long_word(rng: np.random.Generator) -> str:
    """An invented word of 4 to 6 syllables (what v1's model mis-copied most)."""
    return invented_word(rng, 4, 6)


# -- note topics: object x event --------------------------------------------------------------------------------------
NOTE_OBJECTS = """
dentist doctor vet boiler bike car van scooter passport visa driving-licence flat house garden garage roof kitchen
bathroom piano guitar violin yoga pilates swimming climbing tennis football chess pottery choir drama dance karate
school kindergarten university library museum bank insurance tax pension phone laptop printer router wifi tablet
camera kayak boat caravan tent holiday wedding birthday anniversary funeral party conference workshop interview
project budget report presentation invoice contract lease mortgage loan gym physio therapist optician pharmacy
hospital blood-test vaccination haircut barber dog cat rabbit hamster parrot aquarium plants balcony cellar attic
storage-unit parking-permit train flight bus ferry hotel hostel campsite concert theatre cinema exhibition festival
market bakery butcher plumber electrician painter carpenter locksmith cleaner babysitter tutor coach mechanic
""".split()
NOTE_EVENTS = ("appointment", "service", "lesson", "repair", "renewal", "booking", "meeting", "class", "check-up",
               "inspection", "delivery", "payment", "password", "code", "pickup", "deadline", "reminder", "plan",
               "receipt", "order", "visit", "schedule", "reservation", "training", "notes", "contact")


def topic_words(obj: str) -> str:
    return obj.replace("-", " ")


def topic_held(obj: str, event: str) -> bool:
    """Held-out topics: whole objects (1 in 8), whole events (kinds "code" and "visit"), and 1 in 5 of the rest."""
    return held("obj:" + obj, 0.125) or event in HELD_EVENTS or held(f"topic:{obj} {event}", 0.2)


HELD_EVENTS = ("visit", "code")

# -- facts about the user: relation x attribute -----------------------------------------------------------------------
RELATIONS = ("my", "my sister's", "my brother's", "my mum's", "my dad's", "my partner's", "my wife's", "my husband's",
             "my son's", "my daughter's", "my boss's", "my neighbour's", "my best friend's", "my grandmother's",
             "my grandfather's", "my cousin's", "my uncle's", "my aunt's", "my flatmate's", "my colleague's",
             "my landlord's", "my niece's", "my nephew's", "my girlfriend's", "my boyfriend's", "my teacher's")
# attribute: value kind (see Vocab.value)
ATTRIBUTES = {
    "favourite colour": "word", "favourite food": "phrase", "favourite band": "title", "favourite film": "title",
    "favourite book": "title", "favourite song": "title", "favourite drink": "phrase", "favourite city": "place",
    "favourite game": "title", "favourite flower": "word", "birthday": "day", "phone number": "phone",
    "email address": "email", "shoe size": "small", "blood type": "blood", "middle name": "name",
    "nickname": "name", "home town": "place", "postcode": "code", "licence plate": "plate", "locker code": "digits",
    "bike lock code": "digits", "wifi password": "code", "membership number": "digits", "room number": "small",
    "flight number": "flight", "employer": "title", "job": "phrase", "street": "street", "dog's name": "name",
    "cat's name": "name", "horse's name": "name", "car": "phrase", "star sign": "word", "lucky number": "small",
    "allergy": "phrase", "hobby": "phrase", "school": "title", "doctor's name": "name", "gym": "title",
    "anniversary": "day", "bank's name": "title", "library card number": "digits", "passport number": "code",
    "train seat": "small", "table number": "small", "pin": "digits", "height": "height", "favourite word": "word",
    "username": "code", "favourite season": "word", "favourite animal": "word", "pet's name": "name",
    "favourite teacher": "name", "first car": "phrase", "favourite restaurant": "title", "favourite dessert": "phrase",
    "name": "name", "address": "street", "favourite number": "small", "password": "code",
}


def fact_held(relation: str, attribute: str) -> bool:
    """Held-out fact kinds: whole attributes (1 in 7), and 1 in 5 relation x attribute pairs."""
    return held("attr:" + attribute, 1 / 7) or held(f"fact:{relation} {attribute}", 0.2)


_COLOURS = ("teal", "crimson", "olive", "navy", "lavender", "amber", "coral", "turquoise", "maroon", "indigo",
            "mustard", "emerald", "ochre", "lilac", "saffron", "cobalt", "magenta", "beige", "scarlet", "mint")
_WORDS = ("sunflower", "winter", "autumn", "Gemini", "Taurus", "Scorpio", "tulip", "orchid", "otter", "heron",
          "spring", "summer", "Libra", "daisy", "jasmine", "lynx", "falcon", "umbrella", "marigold", "cypress")
_FOODS = ("ramen", "paella", "lasagne", "dumplings", "falafel", "sushi", "tacos", "pho", "risotto", "curry", "pierogi",
          "jollof rice", "moussaka", "pad thai", "shakshuka", "pancakes", "goulash", "bibimbap", "couscous", "ceviche",
          "mango lassi", "green tea", "oat milk", "apple pie", "cherry cake", "lemon sorbet", "red lentil soup")
_TITLE_WORDS = ("Quiet", "River", "Salt", "Stars", "Glass", "Orchard", "North", "Copper", "Garden", "Winter", "Blue",
                "Hour", "Iron", "Honey", "Paper", "Birds", "Seven", "Lanterns", "Last", "Harbour", "Silver", "Moon",
                "Little", "Kingdom", "Red", "Fox", "Hollow", "Bright", "Lights", "Golden", "Road", "Velvet", "Storm")
_JOBS = ("nurse", "teacher", "software engineer", "carpenter", "pharmacist", "architect", "bus driver", "chef",
         "librarian", "electrician", "translator", "farmer", "journalist", "accountant", "baker", "pilot")


class Vocab:
    """One split's samplers. Every method takes the caller's Generator; values of the other split never come out."""

    def __init__(self, split: str):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
        self.split = split
        h = split == "heldout"
        self.names = tuple(n for n in ALL_NAMES if held("name:" + n) == h)
        self.surnames = tuple(n for n in ALL_SURNAMES if held("surname:" + n) == h)
        self.places = tuple(n for n in ALL_PLACES if held("place:" + n) == h)
        self.topics = tuple((o, e) for o in NOTE_OBJECTS for e in NOTE_EVENTS if topic_held(o, e) == h)
        self.objects = tuple(o for o in NOTE_OBJECTS if held("obj:" + o, 0.125) == h)  # one-word topics
        self.facts = tuple((r, a) for r in RELATIONS for a in ATTRIBUTES if fact_held(r, a) == h)

    # -- words
    def name(self, rng: np.random.Generator) -> str:
        """A listed first name or (1 in 4) an invented one."""
        return invented_word(rng, 2, 4, True) if rng.random() < 0.25 else pick(rng, self.names)

    def full_name(self, rng: np.random.Generator) -> str:
        sur = invented_word(rng, 2, 4, True) if rng.random() < 0.3 else pick(rng, self.surnames)
        return f"{self.name(rng)} {sur}"

    def place(self, rng: np.random.Generator) -> str:
        return invented_word(rng, 2, 5, True) if rng.random() < 0.2 else pick(rng, self.places)

    def topic(self, rng: np.random.Generator) -> str:
        """A note topic: object x event ("boiler service"), or (1 in 4) the object alone ("boiler")."""
        if rng.random() < 0.25:
            return topic_words(pick(rng, self.objects))
        o, e = pick(rng, self.topics)
        return f"{topic_words(o)} {e}"

    def fact_kind(self, rng: np.random.Generator) -> tuple[str, str]:
        return pick(rng, self.facts)

    def title(self, rng: np.random.Generator) -> str:
        """A multi-word name (a band, book, employer): two to four title words or invented words."""
        k = int(rng.integers(2, 5))
        words = [invented_word(rng, 2, 4, True) if rng.random() < 0.35 else pick(rng, _TITLE_WORDS) for _ in range(k)]
        return ("The " if rng.random() < 0.3 else "") + " ".join(words)

    def phrase(self, rng: np.random.Generator) -> str:
        """A multi-word everyday value: a food, a job, a thing, sometimes with an invented word in it."""
        r = rng.random()
        if r < 0.35:
            return pick(rng, _FOODS)
        if r < 0.55:
            return pick(rng, _JOBS)
        if r < 0.75:
            return f"{pick(rng, _COLOURS)} {invented_word(rng, 2, 3, False)}"
        return " ".join(invented_word(rng, 1, 3, False) for _ in range(int(rng.integers(2, 4))))

    # -- numbers
    def owns(self, n: int) -> bool:
        n = abs(int(n))
        return n < 10 or heldout_number(n) == (self.split == "heldout")

    def integer(self, rng: np.random.Generator, lo: int, hi: int) -> int:
        """A uniform integer in [lo, hi] that belongs to this split."""
        for _ in range(1000):
            n = int(rng.integers(lo, hi + 1))
            if self.owns(n):
                return n
        raise ValueError(f"no {self.split} integer in [{lo}, {hi}]")

    def digits(self, rng: np.random.Generator, k: int) -> str:
        """A k-digit string of this split (leading digit non-zero)."""
        return str(self.integer(rng, 10 ** (k - 1), 10**k - 1)) if k > 1 else str(int(rng.integers(1, 10)))

    def operand(self, rng: np.random.Generator) -> str:
        """A calculator operand as the user types it: 1-8 digits, sometimes negative, sometimes with decimals."""
        k = int(pick(rng, (1, 2, 2, 3, 3, 4, 4, 5, 6, 7, 8)))
        s = self.digits(rng, k) if rng.random() > 0.04 else "0"
        if k >= 4 and s != "0" and rng.random() < 0.15:  # thousands separators, as typed: 1,250,000
            s = f"{int(s):,}"
        if s == "0" or rng.random() < 0.2:
            s += "." + str(self.integer(rng, 1, 99))
        if rng.random() < 0.15:
            s = "-" + s
        return s

    def code(self, rng: np.random.Generator) -> str:
        """A code of letters and digits (a password, a passport number): xk7Rq2, TR-4471-ab."""
        chars = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
        n = int(rng.integers(5, 11))
        s = "".join(chars[int(rng.integers(len(chars)))] for _ in range(n))
        if rng.random() < 0.3:
            s = s[:3] + "-" + s[3:]
        return s

    def date(self, rng: np.random.Generator) -> dt.date:
        start, end = dt.date(2024, 1, 1).toordinal(), dt.date(2039, 12, 31).toordinal()
        while True:
            d = dt.date.fromordinal(int(rng.integers(start, end + 1)))
            if held(f"date:{d.isoformat()}") == (self.split == "heldout"):
                return d

    def clock(self, rng: np.random.Generator) -> str:
        return f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"

    def value(self, rng: np.random.Generator, kind: str) -> str:
        """A value of `kind` (ATTRIBUTES' kinds). In training, 1 in 5 is of a random other kind, so the kind of a
        fact never predicts its value; copying does."""
        if self.split == "train" and rng.random() < 0.2:
            kind = pick(rng, ("word", "phrase", "title", "name", "digits", "code", "place", "day"))
        if kind == "word":
            return pick(rng, _COLOURS + _WORDS) if rng.random() < 0.6 else invented_word(rng, 2, 6, False)
        if kind == "phrase":
            return self.phrase(rng)
        if kind == "title":
            return self.title(rng)
        if kind == "name":
            return self.name(rng)
        if kind == "place":
            return self.place(rng)
        if kind == "day":
            d = self.date(rng)
            return f"{d.day} {d:%B}"
        if kind == "phone":
            return f"0{self.digits(rng, 3)} {self.digits(rng, 3)} {self.digits(rng, 4)}"
        if kind == "email":
            return f"{invented_word(rng, 2, 3, False)}.{self.name(rng).lower()}@{pick(rng, ('mail', 'post', 'web'))}" \
                   f".{pick(rng, ('com', 'org', 'net', 'de', 'fr'))}"
        if kind == "small":
            return str(self.integer(rng, 1, 999))
        if kind == "digits":
            return self.digits(rng, int(rng.integers(4, 9)))
        if kind == "code":
            return self.code(rng)
        if kind == "blood":
            return pick(rng, ("A+", "A-", "B+", "B-", "AB+", "AB-", "O+", "O-"))
        if kind == "plate":
            return f"{self.code(rng)[:3].upper()} {self.digits(rng, 3)}"
        if kind == "flight":
            airline = pick(rng, ("LH", "BA", "AF", "KL", "TK", "QR", "EK", "AZ"))
            return airline + self.digits(rng, int(rng.integers(3, 5)))
        if kind == "street":
            return f"{self.digits(rng, int(rng.integers(1, 4)))} {self.title(rng).replace('The ', '')} Street"
        if kind == "job":
            job = pick(rng, _JOBS)
            return ("an " if job[0] in "aeiou" else "a ") + job
        if kind == "height":
            return f"{self.integer(rng, 140, 205)} cm"
        raise ValueError(f"unknown value kind {kind!r}")


_VOCABS: dict[str, Vocab] = {}


def vocab(split: str) -> Vocab:
    """The (cached) samplers of one split."""
    if split not in _VOCABS:
        _VOCABS[split] = Vocab(split)
    return _VOCABS[split]
