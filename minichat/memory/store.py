"""The memory store: remember, update, forget, list and search what a user asked the assistant to keep.

    store = MemoryStore()                                  # ~/.minichat/memory.db, or $MINICHAT_MEMORY, or a path
    e = store.remember("alice", "The user's favourite colour is teal.", source="tool", tags=["prefs"])
    store.search("alice", "what colour do I like", k=3)    # -> [Hit(entry, score, matched terms)], BM25, best first
    store.forget("alice", e.id)                            # gone from the file, its WAL and its journal

Every row carries a user id and every statement filters on it: one user's ids, texts and counts are invisible to
another (an id of someone else's memory reads as "not found"). Remembering a text the user already has (same words
ignoring case and spacing) refreshes it instead of storing a copy.

Forget means gone: rows are deleted with `secure_delete` on (their bytes zeroed in place), then the WAL is
checkpointed with TRUNCATE so no old page image survives in `-wal`. The same happens after an update, since the old
wording is something the user chose to replace. A checkpoint cannot finish while another connection is still reading
an older snapshot; the store retries for a while and reports the outcome in `Forgotten.wiped`.

Writes take SQLite's write lock up front (BEGIN IMMEDIATE) and commit with synchronous=FULL, so concurrent writers
(threads sharing a store, or other processes) queue instead of failing, and a committed write survives the process
being killed. Saved conversations live in the same file (see `save_conversation`).

What it leaves out: encryption at rest (use an encrypted disk), automatic extraction of facts from conversations
(`source="extracted"` is there for callers that do it), expiry.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from minichat.bm25 import BM25, tokenize
from minichat.memory.errors import MemoryInputError, MemoryNotFound, MemoryStoreError
from minichat.memory.schema import BUSY_TIMEOUT, connect
from minichat.memory.validate import (MAX_MEMORIES, MAX_TEXT, check_id, check_messages, check_source, check_tags, check_text, check_user,
                                      text_key)


@dataclass(frozen=True)
class Entry:
    """One remembered fact."""

    id: int
    user: str
    text: str
    source: str
    tags: tuple[str, ...]
    created: str  # ISO 8601, UTC
    updated: str


@dataclass(frozen=True)
class Hit:
    """A search result: the entry, its BM25 score, and the query terms it matched (the "why")."""

    entry: Entry
    score: float
    matched: tuple[str, ...]


@dataclass(frozen=True)
class Forgotten:
    """What a forget removed, and whether the WAL could be emptied right away (see the module docstring)."""

    ids: tuple[int, ...]
    conversations: tuple[int, ...] = ()
    wiped: bool = True


@dataclass(frozen=True)
class Conversation:
    id: int
    user: str
    title: str
    messages: tuple[dict, ...] = field(repr=False)
    created: str = ""
    updated: str = ""


def now_iso(clock=time.time) -> str:
    return datetime.fromtimestamp(clock(), timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _entry(row) -> Entry:
    id_, user, text, source, tags, created, updated = row
    return Entry(id_, user, text, source, tuple(json.loads(tags)), created, updated)


_COLUMNS = "id, user, text, source, tags, created, updated"


class MemoryStore:
    """All memories and saved conversations in one SQLite file; thread-safe; every method takes the user id first."""

    def __init__(self, path: str | os.PathLike | None = None, *, clock=time.time) -> None:
        self._conn, self.path = connect(path)
        self._lock = threading.RLock()  # one connection shared by threads: one statement sequence at a time
        self._clock = clock
        self._index: dict[str, tuple[tuple, list[Entry], BM25]] = {}  # user -> (freshness key, entries, index)
        self._writes = 0  # own commits (PRAGMA data_version only counts other connections' commits)
        # A process killed between a forget's commit and its checkpoint leaves the old pages in the WAL: wipe them now.
        with self._lock:
            self._checkpoint(attempts=3)

    # -- plumbing --------------------------------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._checkpoint()
                self._conn.close()
                self._conn = None
                self._index.clear()

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise MemoryStoreError("this memory store is closed; open a new MemoryStore")
        return self._conn

    def _write(self, fn):
        """Run fn(conn) inside one write transaction (BEGIN IMMEDIATE ... COMMIT); roll back on any error."""
        with self._lock:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._writes += 1
            self._index.clear()  # the in-memory BM25 index may hold a forgotten or replaced text: drop it now
            return result

    def _checkpoint(self, attempts: int = 20) -> bool:
        """Copy the WAL into the database and truncate it to zero bytes; False if readers kept it busy."""
        conn = self._db()
        # A TRUNCATE checkpoint waits for readers through the busy handler; with the 30 s writer timeout one attempt
        # could hang for 30 s. Wait in short steps instead (about attempts * 0.1 s in all), then give up honestly.
        conn.execute("PRAGMA busy_timeout = 50")
        try:
            for _ in range(attempts):
                busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy == 0:
                    return True
                time.sleep(0.05)
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")

    # -- memories ------------------------------------------------------------------------------------------------

    def remember(self, user: str, text: str, *, source: str = "explicit", tags: Iterable[str] | None = None) -> Entry:
        """Store a fact (or refresh the identical one already stored) and return it."""
        user, text, source, tags = check_user(user), check_text(text), check_source(source), check_tags(tags)

        def run(conn):
            stamp = now_iso(self._clock)
            key = text_key(text)
            for id_, old in conn.execute("SELECT id, text FROM memories WHERE user = ?", (user,)):
                if text_key(old) == key:  # already known: refresh its time (and add any new tags)
                    row = conn.execute(f"SELECT {_COLUMNS} FROM memories WHERE id = ?", (id_,)).fetchone()
                    merged = tuple(dict.fromkeys(json.loads(row[4]) + list(tags)))
                    conn.execute("UPDATE memories SET updated = ?, tags = ? WHERE id = ?",
                                 (stamp, json.dumps(merged), id_))
                    return id_
            (n,) = conn.execute("SELECT COUNT(*) FROM memories WHERE user = ?", (user,)).fetchone()
            if n >= MAX_MEMORIES:
                raise MemoryInputError(f"user {user!r} already has {n} memories, the most one user may keep; "
                                       f"forget some first")
            cur = conn.execute("INSERT INTO memories (user, text, source, tags, created, updated) "
                               "VALUES (?, ?, ?, ?, ?, ?)", (user, text, source, json.dumps(tags), stamp, stamp))
            return cur.lastrowid

        return self.get(user, self._write(run))

    def get(self, user: str, memory_id: int) -> Entry:
        user, memory_id = check_user(user), check_id(memory_id)
        with self._lock:
            row = self._db().execute(f"SELECT {_COLUMNS} FROM memories WHERE user = ? AND id = ?",
                                     (user, memory_id)).fetchone()
        if row is None:
            raise MemoryNotFound(f"user {user!r} has no memory with id {memory_id}; `minichat memory list` shows "
                                 f"the ids")
        return _entry(row)

    def update(self, user: str, memory_id: int, text: str | None = None, *,
               tags: Iterable[str] | None = None) -> Entry:
        """Replace a memory's text and/or tags; the old wording is wiped from the files like a forget."""
        user, memory_id = check_user(user), check_id(memory_id)
        new_text = check_text(text) if text is not None else None
        new_tags = check_tags(tags) if tags is not None else None

        def run(conn):
            stamp = now_iso(self._clock)
            sets, args = ["updated = ?"], [stamp]
            if new_text is not None:
                sets.append("text = ?")
                args.append(new_text)
            if new_tags is not None:
                sets.append("tags = ?")
                args.append(json.dumps(new_tags))
            cur = conn.execute(f"UPDATE memories SET {', '.join(sets)} WHERE user = ? AND id = ?",
                               (*args, user, memory_id))
            if cur.rowcount == 0:
                raise MemoryNotFound(f"user {user!r} has no memory with id {memory_id}")

        self._write(run)
        with self._lock:
            self._checkpoint()
        return self.get(user, memory_id)

    def list(self, user: str, *, tag: str | None = None) -> list[Entry]:
        """The user's memories, oldest first (optionally only those with `tag`)."""
        user = check_user(user)
        with self._lock:
            rows = self._db().execute(f"SELECT {_COLUMNS} FROM memories WHERE user = ? ORDER BY id",
                                      (user,)).fetchall()
        entries = [_entry(r) for r in rows]
        return [e for e in entries if tag in e.tags] if tag is not None else entries

    def count(self, user: str) -> int:
        with self._lock:
            return self._db().execute("SELECT COUNT(*) FROM memories WHERE user = ?", (check_user(user),)).fetchone()[0]

    def matching(self, user: str, phrase: str) -> list[Entry]:
        """Memories whose text contains `phrase`, ignoring case (what forget_matching would remove)."""
        needle = text_key(check_text(phrase, "phrase"))
        return [e for e in self.list(user) if needle in text_key(e.text)]

    def forget(self, user: str, memory_id: int) -> Forgotten:
        """Delete one memory of this user; MemoryNotFound if the user has none with that id."""
        user, memory_id = check_user(user), check_id(memory_id)

        def run(conn):
            if conn.execute("DELETE FROM memories WHERE user = ? AND id = ?", (user, memory_id)).rowcount == 0:
                raise MemoryNotFound(f"user {user!r} has no memory with id {memory_id}; nothing was deleted")

        self._write(run)
        return Forgotten((memory_id,), wiped=self._wipe())

    def forget_matching(self, user: str, phrase: str) -> Forgotten:
        """Delete every memory of this user whose text contains `phrase` (ignoring case)."""
        user = check_user(user)
        needle = text_key(check_text(phrase, "phrase"))

        def run(conn):
            ids = [i for i, t in conn.execute("SELECT id, text FROM memories WHERE user = ?", (user,))
                   if needle in text_key(t)]
            conn.executemany("DELETE FROM memories WHERE user = ? AND id = ?", [(user, i) for i in ids])
            return tuple(ids)

        ids = self._write(run)
        return Forgotten(ids, wiped=self._wipe() if ids else True)

    def forget_all(self, user: str, *, conversations: bool = True) -> Forgotten:
        """Delete all of this user's memories (and, unless told otherwise, saved conversations)."""
        user = check_user(user)

        def run(conn):
            ids = tuple(r[0] for r in conn.execute("SELECT id FROM memories WHERE user = ? ORDER BY id", (user,)))
            conn.execute("DELETE FROM memories WHERE user = ?", (user,))
            convs: tuple[int, ...] = ()
            if conversations:
                convs = tuple(r[0] for r in conn.execute("SELECT id FROM conversations WHERE user = ? ORDER BY id",
                                                         (user,)))
                conn.execute("DELETE FROM conversations WHERE user = ?", (user,))
            return ids, convs

        ids, convs = self._write(run)
        return Forgotten(ids, convs, wiped=self._wipe())

    def _wipe(self) -> bool:
        with self._lock:
            return self._checkpoint()

    # -- retrieval -----------------------------------------------------------------------------------------------

    def freshness(self) -> tuple[int, int]:
        """Changes whenever the data may have: another connection's commit (data_version) or one of ours."""
        with self._lock:
            return self._db().execute("PRAGMA data_version").fetchone()[0], self._writes

    def _bm25(self, user: str) -> tuple[list[Entry], BM25]:
        """The user's BM25 index, rebuilt only when the data changed (here or in another process)."""
        with self._lock:
            fresh = self.freshness()
            cached = self._index.get(user)
            if cached is not None and cached[0] == fresh:
                return cached[1], cached[2]
            entries = self.list(user)
            index = BM25([tokenize(e.text) for e in entries])
            self._index[user] = (fresh, entries, index)
            return entries, index

    def search(self, user: str, query: str, k: int = 5) -> list[Hit]:
        """The user's k memories most relevant to `query` (BM25 over their words), best first; only real matches
        (score > 0) are returned."""
        user = check_user(user)
        if not isinstance(query, str):
            raise MemoryInputError(f"query must be a string, not {type(query).__name__}")
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise MemoryInputError(f"k must be a non-negative integer, not {k!r}")
        terms = tokenize(query[: 4 * MAX_TEXT])  # a pasted essay as a query costs no more than a long fact
        entries, index = self._bm25(user)
        hits = []
        for i, score in index.top_k(terms, k):
            if score <= 0:
                break
            words = set(tokenize(entries[i].text))
            hits.append(Hit(entries[i], score, tuple(dict.fromkeys(t for t in terms if t in words))))
        return hits

    # -- saved conversations ---------------------------------------------------------------------------------------

    def save_conversation(self, user: str, messages: Sequence[Mapping], *, title: str | None = None,
                          conversation_id: int | None = None) -> int:
        """Save (or, with an id, overwrite) a conversation; returns its id."""
        user, msgs = check_user(user), check_messages(messages)
        if conversation_id is not None:
            check_id(conversation_id, "conversation id")
        if title is None:
            first = next((m["content"] for m in msgs if m["role"] == "user" and m["content"].strip()), "untitled")
            title = " ".join(first.split()[:8])[:80]
        title = check_text(title, "title")[:200]

        def run(conn):
            stamp = now_iso(self._clock)
            if conversation_id is None:
                return conn.execute("INSERT INTO conversations (user, title, messages, created, updated) "
                                    "VALUES (?, ?, ?, ?, ?)", (user, title, json.dumps(msgs), stamp, stamp)).lastrowid
            cur = conn.execute("UPDATE conversations SET title = ?, messages = ?, updated = ? "
                               "WHERE user = ? AND id = ?",
                               (title, json.dumps(msgs), stamp, user, conversation_id))
            if cur.rowcount == 0:
                raise MemoryNotFound(f"user {user!r} has no saved conversation {conversation_id}")
            return conversation_id

        id_ = self._write(run)
        if conversation_id is not None:
            self._wipe()  # the overwritten transcript goes like a forgotten memory
        return id_

    def conversations(self, user: str) -> list[Conversation]:
        user = check_user(user)
        with self._lock:
            rows = self._db().execute("SELECT id, user, title, messages, created, updated FROM conversations "
                                      "WHERE user = ? ORDER BY id", (user,)).fetchall()
        return [Conversation(i, u, t, tuple(json.loads(m)), c, up) for i, u, t, m, c, up in rows]

    def conversation(self, user: str, conversation_id: int) -> Conversation:
        for c in self.conversations(user):
            if c.id == conversation_id:
                return c
        raise MemoryNotFound(f"user {check_user(user)!r} has no saved conversation {conversation_id}")

    def forget_conversation(self, user: str, conversation_id: int) -> Forgotten:
        user, conversation_id = check_user(user), check_id(conversation_id, "conversation id")

        def run(conn):
            cur = conn.execute("DELETE FROM conversations WHERE user = ? AND id = ?", (user, conversation_id))
            if cur.rowcount == 0:
                raise MemoryNotFound(f"user {user!r} has no saved conversation {conversation_id}")

        self._write(run)
        return Forgotten((), (conversation_id,), wiped=self._wipe())

    # -- bulk insert (used by import) -----------------------------------------------------------------------------

    def insert_many(self, user: str, memories: Sequence[Mapping], conversations: Sequence[Mapping] = ()
                    ) -> tuple[int, int, int]:
        """Insert already-validated memories ({text, source, tags, created, updated}) and conversations ({title,
        messages, created, updated}) in ONE transaction: all or nothing. Memories the user already has (same words)
        are skipped. Returns (memories added, duplicates skipped, conversations added)."""
        user = check_user(user)

        def run(conn):
            known = {text_key(t) for (t,) in conn.execute("SELECT text FROM memories WHERE user = ?", (user,))}
            (n,) = conn.execute("SELECT COUNT(*) FROM memories WHERE user = ?", (user,)).fetchone()
            added = skipped = 0
            for m in memories:
                key = text_key(m["text"])
                if key in known:
                    skipped += 1
                    continue
                known.add(key)
                conn.execute("INSERT INTO memories (user, text, source, tags, created, updated) VALUES "
                             "(?, ?, ?, ?, ?, ?)", (user, m["text"], m["source"], json.dumps(list(m["tags"])),
                                                    m["created"], m["updated"]))
                added += 1
            if n + added > MAX_MEMORIES:
                raise MemoryInputError(f"importing {added} memories would give user {user!r} {n + added}, more "
                                       f"than {MAX_MEMORIES}; nothing was imported")
            for c in conversations:
                conn.execute("INSERT INTO conversations (user, title, messages, created, updated) VALUES "
                             "(?, ?, ?, ?, ?)", (user, c["title"], json.dumps(c["messages"]), c["created"],
                                                 c["updated"]))
            return added, skipped, len(conversations)

        return self._write(run)
