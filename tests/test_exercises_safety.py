"""The safety exercises' checkers (notebook 07): right answers pass, typical mistakes fail, stubs are 'not done yet'.

The right answers are written here from the specifications (ISO/IEC 7812 Luhn, ISO 13616 mod-97, the leetspeak rule as
the checker states it, the hold-back rule), not by calling minichat.safety; Luhn and mod-97 are also compared with
python-stdnum when it is installed, and the leetspeak answer with the library on random text, so a checker whose
reference drifted from the standard or from its own docstring would fail here.
"""
import re
import string

import numpy as np
import pytest
import regex

from conftest import require_peer
from minichat.exercises.safety import (EMAIL, PHONE, REAL, STOP, check_hold_back, check_iban_mod97, check_luhn,
                                       check_undo_leetspeak, reference_hold_back)
from minichat.safety.normalize import undo_leetspeak

# -- independent right answers ---------------------------------------------------------------------------------------


def luhn_right(digits):
    total = 0
    for i, ch in enumerate(digits[::-1]):
        d = int(ch)
        if i % 2:  # every second digit from the right, the check digit (i = 0) untouched
            d = sum(divmod(2 * d, 10))  # 2d's two digits: 16 -> 1 + 6 = 7 = 16 - 9
        total += d
    return total % 10 == 0


def iban_right(iban):
    s = iban.replace(" ", "").upper()
    s = s[4:] + s[:4]
    number = "".join(str(ord(c) - ord("A") + 10) if c.isalpha() else c for c in s)
    return int(number) % 97 == 1


LEET_TABLE = dict(zip("01345789@$!|+€£", "oieastbgasiltel"))
WORD = re.compile(r"[\w@$!|+€£]+")


def leet_right(text):
    def fix(m):
        word = m.group()
        if not (any(c.isalpha() for c in word) and any(c in LEET_TABLE for c in word)):
            return word
        end = max(i for i, c in enumerate(word) if c.isalnum() or c == "_") + 1  # symbols after it stay
        return "".join(LEET_TABLE.get(c, c) for c in word[:end]) + word[end:]
    return WORD.sub(fix, text)


def hold_back_right(text, patterns):
    compiled = [regex.compile(p) for p in patterns]
    for t in range(len(text)):
        if any(p.fullmatch(text, t, partial=True) is not None for p in compiled):
            return len(text) - t
    return 0


# -- the right answers pass, and agree with outside references -------------------------------------------------------


def test_correct_answers_pass():
    assert check_luhn(luhn_right).passed
    assert check_iban_mod97(iban_right).passed
    assert check_undo_leetspeak(leet_right).passed
    assert check_hold_back(hold_back_right).passed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_other_seeds_pass_too(seed):
    for check, fn in ((check_luhn, luhn_right), (check_iban_mod97, iban_right), (check_undo_leetspeak, leet_right),
                      (check_hold_back, hold_back_right)):
        fb = check(fn, seed=seed)
        assert fb.passed, str(fb)


def test_hand_worked_values():
    # Luhn by hand, 79927398713 from the right: 3 +(1*2) +7 +(8*2-9) +3 +(7*2-9) +2 +(9*2-9) +9 +(9*2-9) +7 = 70
    assert luhn_right("79927398713") and not luhn_right("79927398710")
    assert luhn_right("4111111111111111") and not luhn_right("4111111111111112")
    # GB82 WEST ... -> WEST12345698765432GB82 -> 3214282912345698765432161182, which is 1 mod 97
    assert int("3214282912345698765432161182") % 97 == 1 and iban_right("GB82 WEST 1234 5698 7654 32")
    assert leet_right("h0w t0 m4k3 a b0mb!") == "how to make a bomb!"
    assert leet_right("call 4111 at 10:30") == "call 4111 at 10:30"
    assert hold_back_right("mail ann@exa", [EMAIL]) == 7 == reference_hold_back("mail ann@exa", [EMAIL])
    assert hold_back_right("call +44 20 79", [PHONE]) == len("+44 20 79")
    assert hold_back_right("ann@x.org and b", [EMAIL]) == 1
    assert hold_back_right("mix the bleach with amm", [STOP]) == len("bleach with amm")


def test_luhn_and_mod97_agree_with_stdnum():
    luhn = require_peer("stdnum.luhn")
    mod_97_10 = require_peer("stdnum.iso7064.mod_97_10")
    rng = np.random.default_rng(7)
    for _ in range(500):
        digits = "".join(rng.choice(list(string.digits), size=int(rng.integers(1, 20))))
        assert luhn_right(digits) == luhn.is_valid(digits)
    for _ in range(300):
        iban = "".join(rng.choice(list(string.ascii_uppercase), size=2)) + "".join(
            rng.choice(list(string.digits), size=2)) + "".join(
            rng.choice(list(string.ascii_uppercase + string.digits), size=int(rng.integers(11, 31))))
        assert iban_right(iban) == mod_97_10.is_valid(iban[4:] + iban[:4])


def test_the_stated_leet_rule_is_the_library_rule():
    """The checker's docstring is the student's only specification: it must say what the library does."""
    rng = np.random.default_rng(0)
    alphabet = list("abcdeghlmostxyz _-.,:;#?'") + list("0123456789@$!|+€£é")
    for _ in range(3000):
        text = "".join(rng.choice(alphabet, size=int(rng.integers(0, 25))))
        assert leet_right(text) == undo_leetspeak(text), text


def test_the_hold_back_reference_is_the_stream_filters():
    """The reference (the library's Scanner on other patterns) holds exactly what a real filter holds back."""
    from minichat.safety import Guard

    f = Guard().output_filter()
    fed, compared = "", 0
    for piece in ["Write to a", "nn@exa", "mple.org or call +44 2", "0 7946 0958. Card 4111 11", "11 1111 1111 ok"]:
        fed += piece
        f.feed(piece)
        held = len(f.text) - f.pos
        if held:  # nothing found inside the held part: it is exactly the hold of the detectors (no output rule
            assert held == reference_hold_back(fed, REAL)  # could start in these words)
            compared += 1
    assert compared == 5


# -- typical mistakes are caught -------------------------------------------------------------------------------------


def test_typical_luhn_mistakes_fail():
    def from_the_left(digits):  # doubles the 1st, 3rd, ... digit from the left: right only for even lengths
        total = 0
        for i, ch in enumerate(digits):
            d = int(ch)
            if i % 2 == 0:
                d = 2 * d - 9 if d > 4 else 2 * d
            total += d
        return total % 10 == 0
    assert not check_luhn(from_the_left).passed

    def doubles_the_check_digit(digits):  # starts doubling at the last digit
        return luhn_right(digits + "0")
    assert not check_luhn(doubles_the_check_digit).passed

    def no_minus_nine(digits):
        return sum(int(c) * (2 if i % 2 else 1) for i, c in enumerate(digits[::-1])) % 10 == 0
    assert not check_luhn(no_minus_nine).passed

    def returns_the_sum(digits):  # not a bool
        return sum(int(c) for c in digits)
    assert not check_luhn(returns_the_sum).passed


def test_typical_iban_mistakes_fail():
    def no_rotation(iban):
        s = iban.replace(" ", "").upper()
        return int("".join(str(int(c, 36)) for c in s)) % 97 == 1
    assert not check_iban_mod97(no_rotation).passed

    def a_is_one(iban):  # A=1 ... Z=26
        s = iban.replace(" ", "").upper()
        s = s[4:] + s[:4]
        return int("".join(str(ord(c) - 64) if c.isalpha() else c for c in s)) % 97 == 1
    assert not check_iban_mod97(a_is_one).passed

    def remainder_zero(iban):
        s = iban.replace(" ", "").upper()
        s = s[4:] + s[:4]
        return int("".join(str(int(c, 36)) for c in s)) % 97 == 0
    assert not check_iban_mod97(remainder_zero).passed

    def upper_case_only(iban):  # int(c, 36) would accept lower case; this does not
        s = iban.replace(" ", "")
        s = s[4:] + s[:4]
        return int("".join(str(ord(c) - 55) if c.isalpha() else c for c in s)) % 97 == 1
    assert not check_iban_mod97(upper_case_only).passed


def test_typical_leet_mistakes_fail():
    def everywhere(text):  # numbers and sentence punctuation too
        return "".join(LEET_TABLE.get(c, c) for c in text)
    assert not check_undo_leetspeak(everywhere).passed

    def whole_word(text):  # "bomb!" -> "bombi"
        return WORD.sub(lambda m: "".join(LEET_TABLE.get(c, c) for c in m.group())
                        if any(c.isalpha() for c in m.group()) else m.group(), text)
    assert not check_undo_leetspeak(whole_word).passed

    def space_split(text):  # words split at spaces only: "at 10:30-ish" changes "10" and "30" too
        def fix(word):
            if not (any(c.isalpha() for c in word) and any(c in LEET_TABLE for c in word)):
                return word
            end = max(i for i, c in enumerate(word) if c.isalnum() or c == "_") + 1
            return "".join(LEET_TABLE.get(c, c) for c in word[:end]) + word[end:]
        return " ".join(fix(w) for w in text.split(" "))
    assert not check_undo_leetspeak(space_split).passed


def test_typical_hold_back_mistakes_fail():
    def match_not_fullmatch(text, patterns):  # a complete match that ended earlier holds everything after it
        for t in range(len(text)):
            if any(regex.compile(p).match(text, t, partial=True) for p in patterns):
                return len(text) - t
        return 0
    assert not check_hold_back(match_not_fullmatch).passed

    def last_word_only(text, patterns):  # a phone number or a stop phrase spans several words
        word = text.rsplit(" ", 1)[-1]
        return hold_back_right(word, patterns)
    assert not check_hold_back(last_word_only).passed

    def complete_only(text, patterns):  # forgets the partial matches
        for t in range(len(text)):
            if any(regex.compile(p).fullmatch(text, t) for p in patterns):
                return len(text) - t
        return 0
    assert not check_hold_back(complete_only).passed

    def fixed_window(text, patterns):  # a safe but wasteful constant: the longest match any pattern allows
        return min(len(text), 50)
    assert not check_hold_back(fixed_window).passed


def test_a_crash_is_feedback_not_an_exception():
    def crashes(digits):
        return int(digits[20]) == 0
    fb = check_luhn(crashes)
    assert not fb.passed and not fb.not_done and "IndexError" in str(fb)


def test_stubs_are_not_done():
    def stub(*args):
        raise NotImplementedError

    def empty(*args):
        pass
    for check in (check_luhn, check_iban_mod97, check_hold_back):
        for fn in (stub, empty):
            fb = check(fn)
            assert fb.not_done and not fb.passed and "not done yet" in str(fb)
    fb = check_undo_leetspeak(stub)
    assert fb.not_done and "not done yet" in str(fb)
