"""Input rules for the memory store: every text, tag, user id and conversation is checked here before anything is
written, and refused with a MemoryInputError that says what was wrong and what to do.

    a memory      1-2,000 characters after stripping; no control characters except tab and newline
    tags          up to 16, each 1-40 of letters, digits, . _ -; duplicates dropped, order kept
    a user id     1-64 of letters, digits, . _ @ + -  (it is a key, not a display name)
    a source      explicit (said with /remember or the CLI), tool (the model's remember call), extracted (inferred)
    conversation  a list of {"role", "content"} with a known role, up to 1,000,000 characters of JSON

Every statement is parameterised (no SQL is built from these values); the rules keep the stored data clean and
bounded, not the SQL safe.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence

from minichat.memory.errors import MemoryInputError

SOURCES = ("explicit", "tool", "extracted")  # said with /remember or the CLI; the model's remember call; inferred
MAX_TEXT = 2000  # characters in one memory: a fact, not a document
MAX_TAGS, MAX_TAG = 16, 40
MAX_USER = 64
MAX_MEMORIES = 100_000  # per user: a runaway loop of remember calls stops here with a clear error
MAX_CONVERSATION = 1_000_000  # characters of JSON in one saved conversation
ROLES = ("system", "user", "assistant", "tool")
_USER = re.compile(r"[\w.@+-]+")
_TAG = re.compile(r"[\w.-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than tab and newline


def check_user(user: str) -> str:
    if not isinstance(user, str) or not 0 < len(user) <= MAX_USER or not _USER.fullmatch(user):
        raise MemoryInputError(f"user id must be 1-{MAX_USER} letters, digits or . _ @ + - (got {user!r})")
    return user


def check_text(text: str, what: str = "memory text") -> str:
    if not isinstance(text, str):
        raise MemoryInputError(f"{what} must be a string, not {type(text).__name__}")
    text = text.strip()
    if not text:
        raise MemoryInputError(f"{what} is empty; say what to remember")
    if len(text) > MAX_TEXT:
        raise MemoryInputError(f"{what} is {len(text)} characters, more than the {MAX_TEXT} a memory may hold; "
                               f"store a short fact, not a document")
    if _CONTROL.search(text):
        raise MemoryInputError(f"{what} contains control characters (e.g. NUL or escape codes); remove them")
    return text


def check_tags(tags: Iterable[str] | None) -> tuple[str, ...]:
    if tags is None:
        return ()
    if isinstance(tags, str):
        raise MemoryInputError(f"tags must be a list of strings, not the string {tags!r}")
    tags = tuple(tags)
    if len(tags) > MAX_TAGS:
        raise MemoryInputError(f"{len(tags)} tags given, at most {MAX_TAGS} allowed")
    for t in tags:
        if not isinstance(t, str) or not 0 < len(t) <= MAX_TAG or not _TAG.fullmatch(t):
            raise MemoryInputError(f"tag {t!r} refused: 1-{MAX_TAG} letters, digits or . _ -")
    return tuple(dict.fromkeys(tags))  # de-duplicated, order kept


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise MemoryInputError(f"source must be one of {SOURCES}, not {source!r}")
    return source


def check_messages(messages: Sequence[Mapping]) -> list[dict]:
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise MemoryInputError("a conversation is a list of {'role': ..., 'content': ...} messages")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise MemoryInputError(f"message {i} must be a mapping with a role in {ROLES} and a string content")
        if "\x00" in m["content"]:
            raise MemoryInputError(f"message {i} contains a NUL character")
        out.append({"role": m["role"], "content": m["content"]})
    if len(json.dumps(out)) > MAX_CONVERSATION:
        raise MemoryInputError(f"the conversation is larger than {MAX_CONVERSATION} characters of JSON")
    return out




def text_key(text: str) -> str:
    """What makes two memories the same: their words, ignoring case and spacing."""
    return " ".join(text.casefold().split())


def check_id(value: int, what: str = "memory id") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise MemoryInputError(f"a {what} is a whole number >= 1 (see `minichat memory list`), not {value!r}")
    return value
