"""The three sockets where tools, safety and memory plug into the chat loop, with do-nothing defaults.

The chat layer states what it needs as `Protocol`s (structural types): a tools, safety or memory implementation
satisfies them by having the right methods, without importing anything from `minichat.chat`. That keeps the
dependency arrows pointing one way (docs/design.md §2: those packages know only strings and config) and lets each
of them arrive later without changing the loop's shape.

    Tools   schemas() -> JSON schemas shown to the model;  run(name, arguments) -> result text (raise to report failure)
    Guard   instructions() -> text steering the model;  check_input(text) -> verdict;  output_filter() -> a per-reply
            stream filter whose feed(text) -> (text safe to show now, verdict or None) and flush() at the end
    Memory  retrieve(query, k) -> snippets relevant to the message

A verdict is any object with `allowed: bool`, `action: str`, `policy: str`, `reason: str` (and, for a refused input,
`reply: str`, the text to answer with instead).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Tools(Protocol):
    def schemas(self) -> Sequence[Mapping[str, Any]]: ...

    def run(self, name: str, arguments: Mapping[str, Any]) -> str: ...


class Verdict(Protocol):
    allowed: bool
    action: str
    policy: str
    reason: str


class OutputFilter(Protocol):
    def feed(self, text: str) -> tuple[str, Verdict | None]: ...

    def flush(self) -> tuple[str, Verdict | None]: ...


class Guard(Protocol):
    def instructions(self) -> str: ...

    def check_input(self, text: str) -> Verdict: ...

    def output_filter(self) -> OutputFilter: ...


class Memory(Protocol):
    def retrieve(self, query: str, k: int) -> Sequence[str]: ...


# -- the defaults: nothing to call, nothing blocked, nothing remembered --------------------------------------------------

class NoTools:
    def schemas(self) -> Sequence[Mapping[str, Any]]:
        return ()

    def run(self, name: str, arguments: Mapping[str, Any]) -> str:
        raise LookupError(f"no tool named {name!r} is available")


@dataclass(frozen=True)
class Allow:
    allowed: bool = True
    action: str = "allow"
    policy: str = "none"
    reason: str = ""
    reply: str = ""


class PassThrough:
    def feed(self, text: str) -> tuple[str, Verdict | None]:
        return text, None

    def flush(self) -> tuple[str, Verdict | None]:
        return "", None


class NoGuard:
    def instructions(self) -> str:
        return ""

    def check_input(self, text: str) -> Verdict:
        return Allow()

    def output_filter(self) -> OutputFilter:
        return PassThrough()


class NoMemory:
    def retrieve(self, query: str, k: int) -> Sequence[str]:
        return ()
