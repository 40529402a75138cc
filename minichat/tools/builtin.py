"""The four built-in tools, exactly as the built-in model was trained to call them, real and offline.

    calculator(expression)   "347 * 29"          -> "10063"
    get_time()               (timezone optional)  -> "Thursday, 17 April 2031, 14:05"
    search_notes(query)      "dentist"            -> "1 note found:\\n- Dentist appointment with Dr. Okafor on ..."
                                                     or "No notes found for 'dentist'."
    remember(fact)           "The user's ..."     -> "Saved to memory: The user's ..."

The names, argument names, descriptions (`BUILTIN_TOOL_SCHEMAS`, listed in the system prompt) and result formats
are the training corpus's; this module owns them and the corpus is to import them from here, so the tools the
model learned and the tools it calls cannot drift apart. A failure is an exception; the chat reports it to the model
as "error: <ExceptionName>: <message>" (the corpus has "error: ZeroDivisionError: division by zero").

Two departures the listing does not show: get_time takes an optional IANA `timezone` ("Asia/Tokyo"; the evaluation
already accepts it), and search_notes results name the file a note came from when `show_files` is on (off by default:
the model was trained on bare notes and copies what follows "- ": 90 % of held-out notes answers keep every detail
with bare notes, 58 % with file names; docs/tools.md).

What it leaves out: web search, code execution, anything that needs the network.
"""
from __future__ import annotations

import datetime as dt
import os
import zoneinfo
from collections.abc import Callable
from pathlib import Path

from minichat.tools.calculator import calculator as _calculate_text
from minichat.tools.calculator import calculate, format_number  # noqa: F401  (re-exported for the corpus)
from minichat.tools.notes import NotesIndex
from minichat.tools.schema import Tool, tool

BUILTIN_TOOL_SCHEMAS: tuple[dict, ...] = (
    {"name": "calculator", "description": "Evaluate an arithmetic expression (+ - * / ** and parentheses).",
     "parameters": {"type": "object", "properties": {"expression": {"type": "string"}}, "required": ["expression"]}},
    {"name": "get_time", "description": "The current local date and time.",
     "parameters": {"type": "object", "properties": {}}},
    {"name": "search_notes", "description": "Search the user's notes.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}},
    {"name": "remember", "description": "Save a fact about the user to long-term memory.",
     "parameters": {"type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"]}},
)
TOOL_NAMES = tuple(s["name"] for s in BUILTIN_TOOL_SCHEMAS)
_SCHEMA = {s["name"]: s for s in BUILTIN_TOOL_SCHEMAS}

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


# -- result formats (the corpus writes its tool messages with these) ---------------------------------------------------

def calculator_result(expression: str) -> str:
    return _calculate_text(expression)


def long_date(d: dt.date) -> str:
    """Thursday, 17 April 2031"""
    return f"{WEEKDAYS[d.weekday()]}, {d.day} {MONTHS[d.month - 1]} {d.year}"


def time_result(when: dt.datetime) -> str:
    """Thursday, 17 April 2031, 14:05"""
    return f"{long_date(when.date())}, {when:%H:%M}"


def notes_result(query: str, notes: list[str]) -> str:
    if not notes:
        return f"No notes found for '{query}'."
    return f"{len(notes)} note{'s' if len(notes) > 1 else ''} found:\n" + "\n".join(f"- {n}" for n in notes)


def remember_result(fact: str) -> str:
    return f"Saved to memory: {fact}"


# -- the tools ---------------------------------------------------------------------------------------------------------

def _from_schema(name: str, fn: Callable) -> Tool:
    s = _SCHEMA[name]
    return tool(fn, name=name, description=s["description"], parameters=s["parameters"])


def zone(name: str | None) -> dt.tzinfo | None:
    """An IANA time zone by name ("Europe/Berlin", "UTC"); None -> None (the machine's local zone)."""
    if name is None or name == "":
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Berlin', "
                         f"'America/New_York' or 'UTC'") from None


def make_get_time(now: Callable[[], dt.datetime] | None = None, default_zone: str | None = None) -> Tool:
    """get_time, reading `now()` (an aware datetime; default: the system clock) in `timezone`, else `default_zone`,
    else the machine's local zone."""
    clock = now or (lambda: dt.datetime.now(dt.timezone.utc))
    zone(default_zone)  # refuse a bad default at construction, not at the first call

    def get_time(timezone: str | None = None) -> str:
        t = clock()
        if t.tzinfo is None:
            raise ValueError("the clock returned a naive datetime; give get_time a clock with a time zone")
        return time_result(t.astimezone(zone(timezone or default_zone)))

    return _from_schema("get_time", get_time)


def make_search_notes(folder: str | os.PathLike | None, k: int = 3, show_files: bool = False,
                      max_note_chars: int = 300) -> Tool:
    """search_notes over the text files in `folder` (None: a tool that explains there is no notes folder). At most
    `k` notes, each cut to `max_note_chars` characters (ending in "..."): a long paragraph must not fill a small
    model's window (the built-in model was trained on one-sentence notes)."""
    index = NotesIndex(folder) if folder is not None else None

    def shorten(text: str) -> str:
        if len(text) <= max_note_chars:
            return text
        cut = text[: max_note_chars - 3]
        return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip() + "..."  # at a word boundary

    def search_notes(query: str) -> str:
        if index is None:
            raise FileNotFoundError("no notes folder is set; start the chat with --notes DIR")
        hits = index.search(query, k)
        return notes_result(query, [shorten(h.text) + (f" ({h.file})" if show_files else "") for h in hits])

    return _from_schema("search_notes", search_notes)


FACT_END = ".!?"  # a fact keeps the mark it closes with ("The user's dog is called Rex." as the corpus stores it)
STRAY_END = " ;,:"  # what a fact never ends with: a small model's call sometimes closes on "sencha;"


def clean_fact(fact: str) -> str:
    """The fact as it is saved: whitespace collapsed to single spaces, stray ; , : and spaces at the end dropped,
    the closing . ! ? kept (in their order). The words are untouched, and cleaning twice changes nothing more.

    >>> clean_fact("The user's favourite tea is sencha;"), clean_fact("  The user's dog is called  Rex ;. ")
    ("The user's favourite tea is sencha", "The user's dog is called Rex.")
    """
    text = " ".join(fact.split())
    head = text.rstrip(STRAY_END + FACT_END)  # the fact up to the punctuation and spaces it ends with
    return head + "".join(c for c in text[len(head):] if c in FACT_END)


def make_remember(save: Callable[[str], object] | None = None) -> tuple[Tool, list[str]]:
    """remember, handing each fact to `save` (the memory's store, e.g. minichat.memory's `Recall.remember_tool`);
    by default a session-local list, which is returned too, so the caller can read what was saved. When `save`
    returns a string, that is the result the model reads (the memory may answer "Not saved: ..."); otherwise it is
    the trained "Saved to memory: <fact>". The fact is cleaned first (`clean_fact`): the result the model reads, and
    copies into its reply, shows the fact as saved."""
    saved: list[str] = []

    def remember(fact: str) -> str:
        fact = clean_fact(fact)
        if not fact.rstrip(FACT_END):
            raise ValueError("the fact is empty; pass the sentence to remember")
        said = (save or saved.append)(fact)
        return said if isinstance(said, str) else remember_result(fact)

    return _from_schema("remember", remember), saved


def calculator_tool() -> Tool:
    return _from_schema("calculator", calculator_result)


def builtin_tools(notes: str | os.PathLike | None = None, save_fact: Callable[[str], object] | None = None,
                  now: Callable[[], dt.datetime] | None = None, timezone: str | None = None,
                  show_files: bool = False) -> list[Tool]:
    """The four built-in tools, in the corpus's order: calculator, get_time, search_notes, remember."""
    if notes is not None and not Path(notes).is_dir():
        raise FileNotFoundError(f"the notes folder {str(notes)!r} does not exist")
    return [calculator_tool(), make_get_time(now, timezone), make_search_notes(notes, show_files=show_files),
            make_remember(save_fact)[0]]
