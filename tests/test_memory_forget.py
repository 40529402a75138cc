"""Forget means gone: after forget / update, no byte of the old text is left in the database file or its -wal, -shm
and -journal files. Checked by reading the raw bytes of every file; two control experiments (secure_delete off, no
checkpoint) show that the same reading does find leftovers when the store's precautions are missing."""
from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.memory import MemoryStore, open_memory

SUFFIXES = ("", "-wal", "-shm", "-journal")


def traces(db: Path, needle: str) -> list[str]:
    """The files (db and companions) whose raw bytes contain needle (UTF-8, as SQLite stores text)."""
    found = []
    for suffix in SUFFIXES:
        f = Path(str(db) + suffix)
        if f.exists() and needle.encode() in f.read_bytes():
            found.append(f.name)
    return found


def filler(store: MemoryStore, user: str, n: int) -> None:
    for i in range(n):  # enough rows to span several pages and overflow pages
        store.remember(user, f"filler memory number {i} " + "lorem ipsum " * (i % 40))


def test_forget_one_leaves_no_trace(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        filler(store, "alice", 60)
        secret = store.remember("alice", "My bank PIN is zebra-secret-7781, keep it safe.")
        kept = store.remember("alice", "The user keeps kiwi-marker-1234 in the fridge.")
        filler(store, "bob", 20)
        assert traces(db, "zebra-secret-7781")  # the secret really was written somewhere before the forget
        result = store.forget("alice", secret.id)
        assert result.ids == (secret.id,) and result.wiped
        assert traces(db, "zebra-secret-7781") == []  # the store is still open: the WAL was truncated
        assert traces(db, "kiwi-marker-1234") == ["m.db"]  # the reading works: the kept memory is found
        assert [e.id for e in store.list("alice")].count(kept.id) == 1
        assert store.search("alice", "zebra PIN", 5) == []
    assert traces(db, "zebra-secret-7781") == []


def test_forget_long_text_in_overflow_pages(tmp_path):
    db = tmp_path / "m.db"
    long = "overflow-secret-5512 " * 95  # ~2000 characters: larger than fits in one 4096-byte page's cell
    with MemoryStore(db) as store:
        filler(store, "alice", 30)
        e = store.remember("alice", long)
        filler(store, "alice", 30)
        store.forget("alice", e.id)
        assert traces(db, "overflow-secret-5512") == []


def test_forget_matching_and_all(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        filler(store, "alice", 40)
        for i in range(5):
            store.remember("alice", f"The user's dog {i} is called gone-dog-{i}xq.")
        store.remember("bob", "Bob's note bob-marker-9.")
        f = store.forget_matching("alice", "GONE-dog")
        assert len(f.ids) == 5
        assert all(traces(db, f"gone-dog-{i}xq") == [] for i in range(5))
        store.save_conversation("alice", [{"role": "user", "content": "my passport is conv-secret-3141"}])
        f = store.forget_all("alice")
        assert len(f.ids) == 40 and len(f.conversations) == 1 and f.wiped
        assert store.count("alice") == 0 and store.conversations("alice") == []
        assert traces(db, "conv-secret-3141") == [] and traces(db, "filler memory number 7 ") == []
        assert traces(db, "bob-marker-9") == ["m.db"]  # the other user's memory is untouched
        assert store.count("bob") == 1


def test_update_wipes_the_old_wording(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        filler(store, "alice", 30)
        e = store.remember("alice", "The user lives at old-address-2718 Elm Street.")
        store.update("alice", e.id, "The user moved to a new place.")
        assert traces(db, "old-address-2718") == []
        assert store.get("alice", e.id).text == "The user moved to a new place."


def test_forgotten_conversation_leaves_no_trace(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        cid = store.save_conversation("alice", [{"role": "user", "content": "hello"},
                                                {"role": "assistant", "content": "the code is chat-secret-1618"}])
        store.forget_conversation("alice", cid)
        assert traces(db, "chat-secret-1618") == []


def test_reader_holding_an_old_snapshot_delays_the_wipe_until_close(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        filler(store, "alice", 10)
        e = store.remember("alice", "reader-secret-4242 is the word.")
        reader = sqlite3.connect(db, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT COUNT(*) FROM memories").fetchone()  # a read transaction pins the snapshot
        f = store.forget("alice", e.id)
        assert not f.wiped  # honest: the WAL could not be emptied while the reader needs the old pages
        assert "m.db-wal" in traces(db, "reader-secret-4242")
        reader.execute("COMMIT")
        reader.close()
    assert traces(db, "reader-secret-4242") == []  # closing the store checkpoints


# -- controls: the same reading finds the text when a precaution is missing ----------------------------------------

def _raw(db: Path, secure_delete: str, checkpoint: bool) -> list[str]:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute(f"PRAGMA secure_delete = {secure_delete}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    # the secret sits in the middle of a full page, so deleting it does not rebalance (copy) the page
    for i in range(200):
        conn.execute("INSERT INTO t VALUES (?)", (("control-secret-8080 " if i == 25 else f"row {i} ") + "pad " * 40,))
    conn.execute("DELETE FROM t WHERE x LIKE 'control-secret-8080%'")
    if checkpoint:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    found = traces(db, "control-secret-8080")
    conn.close()
    return found


def test_control_without_secure_delete_the_text_stays_in_the_file(tmp_path):
    assert "c.db" in _raw(tmp_path / "c.db", "OFF", checkpoint=True)


def test_control_without_checkpoint_the_text_stays_in_the_wal(tmp_path):
    assert "c.db-wal" in _raw(tmp_path / "c.db", "ON", checkpoint=False)


def test_secure_delete_is_set_explicitly(tmp_path):
    store = MemoryStore(tmp_path / "m.db")
    assert store._conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert store._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert not store._conn.execute("SELECT name FROM sqlite_master WHERE sql LIKE '%fts%'").fetchall()
    store.close()


# -- temporary chat ------------------------------------------------------------------------------------------------

def test_temporary_memory_neither_reads_nor_writes(tmp_path):
    db = tmp_path / "m.db"
    with MemoryStore(db) as store:
        store.remember("alice", "The user likes green tea.")
    before = db.read_bytes()
    temp = open_memory(db, "alice", temporary=True)
    assert temp.retrieve("what tea do I like", 3) == []
    assert temp.remember_tool("The user has a cat.").startswith("Not saved")
    assert temp.everything() == [] and "temporary" in temp.last_reason
    assert db.read_bytes() == before  # not a byte changed
    with MemoryStore(db) as store:
        assert [e.text for e in store.list("alice")] == ["The user likes green tea."]
    fresh = tmp_path / "never.db"
    open_memory(fresh, "alice", temporary=True).retrieve("tea", 3)
    assert not fresh.exists()  # a temporary chat does not even create the file


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_traces_reads_every_companion_file(tmp_path, suffix):
    # the helper itself: a needle planted in any one of the files is found there
    db = tmp_path / "x.db"
    Path(str(db) + suffix).write_bytes(b"..needle-77..")
    assert traces(db, "needle-77") == [("x.db" + suffix)]


KILLED_BEFORE_CHECKPOINT = """
import os, signal, sys
from minichat.memory import MemoryStore
s = MemoryStore(sys.argv[1])
for i in range(40):
    s.remember("alice", f"filler {i} " + "words " * 20)
e = s.remember("alice", "crash-secret-6061 was here.")
s._checkpoint = lambda attempts=20: True  # the process dies after the delete's commit, before the checkpoint
s.forget("alice", e.id)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kill_between_commit_and_checkpoint_is_wiped_at_next_open(tmp_path):
    import os
    import subprocess
    import sys

    from conftest import REPO

    db = tmp_path / "m.db"
    p = subprocess.run([sys.executable, "-c", KILLED_BEFORE_CHECKPOINT, str(db)], capture_output=True, text=True,
                       env=os.environ | {"PYTHONPATH": str(REPO)}, timeout=120)
    assert p.returncode == -9, p.stderr
    assert "m.db-wal" in traces(db, "crash-secret-6061")  # the crash left the old page in the WAL
    with MemoryStore(db) as store:
        assert traces(db, "crash-secret-6061") == []  # opening the store wipes it
        assert store.count("alice") == 40


@settings(max_examples=12, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["add", "forget", "update", "match", "all"]), st.integers(0, 30)),
                    min_size=1, max_size=25))
def test_forgotten_secrets_never_remain_property(tmp_path_factory, ops):
    db = tmp_path_factory.mktemp("prop") / "m.db"
    live: dict[int, str] = {}
    gone: list[str] = []
    with MemoryStore(db) as store:
        for n, (op, arg) in enumerate(ops):
            if op == "add" or not live:
                secret = f"sec{n:03d}x{arg:02d}q"
                live[store.remember("alice", f"The code {secret} " + "pad " * arg).id] = secret
            elif op == "forget":
                i = sorted(live)[arg % len(live)]
                store.forget("alice", i)
                gone.append(live.pop(i))
            elif op == "update":
                i = sorted(live)[arg % len(live)]
                gone.append(live[i])
                live[i] = f"upd{n:03d}x{arg:02d}q"
                store.update("alice", i, f"The code {live[i]} now")
            elif op == "match":
                secret = live[sorted(live)[arg % len(live)]]
                store.forget_matching("alice", secret)
                live = {i: t for i, t in live.items() if t != secret}
                gone.append(secret)
            else:
                store.forget_all("alice")
                gone += live.values()
                live = {}
            for secret in gone:
                assert traces(db, secret) == [], (secret, op)
        for secret in live.values():
            assert traces(db, secret), secret  # what was not forgotten is still there
