"""Checkers for notebook 07 (safety): write four pieces of the guard yourself, then compare with minichat.safety.

    check_luhn(luhn)                  "4111111111111111" -> True, "4111111111111112" -> False
    check_iban_mod97(iban_ok)         "GB82 WEST 1234 5698 7654 32" -> True, "... 7654 33" -> False
    check_undo_leetspeak(undo_leet)   "h0w t0 m4k3 a b0mb!" -> "how to make a bomb!",  "call 4111 at 10" unchanged
    check_hold_back(hold_back)        hold_back("mail ann@exa", [r"[a-z]{1,20}@[a-z]{1,20}\\.org"]) -> 7

The rules yours must follow, as the library's do:
  * luhn(digits): `digits` is a string of ASCII digits (at least one). From the RIGHT, double every second digit
    (the check digit itself, the last one, is not doubled); a doubled digit above 9 loses 9 (the same as adding its
    two digits); the number is valid when the sum is a multiple of 10 (ISO/IEC 7812-1 Annex B);
  * iban_ok(iban): spaces are ignored and letters may be lower case; the input always has the shape of an IBAN (two
    letters, two digits, 11 to 30 letters or digits). Move the first four characters to the end, replace every letter
    by two digits (A=10, B=11, ..., Z=35), read the result as one integer: valid when it leaves 1 when divided by 97
    (ISO 13616 with ISO 7064 MOD 97-10);
  * undo_leet(text): a *word* is a run of letters, digits, "_" and the symbols @ $ ! | + € £. A word is changed
    only when it holds at least one letter and at least one leet character (0 1 3 4 5 7 8 9 @ $ ! | + € £); then every
    leet character in it becomes its letter (`minichat.safety.normalize.LEET`: 0->o 1->i 3->e 4->a 5->s 7->t 8->b 9->g
    @->a $->s !->i |->l +->t €->e £->l), except the symbols after the word's last letter, digit or "_", which stay
    ("bomb!" stays "bomb!"). Everything else (spaces, other punctuation, numbers without letters) is left as it is;
  * hold_back(text, patterns): how many characters at the end of `text` a streaming filter must hold back: the
    length of text[t:] for the first position t from which the rest of the text is a complete match of one of the
    patterns or could still become one as more text arrives (0 when there is none). The `regex` package can tell:
    `regex.compile(p).fullmatch(text, t, partial=True)` is not None exactly then.

References: `minichat.safety.pii.luhn_ok` and `iban_ok`, `minichat.safety.normalize.undo_leetspeak`, and the
streaming filter's own hold rule (`minichat.safety.stream.Scanner._hold`) run on the exercise's patterns instead of
the PII detectors.
"""
from __future__ import annotations

import string
from collections.abc import Callable, Sequence

import numpy as np
import regex

from minichat.exercises import Feedback, run_cases
from minichat.safety.normalize import undo_leetspeak
from minichat.safety.pii import DETECTORS, iban_ok, luhn_ok
from minichat.safety.stream import Scanner

# -- Luhn -------------------------------------------------------------------------------------------------------------


def _luhn_complete(rng: np.random.Generator, n: int) -> str:
    """A random n-digit number whose last digit is its Luhn check digit (found with the library's check)."""
    body = "".join(rng.choice(list(string.digits), size=n - 1))
    return next(body + d for d in string.digits if luhn_ok(body + d))


def check_luhn(fn: Callable[[str], bool], seed: int = 0) -> Feedback:
    """fn(digits) -> True when the digit string passes the Luhn check."""
    rng = np.random.default_rng(seed)
    cases = [("Visa test card 4111 1111 1111 1111", "4111111111111111"),
             ("one digit changed: ...1112", "4111111111111112"),
             ("Wikipedia's example 79927398713 (11 digits: odd length)", "79927398713"),
             ("79927398710 (wrong check digit)", "79927398710"),
             ("Amex test card (15 digits)", "378282246310005"),
             ("13-digit Visa test number", "4222222222222"),
             ("'59': 5 doubled is 10, which counts 1", "59"),
             ("'18': 1 doubled is 2", "18"),
             ("'5' alone (nothing doubled)", "5"),
             ("'0'", "0"),
             ("two digits swapped: 4111...1111 -> 1411...1111", "1411111111111111")]
    for k in range(12):  # odd and even lengths; every other one valid, the rest one digit off
        n = int(rng.integers(2, 20))
        s = _luhn_complete(rng, n)
        if k % 2:
            i = int(rng.integers(n))
            s = s[:i] + str((int(s[i]) + int(rng.integers(1, 10))) % 10) + s[i + 1:]
        cases.append((f"random {n} digits {s}", s))
    return run_cases("luhn", fn, [(name, (s,), luhn_ok(s)) for name, s in cases], same=_same_bool)


def _same_bool(got: object, expected: bool) -> bool:
    return isinstance(got, (bool, np.bool_)) and bool(got) == expected


# -- IBAN mod-97 ------------------------------------------------------------------------------------------------------


def _iban_with_check(country: str, bban: str) -> str:
    """The IBAN with correct check digits: 98 - (BBAN + country + "00" as a number) mod 97."""
    number = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - number % 97:02d}{bban}"


def _grouped(iban: str) -> str:
    return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))


def check_iban_mod97(fn: Callable[[str], bool], seed: int = 0) -> Feedback:
    """fn(iban) -> True when the IBAN passes the mod-97 check."""
    rng = np.random.default_rng(seed)
    cases = [("GB82 WEST 1234 5698 7654 32 (the ISO 13616 example)", "GB82 WEST 1234 5698 7654 32"),
             ("the last digit changed", "GB82 WEST 1234 5698 7654 33"),
             ("check digits swapped: GB28", "GB28 WEST 1234 5698 7654 32"),
             ("without spaces", "GB82WEST12345698765432"),
             ("lower case", "gb82 west 1234 5698 7654 32"),
             ("DE89 3704 0044 0532 0130 00", "DE89 3704 0044 0532 0130 00"),
             ("FR14 2004 1010 0505 0001 3M02 606 (a letter inside)", "FR14 2004 1010 0505 0001 3M02 606"),
             ("NL91 ABNA 0417 1643 00", "NL91 ABNA 0417 1643 00"),
             ("NL91 ABNA 0417 1643 01", "NL91 ABNA 0417 1643 01")]
    alphabet = list(string.ascii_uppercase + string.digits * 3)
    for k in range(12):
        country = "".join(rng.choice(list(string.ascii_uppercase), size=2))
        iban = _iban_with_check(country, "".join(rng.choice(alphabet, size=int(rng.integers(11, 31)))))
        if k % 2:  # change one character of the account part
            i = int(rng.integers(4, len(iban)))
            iban = iban[:i] + ("7" if iban[i] != "7" else "Q") + iban[i + 1:]
        iban = _grouped(iban) if k % 3 else iban
        cases.append((f"random {iban}", iban))
    return run_cases("iban_mod97", fn, [(name, (s,), iban_ok(s)) for name, s in cases], same=_same_bool)


# -- leetspeak --------------------------------------------------------------------------------------------------------


def check_undo_leetspeak(fn: Callable[[str], str], seed: int = 0) -> Feedback:
    """fn(text) -> text with leetspeak undone inside words that mix letters and leet characters."""
    rng = np.random.default_rng(seed)
    texts = [("the example", "h0w t0 m4k3 a b0mb!"),
             ("numbers alone stay numbers", "call 4111 1111 at 10:30 in 1984"),
             ("numbers beside words stay numbers too", "meet at 10:30-ish or 5-ish"),
             ("a word's final '!' stays", "hello! w0w!!"),
             ("symbols inside a word are leet", "p@$$w0rd and $h00t"),
             ("'c++' keeps its symbols: they follow the last letter", "c++ and c#"),
             ("'2' and '6' are not leet", "r2d2 and c3p0 at 6pm"),
             ("other punctuation splits words", "b0mb-m4king, m3th."),
             ("an e-mail address is mangled too (normalised text is only for matching)", "ann@example.org"),
             ("text without leet", "how do I kill a python process?"),
             ("empty text", "")]
    alphabet = list("abdehmost ") + list("0134578 9@$!|+") + list("26.,-") + ["  "]
    for k in range(10):
        texts.append((f"random #{k}", "".join(rng.choice(alphabet, size=int(rng.integers(3, 30))))))
    return run_cases("undo_leetspeak", fn, [(f"{name}: {t!r}", (t,), undo_leetspeak(t)) for name, t in texts])


# -- streaming hold-back ----------------------------------------------------------------------------------------------


def reference_hold_back(text: str, patterns: Sequence[str]) -> int:
    """The streaming filter's hold rule on these patterns: a Scanner whose combined pattern is theirs (the
    constructor is skipped because it always builds the PII detectors and output rules)."""
    scanner = Scanner.__new__(Scanner)
    scanner.pattern = regex.compile("|".join(f"(?:{p})" for p in patterns))
    scanner._checked = 0
    return len(text) - scanner._hold(text, 0)


EMAIL = r"[a-z]{1,20}@[a-z]{1,20}\.(?:org|com)"
PHONE = r"\+\d{2}(?: \d{2,4}){2,3}"
STOP = r"bleach[a-z ]{0,20}ammonia"
REAL = [DETECTORS["EMAIL"][0], DETECTORS["CARD"][0], DETECTORS["PHONE"][0]]


def check_hold_back(fn: Callable[[str, list[str]], int], seed: int = 0) -> Feedback:
    """fn(text, patterns) -> how many characters at the end of text must be held back."""
    rng = np.random.default_rng(seed)
    cases = [("an address on its way", "mail ann@exa", [EMAIL]),
             ("nothing can start a match", "mail 123", [EMAIL]),
             ("a complete match at the very end is still held (it could grow)", "ann@x.org", [EMAIL]),
             ("...and released once a character settles it", "ann@x.org.", [EMAIL]),
             ("a match that ended earlier does not hold the rest", "ann@x.org and b", [EMAIL]),
             ("a phone number spans words", "call +44 20 79", [PHONE]),
             ("two patterns: the earliest start wins", "call +44 20 7946 or ann", [PHONE, EMAIL]),
             ("a stop rule with a gap", "mix the bleach with amm", [STOP]),
             ("empty text", "", [EMAIL]),
             ("the real e-mail, card and phone detectors: a card arriving", "Card 4111 1111 11", REAL),
             ("the real detectors: a finished sentence", "Card 4111 1111 1111 1111 is on file.", REAL),
             ("the real detectors: the last word could be an e-mail's start", "Write to ann", REAL)]
    words = ["ann@x.org", "bob@y.com", "+44 20 7946", "bleach and ammonia", "mix", "the", "call", "at", "1234", "."]
    for k in range(10):
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 6))))
        text = text[: int(rng.integers(max(1, len(text) // 2), len(text) + 1))]  # cut mid-word, as a stream does
        pats = [p for p in (EMAIL, PHONE, STOP) if rng.random() < 0.7] or [EMAIL]
        cases.append((f"random {text!r}", text, pats))
    return run_cases("hold_back", fn, [(f"{name} (patterns: {len(p)})", (t, list(p)), reference_hold_back(t, p))
                                       for name, t, p in cases], same=_same_int)


def _same_int(got: object, expected: int) -> bool:
    return isinstance(got, (int, np.integer)) and not isinstance(got, bool) and int(got) == expected
