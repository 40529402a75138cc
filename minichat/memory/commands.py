"""`minichat memory ...`: the command-line face of the store, as plain functions plus an argparse hook.

    minichat memory list    [--user U] [--memory PATH] [--tag T]
    minichat memory search  QUERY [-k N]
    minichat memory remember TEXT [--tag T ...]
    minichat memory forget  ID | --matching PHRASE | --all [--keep-conversations]
    minichat memory export  [FILE]            (standard output when no FILE)
    minichat memory import  FILE

Each `cmd_*` function takes plain values, prints to `out`, returns the exit status (0), and raises the store's
errors (MinichatError subclasses: MemoryNotFound, MemoryInputError, MemoryCorrupt, ...) for the caller to report.
`add_parser(subparsers)` registers all of them under `memory` with `set_defaults(run=...)`, the convention of
minichat/cli.py. The database is `--memory PATH`, else $MINICHAT_MEMORY, else ~/.minichat/memory.db; the user is
`--user`, else $MINICHAT_USER, else "default".
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TextIO

from minichat.memory.errors import MemoryInputError
from minichat.memory.store import Entry, MemoryStore
from minichat.memory.transfer import export_json, import_file

DEFAULT_USER = "default"


def default_user() -> str:
    return os.environ.get("MINICHAT_USER", "").strip() or DEFAULT_USER


def _line(e: Entry) -> str:
    tags = f"  [{', '.join(e.tags)}]" if e.tags else ""
    return f"{e.id:>5}  {e.updated[:16].replace('T', ' ')}  {e.source:<9} {e.text}{tags}"


def cmd_list(user: str | None = None, path: str | None = None, *, tag: str | None = None,
             out: TextIO | None = None) -> int:
    with MemoryStore(path) as store:
        entries = store.list(user or default_user(), tag=tag)
    if not entries:
        print(f"no memories for user {user or default_user()!r} ({store.path})", file=out or sys.stdout)
    for e in entries:
        print(_line(e), file=out or sys.stdout)
    return 0


def cmd_search(query: str, user: str | None = None, path: str | None = None, *, k: int = 5,
               out: TextIO | None = None) -> int:
    with MemoryStore(path) as store:
        hits = store.search(user or default_user(), query, k)
    if not hits:
        print("no memory shares a word with the query", file=out or sys.stdout)
    for h in hits:
        print(f"{h.score:7.3f}  {_line(h.entry)}   (matched: {', '.join(h.matched)})", file=out or sys.stdout)
    return 0


def cmd_remember(text: str, user: str | None = None, path: str | None = None, *, tags: list[str] | None = None,
                 out: TextIO | None = None) -> int:
    with MemoryStore(path) as store:
        e = store.remember(user or default_user(), text, source="explicit", tags=tags)
    print(f"remembered {e.id}: {e.text}", file=out or sys.stdout)
    return 0


def cmd_forget(memory_id: int | None = None, user: str | None = None, path: str | None = None, *,
               matching: str | None = None, everything: bool = False, keep_conversations: bool = False,
               out: TextIO | None = None) -> int:
    """Forget one memory (by id), those containing a phrase, or everything of the user."""
    if sum(x is not None and x is not False for x in (memory_id, matching, everything or None)) != 1:
        raise MemoryInputError("say what to forget: an ID, --matching PHRASE, or --all (exactly one)")
    user = user or default_user()
    with MemoryStore(path) as store:
        if everything:
            f = store.forget_all(user, conversations=not keep_conversations)
        elif matching is not None:
            f = store.forget_matching(user, matching)
        else:
            f = store.forget(user, memory_id)
    what = f"{len(f.ids)} memor{'y' if len(f.ids) == 1 else 'ies'}"
    if f.conversations:
        what += f" and {len(f.conversations)} saved conversation(s)"
    ids = f" (ids {', '.join(map(str, f.ids))})" if 0 < len(f.ids) <= 20 else ""
    print(f"forgot {what}{ids}", file=out or sys.stdout)
    if not f.wiped:
        print("note: another program is reading the memory database, so the forgotten text stays in its "
              "write-ahead log until that program closes it", file=out or sys.stdout)
    return 0


def cmd_export(file: str | None = None, user: str | None = None, path: str | None = None, *,
               out: TextIO | None = None) -> int:
    with MemoryStore(path) as store:
        text = export_json(store, user or default_user())
    if file is None or file == "-":
        print(text, file=out or sys.stdout)
    else:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # personal data: owner-only
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        print(f"exported to {file}", file=out or sys.stdout)
    return 0


def cmd_import(file: str, user: str | None = None, path: str | None = None, *, out: TextIO | None = None) -> int:
    with MemoryStore(path) as store:
        added, skipped, convs = import_file(store, user or default_user(), Path(file))
    print(f"imported {added} memories ({skipped} already known) and {convs} conversations", file=out or sys.stdout)
    return 0


def _memory_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a memory id is a whole number (see `minichat memory list`), got {text!r}")
    return int(text)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `memory` and its actions on an argparse subparsers object; each sets `run=fn(args) -> int`."""
    m = subparsers.add_parser("memory", help="list, search, forget, export or import what the assistant remembers")
    actions = m.add_subparsers(dest="action", required=True)

    def common(p):
        p.add_argument("--user", help="whose memories (default: $MINICHAT_USER or 'default')")
        p.add_argument("--memory", metavar="PATH", help="the database (default: $MINICHAT_MEMORY or "
                                                         "~/.minichat/memory.db)")
        return p

    p = common(actions.add_parser("list", help="every memory, oldest first"))
    p.add_argument("--tag", help="only memories with this tag")
    p.set_defaults(run=lambda a: cmd_list(a.user, a.memory, tag=a.tag))
    p = common(actions.add_parser("search", help="the memories most relevant to a query (BM25), with scores"))
    p.add_argument("query")
    p.add_argument("-k", type=int, default=5, help="how many (default 5)")
    p.set_defaults(run=lambda a: cmd_search(a.query, a.user, a.memory, k=a.k))
    p = common(actions.add_parser("remember", help="store a fact"))
    p.add_argument("text")
    p.add_argument("--tag", action="append", dest="tags", help="a tag (repeatable)")
    p.set_defaults(run=lambda a: cmd_remember(a.text, a.user, a.memory, tags=a.tags))
    p = common(actions.add_parser("forget", help="delete memories for good (ID, --matching PHRASE or --all)"))
    p.add_argument("id", nargs="?", type=_memory_id)
    p.add_argument("--matching", metavar="PHRASE", help="every memory containing this phrase (ignoring case)")
    p.add_argument("--all", action="store_true", help="all of the user's memories and saved conversations")
    p.add_argument("--keep-conversations", action="store_true", help="with --all: keep saved conversations")
    p.set_defaults(run=lambda a: cmd_forget(a.id, a.user, a.memory, matching=a.matching, everything=a.all,
                                            keep_conversations=a.keep_conversations))
    p = common(actions.add_parser("export", help="write the user's memories and conversations as JSON"))
    p.add_argument("file", nargs="?", help="output file (default: standard output)")
    p.set_defaults(run=lambda a: cmd_export(a.file, a.user, a.memory))
    p = common(actions.add_parser("import", help="add memories and conversations from an export"))
    p.add_argument("file")
    p.set_defaults(run=lambda a: cmd_import(a.file, a.user, a.memory))
    return m
