"""Opening the memory database: where it lives, checking it before touching it, the settings, and the migrations.

Where: `path` if given, else $MINICHAT_MEMORY, else ~/.minichat/memory.db. A new file is created with mode 0600 in a
0700 folder (memories are personal).

Checked before the first write, so a bad file is never overwritten:
    1 the first 16 bytes are SQLite's magic string ("SQLite format 3\\0"), unless the file is empty
    2 `PRAGMA user_version` (the schema version) is not newer than this code's `VERSION`
    3 `PRAGMA quick_check` says "ok"
    4 a version-0 file holds no tables (else it is some other program's database, not an empty one)

Settings, per connection (SQLite does not store them in the file, except the journal mode):
    secure_delete = ON     deleted rows are overwritten with zeros, in the page and on the freelist. Its default is a
                           compile-time choice (on in Debian's build, off in stock SQLite), so it is set explicitly.
    journal_mode = WAL     readers do not block the writer; a commit appends to `<db>-wal`. The WAL keeps old page
                           images, deleted text included, until a checkpoint: the store runs wal_checkpoint(TRUNCATE)
                           after every forget or update, which copies pages back and empties the WAL.
    synchronous = FULL     a commit is on disk before it returns, so killing the process loses nothing committed.
    busy_timeout = 30 s    concurrent writers (threads or processes) wait for the lock instead of failing.
    temp_store = MEMORY    no temporary files holding copies of rows.
There is deliberately no FTS (full-text) index: it would keep its own copy of every text, which would have to be
forgotten separately. Retrieval builds its BM25 index in memory instead (minichat.bm25).

Migrations: `MIGRATIONS[v]` takes a database from version v to v + 1; each runs inside one write transaction
together with the version bump, so a crash leaves the old version intact. Version 1 stored memories; version 2 added
tags and saved conversations.
"""
from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from minichat.memory.errors import MemoryCorrupt, MemoryStoreError, MemoryVersionError

ENV = "MINICHAT_MEMORY"
MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT = 30.0  # seconds a writer waits for another's lock

MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1: memories. AUTOINCREMENT so that a forgotten memory's id is never handed out again (a stale
    # `forget 12` must not erase a newer memory that happened to get id 12).
    """
    CREATE TABLE memories (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        user    TEXT NOT NULL,
        text    TEXT NOT NULL,
        source  TEXT NOT NULL CHECK (source IN ('explicit', 'tool', 'extracted')),
        created TEXT NOT NULL,  -- ISO 8601, UTC
        updated TEXT NOT NULL
    );
    CREATE INDEX memories_by_user ON memories (user, id);  -- every query is scoped by user
    """,
    # 1 -> 2: tags on memories; saved conversations (messages as a JSON array of {"role", "content"}).
    """
    ALTER TABLE memories ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';  -- a JSON array of strings
    CREATE TABLE conversations (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        user     TEXT NOT NULL,
        title    TEXT NOT NULL,
        messages TEXT NOT NULL,
        created  TEXT NOT NULL,
        updated  TEXT NOT NULL
    );
    CREATE INDEX conversations_by_user ON conversations (user, id);
    """,
)
VERSION = len(MIGRATIONS)


def default_path() -> Path:
    """$MINICHAT_MEMORY if set, else ~/.minichat/memory.db."""
    env = os.environ.get(ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".minichat" / "memory.db"


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise MemoryStoreError(f"{path} is a folder; give the memory database a file name (e.g. {path / 'memory.db'})")
    with open(path, "rb") as f:
        head = f.read(len(MAGIC))
    if head and head != MAGIC:
        raise MemoryCorrupt(f"{path} is not a SQLite database (its first bytes are {head[:8]!r}); it was left "
                            f"untouched. Move it aside, or point --memory / ${ENV} at another file")


def _validate(conn: sqlite3.Connection, path: Path) -> int:
    """Read-only checks; returns the schema version found."""
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > VERSION:
            raise MemoryVersionError(
                f"{path} has memory schema version {version}, newer than this minichat understands ({VERSION}); "
                f"it was left untouched. Upgrade minichat, or point --memory / ${ENV} at another file")
        problems = [r[0] for r in conn.execute("PRAGMA quick_check")]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    except sqlite3.DatabaseError as e:
        raise MemoryCorrupt(f"{path} is damaged ({e}); it was left untouched. Restore it from an export or a "
                            f"backup, or move it aside to start a new memory") from e
    if problems != ["ok"]:
        raise MemoryCorrupt(f"{path} fails SQLite's integrity check ({'; '.join(problems[:3])}); it was left "
                            f"untouched. Restore it from an export or a backup, or move it aside")
    if version == 0 and tables:
        raise MemoryCorrupt(f"{path} is a SQLite database of another program (tables {', '.join(tables[:5])}), "
                            f"not a minichat memory; it was left untouched. Point --memory / ${ENV} at another file")
    return version


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")  # take the write lock first: two processes must not both migrate
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
        for v in range(version, VERSION):
            for statement in MIGRATIONS[v].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {v + 1}")  # transactional, committed with the migration
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def connect(path: str | os.PathLike | None = None) -> tuple[sqlite3.Connection, Path]:
    """Open (creating if needed), check, configure and migrate the memory database; returns (connection, path)."""
    path = Path(path).expanduser() if path is not None else default_path()
    if path.exists():
        _check_file(path)
    else:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:  # another process created it first: fine, it is checked below like any other
            _check_file(path)
    # isolation_level=None: no implicit transactions; the store issues BEGIN IMMEDIATE / COMMIT itself.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    try:
        version = _validate(conn, path)
        conn.execute("PRAGMA secure_delete = ON")
        if conn.execute("PRAGMA secure_delete").fetchone()[0] != 1:
            raise MemoryStoreError("this SQLite build refuses PRAGMA secure_delete = ON, so forgotten text could "
                                   "stay in the file; minichat will not store memories with it")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")
        if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
            raise MemoryStoreError(f"could not switch {path} to WAL journaling (is the folder read-only?)")
        if version < VERSION:
            _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn, path
