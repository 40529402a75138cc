"""Personal data and secrets: find them in text, check the ones that carry a checksum, replace them with placeholders.

Each detector is a regular expression that proposes candidates and, where the format has one, a check that confirms
them, so that a number which only looks like a card is left alone:

    EMAIL        local@domain.tld                                      (RFC 5321 lengths: 64 local, 63 per label)
    PHONE        +44 20 7946 0958, (555) 010-0199, 555-010-0199, 020 7946 0958     8-15 digits (ITU-T E.164)
    CARD         13-19 digits, spaces or dashes allowed                 Luhn check (ISO/IEC 7812-1 Annex B)
    IBAN         GB82 WEST 1234 5698 7654 32                            mod-97 == 1 (ISO 13616 / ISO 7064)
    SECRET       sk-..., AKIA..., ghp_..., xox?-..., AIza...            the providers' documented key prefixes
    PRIVATE_KEY  -----BEGIN ... PRIVATE KEY----- ... -----END ...       PEM (RFC 7468) armour
    IP           IPv4 dotted quads and IPv6 (checked by `ipaddress`)

Every quantifier is bounded, which is what lets the streaming filter (`stream.py`) decide how much to hold back.
`redact(text)` gives the text with stable placeholders: the same address twice becomes `<EMAIL_1>` twice, a second
address `<EMAIL_2>`.

What it leaves out: names and postal addresses (they need a named-entity model), national ID numbers, phone numbers
written without any separator, and keys without a known prefix (a generic high-entropy detector has too many false
positives on hashes and ids).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Callable

import regex


def luhn_ok(digits: str) -> bool:
    """The Luhn check: from the right, double every second digit (minus 9 if over 9); the sum must end in 0.

    >>> luhn_ok("4111111111111111"), luhn_ok("4111111111111112")
    (True, False)
    """
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to numbers (A=10 ... Z=35); mod 97 must be 1.

    >>> iban_ok("GB82 WEST 1234 5698 7654 32"), iban_ok("GB82 WEST 1234 5698 7654 33")
    (True, False)
    """
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isascii() or not s.isalnum() or not s[:2].isalpha() or not s[2:4].isdigit():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def _card_ok(s: str) -> bool:
    d = _digits(s)
    return 13 <= len(d) <= 19 and luhn_ok(d)


def _phone_ok(s: str) -> bool:
    return 8 <= len(_digits(s)) <= 15


def _ip_ok(s: str) -> bool:
    try:
        ip = ipaddress.ip_address(s)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_loopback)  # 127.0.0.1 and 0.0.0.0 are examples, not anybody's address


def _always(s: str) -> bool:
    return True


# kind -> (pattern, check). The order matters where two could match at the same place: a card before a phone.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
DETECTORS: dict[str, tuple[str, Callable[[str], bool]]] = {
    "PRIVATE_KEY": (r"-----BEGIN (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----[\s\S]{0,8000}?"
                    r"-----END (?:[A-Z0-9]{1,12} ){0,3}PRIVATE KEY-----", _always),
    "SECRET": (r"(?<![\w-])(?:sk-(?:proj-|ant-|live_|test_)?[A-Za-z0-9_\-]{20,200}|AKIA[0-9A-Z]{16}"
               r"|gh[pousr]_[A-Za-z0-9]{36,80}|xox[abprs]-[A-Za-z0-9\-]{10,100}|AIza[0-9A-Za-z_\-]{35})(?![\w-])",
               _always),
    "EMAIL": (r"(?<![\w.+\-])[\w.+\-]{1,64}@[\w\-]{1,63}(?:\.[\w\-]{1,63}){1,6}", _always),
    "IBAN": (r"(?<!\w)[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?!\w)", iban_ok),
    "CARD": (r"(?<![\w\-])\d(?:[ \-]?\d){12,18}(?![\w\-]|[ \-]\d)", _card_ok),
    "PHONE": (r"(?<![\w+\-])(?:\+\d{1,3}(?:[ .\-]?\(?\d{1,4}\)?){2,5}|\(\d{3}\) ?\d{3}[ .\-]\d{4}"
              r"|\d{3}[.\-]\d{3}[.\-]\d{4}|0\d{2,4}[ \-]\d{3,4}[ \-]?\d{3,4})(?![\w\-]|[ .\-]\d)", _phone_ok),
    "IP": (r"(?<![\w.:])(?:" + _OCTET + r"\.){3}" + _OCTET + r"(?!\w|\.\d)"
           r"|(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){1,7}(?::|(?::[0-9A-Fa-f]{1,4}){1,7}|[0-9A-Fa-f]{1,4})(?![\w:])", _ip_ok),
}
PLACEHOLDER = regex.compile(r"<(?:" + "|".join(DETECTORS) + r")_\d+>")


class Placeholders:
    """Stable placeholders: the same value always gets the same `<KIND_n>` within one object's lifetime."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], str] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, kind: str, value: str) -> str:
        key = (kind, value.replace(" ", "").replace("-", "").lower())  # "4111 1111..." and "4111-1111..." agree
        if key not in self.seen:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seen[key] = f"<{kind}_{self.counts[kind]}>"
        return self.seen[key]


def find_pii(text: str) -> list[tuple[int, int, str]]:
    """Confirmed (start, end, kind) spans, left to right, not overlapping (the same rules as the streaming filter)."""
    from minichat.safety.stream import Scanner  # the one scanning loop lives there; imported late to avoid a cycle
    return [(s, e, kind) for s, e, kind in Scanner(pii_only=True).spans(text)]


def redact(text: str, placeholders: Placeholders | None = None) -> tuple[str, list[str]]:
    """(text with every confirmed span replaced by its placeholder, the kinds found in order)."""
    names = placeholders or Placeholders()
    out, kinds, pos = [], [], 0
    for s, e, kind in find_pii(text):
        out.append(text[pos:s] + names(kind, text[s:e]))
        kinds.append(kind)
        pos = e
    out.append(text[pos:])
    return "".join(out), kinds
