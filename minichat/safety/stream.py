"""The output layer on the stream: a hold-back filter that never lets a blocked span reach the caller.

The model's reply arrives a few characters at a time. Scanning each piece alone would miss an e-mail address split
across two tokens, and scanning after showing (what NeMo Guardrails does by default) lets blocked text flash on the
screen. So the filter keeps a buffer and releases text only once no pattern can still change its mind about it:

    buffer   "... write to ann@exa"        the e-mail pattern could still match from "ann": hold from there
    buffer   "... write to ann@example.org. Then"   settled: emit "... write to <EMAIL_1>. "; hold "Then"

*Settled* is exact, not a guess with a fixed window: a position t is settled when no way of matching the combined
pattern from t reaches the end of the buffer (`regex`'s `fullmatch(text, t, partial=True)` returns None), because
then no future text can change what happens at t. Everything before the first unsettled position is released; a
match that starts there is redacted, or stops the reply. So the filter holds back only what the longest pattern
that is still alive needs: usually the last word, a whole card number while its digits arrive, a PEM block until
its END line. Every quantifier in the patterns is bounded, so the hold is bounded too.

The streaming filter and the one-shot `scan_text` share this loop (`Scanner.step`), which is why, for any way of
cutting the reply into pieces, the streamed output equals the one-shot output (a hypothesis test checks it).

What it leaves out: the input classifier is not run on the reply (it would need whole sentences held back), and
an output rule sees the raw reply, not its normalised form (the model is not trying to spell around the filter).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import regex

from minichat.safety.pii import DETECTORS, Placeholders
from minichat.safety.rules import OUTPUT_RULES

STOP_NOTE = " [reply stopped by the safety filter]"


def _build(pii_only: bool) -> tuple[regex.Pattern, list[tuple[str, str, regex.Pattern, Callable[[str], bool] | None]]]:
    """One alternation of every detector and output rule (to find where a candidate may start, and how far a
    match may still reach), plus each of them alone, in order, as (name, category, pattern, check)."""
    kinds = []
    for kind, (pattern, check) in DETECTORS.items():
        category = "secrets" if kind in ("SECRET", "PRIVATE_KEY") else "personal_data"
        kinds.append((kind, category, regex.compile(pattern), check))
    if not pii_only:
        for category, name, pattern in OUTPUT_RULES:
            kinds.append((name, category, regex.compile(f"(?i:{pattern})"), None))
    return regex.compile("|".join(f"(?:{k[2].pattern})" for k in kinds)), kinds


_PATTERNS = {flag: _build(flag) for flag in (False, True)}


class Scanner:
    """The scanning loop shared by the stream and the one-shot path.

    `step(text, pos, final)` looks at `text[pos:]` and returns (settled_end, findings): every position before
    settled_end is decided, and findings are (start, end, kind) matches inside it that passed their check.
    """

    def __init__(self, pii_only: bool = False) -> None:
        self.pattern, self.kinds = _PATTERNS[pii_only]
        self.category = {name: category for name, category, _, _ in self.kinds}
        self._checked = 0  # every position below this one is known to be settled (stays true as text is added)

    def _hold(self, text: str, pos: int) -> int:
        """The first position >= pos from which some match attempt reaches the end of `text`."""
        t = max(pos, self._checked)
        while t < len(text) and self.pattern.fullmatch(text, t, partial=True) is None:
            t += 1
        self._checked = t
        return t

    def _accept(self, text: str, start: int) -> tuple[int, str] | None:
        """At a candidate start: the first detector or rule (in order) that matches there and passes its check."""
        for name, _, pattern, check in self.kinds:
            m = pattern.match(text, start)
            if m is not None and m.end() > start and (check is None or check(m.group())):
                return m.end(), name
        return None

    def step(self, text: str, pos: int, final: bool) -> tuple[int, list[tuple[int, int, str]]]:
        findings = []
        hold = len(text) if final else self._hold(text, pos)
        while pos < hold:
            m = self.pattern.search(text, pos)
            if m is None or m.start() >= hold:
                return hold, findings
            got = self._accept(text, m.start())
            if got is None:  # a look-alike (a number failing Luhn, say): the next candidate may start inside it
                pos = m.start() + 1
                continue
            findings.append((m.start(), got[0], got[1]))
            pos = got[0]
            if not final and pos > hold:
                hold = self._hold(text, pos)
        return max(pos, hold), findings

    def spans(self, text: str) -> Iterator[tuple[int, int, str]]:
        """Confirmed (start, end, kind) in a complete text."""
        yield from self.step(text, 0, final=True)[1]


class StreamFilter:
    """One reply's filter: `feed(piece)` -> (text safe to show now, verdict or None); `flush()` at the end.

    `decide(category, kind)` returns a verdict-making callable's answer: the guard passes one that looks the
    category up in the policy. Redacted spans become stable placeholders; a span whose category is refused stops
    the reply: the text before it is shown, then STOP_NOTE, and nothing after.
    """

    def __init__(self, decide: Callable[[str, str], object], pii_only: bool = False) -> None:
        self.scanner = Scanner(pii_only)
        self.decide = decide  # (category, rule or PII kind) -> verdict with .action
        self.names = Placeholders()
        self.text = ""  # everything fed so far
        self.pos = 0  # text[:pos] has been released (as is, redacted, or cut by a stop)
        self.stopped = False

    def feed(self, piece: str) -> tuple[str, object | None]:
        if not isinstance(piece, str):
            raise TypeError(f"feed() needs a str piece of the reply, not {type(piece).__name__}")
        if self.stopped:
            return "", None
        self.text += piece
        return self._release(final=False)

    def flush(self) -> tuple[str, object | None]:
        if self.stopped:
            return "", None
        return self._release(final=True)

    def _release(self, final: bool) -> tuple[str, object | None]:
        end, findings = self.scanner.step(self.text, self.pos, final)
        out, verdict = [], None
        for s, e, kind in findings:
            v = self.decide(self.scanner.category[kind], kind)
            action = getattr(v, "action", "allow")
            if action in ("allow", "warn"):
                out.append(self.text[self.pos:e])
            elif action == "redact":
                out.append(self.text[self.pos:s] + self.names(kind, self.text[s:e]))
            else:  # refuse: show what came before, then stop for good
                out.append(self.text[self.pos:s] + STOP_NOTE)
                self.pos, self.stopped = len(self.text), True
                return "".join(out), v
            self.pos = e
            if verdict is None or action == "redact":
                verdict = v
        out.append(self.text[self.pos:end])
        self.pos = max(self.pos, end)
        return "".join(out), verdict


def scan_text(text: str, decide: Callable[[str, str], object], pii_only: bool = False) -> tuple[str, object | None]:
    """The non-streaming twin: the whole reply at once, through the same loop."""
    f = StreamFilter(decide, pii_only)
    f.text = text
    return f._release(final=True)
