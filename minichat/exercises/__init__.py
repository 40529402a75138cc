"""Checkers for the notebooks' exercises: your function against the library's own implementation.

Each checker runs a student's function on hand-made and random inputs, compares with what minichat computes, and
returns a `Feedback` that prints one line per case (and renders as a small table in Jupyter). A checker never raises
on a wrong answer, so a notebook keeps running; `Feedback.passed` says whether everything matched. An exercise left as
`...`/`pass` (returning None) or raising NotImplementedError is reported as "not done yet".

One module per notebook: `chat` (00), `tokenization` (01), `transformer` (02), `sampling` (03), `training` (04),
`memory` (05), `tools` (06), `safety` (07), `serving` (08).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Feedback:
    """The outcome of one checker: which cases passed, and for a failing case what was expected."""

    exercise: str
    cases: list[tuple[str, bool, str]] = field(default_factory=list)  # (case name, passed, detail)
    not_done: bool = False

    @property
    def passed(self) -> bool:
        return not self.not_done and bool(self.cases) and all(ok for _, ok, _ in self.cases)

    def __str__(self) -> str:
        if self.not_done:
            return f"{self.exercise}: not done yet — fill in the function and run the check again"
        lines = [f"{self.exercise}: {'all cases pass' if self.passed else 'some cases fail'}"]
        lines += [f"  {'ok  ' if ok else 'FAIL'} {name}{'' if ok else ': ' + detail}" for name, ok, detail in self.cases]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(str(self)) + "</pre>"


def run_cases(exercise: str, student: Callable[..., Any], cases: list[tuple[str, tuple, Any]],
              same: Callable[[Any, Any], bool] = lambda a, b: a == b) -> Feedback:
    """Call `student(*args)` for each (name, args, expected) and compare with `same`."""
    fb = Feedback(exercise)
    for name, args, expected in cases:
        try:
            got = student(*args)
        except NotImplementedError:
            fb.not_done = True
            return fb
        except Exception as e:  # a student's bug is feedback, not a crash
            fb.cases.append((name, False, f"raised {type(e).__name__}: {e}"))
            continue
        if got is None and expected is not None:
            fb.not_done = True
            return fb
        ok = same(got, expected)
        fb.cases.append((name, ok, "" if ok else f"expected {_short(expected)}, got {_short(got)}"))
    return fb


def _short(x: Any, n: int = 120) -> str:
    s = repr(x)
    return s if len(s) <= n else s[: n - 3] + "..."
