"""The chat's `Memory` socket over the store: retrieve relevant snippets, save what the model's `remember` call says,
and a temporary mode that neither reads nor writes.

    memory = open_memory(user="alice")                    # or open_memory(temporary=True) for a temporary chat
    memory.retrieve("what tea do I like?", k=3)           # -> ["The user likes green tea."]   (the socket's method)
    memory.last_hits                                      # -> (Hit(entry, 0.69, matched=("tea",)),)  for MemoryHits
    memory.last_reason                                    # -> "bm25: 1 of 2 memories matched"
    memory.remember_tool("The user's dog is called Biscuit.")   # -> "Saved to memory: The user's dog is ..."

Retrieval is BM25 over the user's memories (minichat.bm25); only documents that share a word with the message can
come back (score > 0), at most k of them and at most `max_chars` characters in all, so a store of thousands of facts
costs the prompt a few lines. A message asking what the assistant remembers ("what do you know about me?") is
answered from the list instead, newest first: BM25 would rank by the word "user", which every fact contains.

The `remember` tool's result text is the one the built-in model was trained on ("Saved to memory: <fact>"). When a
guard (the safety socket) is given, a fact is saved only if `guard.scan_injection(fact)` allows it (or
`guard.check_input(fact)` for a guard without an injection scan): a prompt injection in a web page must not become
a standing instruction in every later chat.

Saved chats (`reference_chats=True`): each user or assistant message of the user's saved conversations is a passage
of a second BM25 index; passages fill the places the memories leave (k in all), quoted as `From a saved chat
"<title>": <message>`. Their hits carry an Entry with source "chat" and the conversation's id.

Temporary mode: the database is not even opened (no file is created), retrieve returns nothing and remember saves
nothing (the tool says so, so the model does not claim otherwise).

What it leaves out: snippet placement in the prompt (the chat's context assembly decides; see docs/memory.md),
embedding-based retrieval, automatic extraction of facts.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from minichat.bm25 import BM25, tokenize
from minichat.memory.errors import MemoryInputError, MemoryStoreError
from minichat.memory.store import Entry, Forgotten, Hit, MemoryStore
from minichat.memory.validate import check_user

PASSAGE = 300  # characters of one saved-chat message a snippet quotes
REMEMBER_SCHEMA: dict[str, Any] = {  # the schema the built-in model saw in training (train/synthetic_tools.py)
    "name": "remember", "description": "Save a fact about the user to long-term memory.",
    "parameters": {"type": "object", "properties": {"fact": {"type": "string"}}, "required": ["fact"]}}
_WHAT_DO_YOU_KNOW = re.compile(
    r"\bwhat\b.{0,20}\b(do|did|have)\s+you\s+(remember|know|stored?|saved?|kept)\b.{0,20}\b(me|my|i)\b"
    r"|\bwhat('s| is)\s+in\s+your\s+memory\b|\bwhat\s+have\s+you\s+(remembered|saved|stored)\b", re.I)


def asks_what_is_remembered(message: str) -> bool:
    """Whether the message asks for the whole memory ("What do you remember about me?")."""
    return bool(_WHAT_DO_YOU_KNOW.search(message))


class StoreMemory:
    """A `Memory` socket for one user of a store (structural: it does not import minichat.chat)."""

    def __init__(self, store: MemoryStore | None, user: str = "default", *, temporary: bool = False,
                 max_chars: int = 600, guard: Any = None, reference_chats: bool = False) -> None:
        if store is None and not temporary:
            raise MemoryInputError("StoreMemory needs a store unless temporary=True")
        self.store = None if temporary else store
        self.user, self.temporary, self.max_chars, self.guard = check_user(user), temporary, max_chars, guard
        self.reference_chats = reference_chats  # also retrieve from saved conversations (after the memories)
        self._chats: tuple | None = None  # (freshness, passages, their index, their words)
        self.last_hits: tuple[Hit, ...] = ()  # what the last retrieve returned, with scores (for MemoryHits)
        self.last_reason = ""  # why: "bm25: ...", "listed: ...", "temporary chat: memory is off"

    def retrieve(self, query: str, k: int) -> Sequence[str]:
        """The socket method: up to k snippets relevant to the message, most relevant first."""
        return [h.entry.text for h in self.retrieve_hits(query, k)]

    def retrieve_hits(self, query: str, k: int) -> tuple[Hit, ...]:
        """The hits behind `retrieve`: entry, score and matched words, best first; also kept in `last_hits`."""
        if not isinstance(query, str):
            raise MemoryInputError(f"the query must be the message text (a str), not {type(query).__name__}")
        if self.store is None:
            self.last_hits, self.last_reason = (), "temporary chat: memory is off (nothing read)"
            return ()
        if asks_what_is_remembered(query):
            entries = sorted(self.store.list(self.user), key=lambda e: (e.updated, e.id), reverse=True)
            hits = [Hit(e, 0.0, ()) for e in entries]
            limit = len(hits)  # the whole list, within the character budget
            reason = f"listed: the message asks what is remembered ({len(entries)} memories, newest first)"
        else:
            hits = self.store.search(self.user, query, k)
            limit = max(k, 0)
            reason = f"bm25: {len(hits)} of {self.store.count(self.user)} memories matched words of the message"
            if self.reference_chats and len(hits) < limit:
                # Memories first: they are what the user chose to keep; scores of two indexes are not comparable,
                # so passages of saved chats only fill the places left.
                extra = self._chat_hits(query, limit - len(hits))
                hits += extra
                reason += f"; {len(extra)} passages of saved chats"
        kept, used = [], 0
        for h in hits[:limit]:
            if kept and used + len(h.entry.text) > self.max_chars:
                break  # the budget: the first snippet always fits (a memory is at most MAX_TEXT characters)
            kept.append(h)
            used += len(h.entry.text)
        if len(kept) < len(hits):
            reason += f"; {len(kept)} kept within the {self.max_chars}-character budget"
        self.last_hits, self.last_reason = tuple(kept), reason
        return self.last_hits

    def _chat_hits(self, query: str, k: int) -> list[Hit]:
        """Passages (one user or assistant message each) of the user's saved chats most relevant to the query."""
        fresh = self.store.freshness()
        if self._chats is None or self._chats[0] != fresh:
            found = [(c, m["content"][:PASSAGE]) for c in self.store.conversations(self.user) for m in c.messages
                     if m["role"] in ("user", "assistant") and m["content"].strip()]
            passages = [Entry(c.id, self.user, f'From a saved chat "{c.title}": {text}', "chat", (), c.created,
                              c.updated) for c, text in found]
            words = [tokenize(text) for _, text in found]
            self._chats = (fresh, passages, BM25(words), words)
        _, passages, index, words = self._chats
        terms = tokenize(query)
        return [Hit(passages[i], s, tuple(dict.fromkeys(t for t in terms if t in words[i])))
                for i, s in index.top_k(terms, k) if s > 0]

    def remember_tool(self, fact: str, tags: Iterable[str] | None = None) -> str:
        """The `remember` tool: save a fact the model was told; returns the tool result text for the model.

        Raises MemoryInputError for a refused fact (empty, too long, control characters) so that the tool layer
        reports a failed call; a guard's refusal is returned as text, since the model should tell the user."""
        if self.store is None:
            return "Not saved: this is a temporary chat, memory is off."
        if self.guard is not None:
            # A fact is data about the user, not a request: the injection scan judges it (the input classifier
            # would refuse ordinary facts such as "The user's name is Ada."); a guard without one falls back.
            check = getattr(self.guard, "scan_injection", None) or self.guard.check_input
            verdict = check(fact if isinstance(fact, str) else "")
            if not verdict.allowed:
                return f"Not saved: the safety check refused this fact ({verdict.policy or verdict.reason})."
        entry = self.store.remember(self.user, fact, source="tool", tags=tags)
        return f"Saved to memory: {entry.text}"

    def run_tool(self, name: str, arguments: Mapping[str, Any]) -> str:
        """Tools-socket style entry point for the one tool this package provides."""
        if name != "remember":
            raise LookupError(f"the memory provides only the 'remember' tool, not {name!r}")
        if set(arguments) - {"fact"} or not isinstance(arguments.get("fact"), str):
            raise MemoryInputError(f"remember takes one string argument 'fact', got {dict(arguments)!r}")
        return self.remember_tool(arguments["fact"])

    # -- what the terminal's /remember, /forget and /memory commands call ------------------------------------------

    def remember(self, text: str, tags: Iterable[str] | None = None) -> Entry:
        """`/remember TEXT`: store what the user said (source "explicit"), after the guard's check if there is one."""
        if self.store is None:
            raise MemoryStoreError("this is a temporary chat: memory is off, nothing was saved")
        if self.guard is not None:
            verdict = self.guard.check_input(text if isinstance(text, str) else "")
            if not verdict.allowed:
                raise MemoryInputError(f"not saved: the safety check refused it ({verdict.policy or verdict.reason})")
        return self.store.remember(self.user, text, source="explicit", tags=tags)

    def forget(self, target: str) -> Forgotten:
        """`/forget 12` (an id), `/forget --all`, or `/forget PHRASE` (every memory containing it)."""
        if self.store is None:
            raise MemoryStoreError("this is a temporary chat: memory is off, there is nothing to forget here")
        target = target.strip() if isinstance(target, str) else target
        if isinstance(target, str) and target.isdigit():
            return self.store.forget(self.user, int(target))
        if target == "--all":
            return self.store.forget_all(self.user)
        return self.store.forget_matching(self.user, target)

    def everything(self) -> list[str]:
        """All the user's memories, oldest first (what "what do you remember about me?" lists)."""
        return [] if self.store is None else [e.text for e in self.store.list(self.user)]


def open_memory(path: str | os.PathLike | None = None, user: str = "default", *, temporary: bool = False,
                **options: Any) -> StoreMemory:
    """A memory socket for `user` over the database at path ($MINICHAT_MEMORY, ~/.minichat/memory.db); with
    temporary=True nothing is opened, read or written."""
    return StoreMemory(None if temporary else MemoryStore(path), user, temporary=temporary, **options)
