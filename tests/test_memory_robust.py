"""Robustness of the memory store: concurrent writers (threads and processes) lose nothing, a process killed with
SIGKILL mid-write loses nothing it committed, and a half-done transaction leaves no half of itself."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import pytest

from conftest import REPO
from minichat.memory import MemoryStore

WRITER = """
import sys
from minichat.memory import MemoryStore
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with MemoryStore(path) as s:
    for i in range(n):
        e = s.remember("shared", f"{tag} fact {i}")
        print(e.id, flush=True)          # printed only after the commit returned
        if i % 7 == 0:
            s.search("shared", "fact", 3)  # readers and writers interleave
"""

BULK = """
import sys
from minichat.memory import MemoryStore
with MemoryStore(sys.argv[1]) as s:
    rows = [{"text": f"bulk fact {i} " + "x" * 200, "source": "explicit", "tags": [], "created": "2026-01-01T00:00:00Z",
             "updated": "2026-01-01T00:00:00Z"} for i in range(int(sys.argv[2]))]
    print("start", flush=True)
    s.insert_many("bulk", rows)
    print("done", flush=True)
"""


def _python(script: str, *args: str) -> subprocess.Popen:
    env = os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def test_concurrent_threads_lose_nothing(tmp_path):
    store = MemoryStore(tmp_path / "m.db")
    errors = []

    def work(t):
        try:
            for i in range(30):
                store.remember("shared", f"thread {t} fact {i}")
                if i % 10 == 0:
                    store.forget_matching("shared", f"thread {t} fact {i}")  # forgets interleave with writes
                    store.remember("shared", f"thread {t} fact {i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    texts = {e.text for e in store.list("shared")}
    assert texts == {f"thread {t} fact {i}" for t in range(4) for i in range(30)}
    store.close()


@pytest.mark.slow
def test_concurrent_processes_lose_nothing(tmp_path):
    db = tmp_path / "m.db"
    MemoryStore(db).close()  # created once, so the writers race on writes rather than on creation
    procs = [_python(WRITER, str(db), f"proc{p}", "25") for p in range(3)]
    with MemoryStore(db) as here:  # and a writer in this process too
        for i in range(25):
            here.remember("shared", f"main fact {i}")
    outs = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err
    with MemoryStore(db) as s:
        texts = [e.text for e in s.list("shared")]
    expected = {f"{tag} fact {i}" for tag in ("proc0", "proc1", "proc2", "main") for i in range(25)}
    assert len(texts) == len(expected) and set(texts) == expected
    printed = [int(x) for out, _ in outs for x in out.split()]
    assert len(set(printed)) == 75  # every process got its own ids


@pytest.mark.slow
def test_sigkill_mid_writes_loses_nothing_committed(tmp_path):
    db = tmp_path / "m.db"
    MemoryStore(db).close()
    p = _python(WRITER, str(db), "killed", "100000")
    committed = []
    while len(committed) < 40:
        line = p.stdout.readline()
        assert line, p.stderr.read()
        committed.append(int(line))
    os.kill(p.pid, signal.SIGKILL)  # somewhere in the middle of the next write
    p.wait(timeout=30)
    committed += [int(x) for x in p.stdout.read().split()]  # lines printed before the kill landed
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with MemoryStore(db) as s:
        ids = {e.id for e in s.list("shared")}
        assert set(committed) <= ids  # nothing committed was lost
        assert len(ids) <= len(committed) + 1  # at most the one write in flight made it without being printed
        s.remember("shared", "life goes on")  # and the store is writable again


@pytest.mark.slow
def test_sigkill_during_one_big_transaction_is_all_or_nothing(tmp_path):
    db = tmp_path / "m.db"
    MemoryStore(db).close()
    interrupted = 0
    for delay in (0.02, 0.2):  # inserting 30,000 rows takes about a second here: the kill lands inside it
        p = _python(BULK, str(db), "30000")
        assert p.stdout.readline().strip() == "start", p.stderr.read()
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        interrupted += "done" not in p.stdout.read()
        with MemoryStore(db) as s:
            n = s.count("bulk")
        assert n in (0, 30000)  # never a part of the import
    assert interrupted  # at least one kill really landed mid-transaction
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_stores_on_one_file_see_each_other(tmp_path):
    a, b = MemoryStore(tmp_path / "m.db"), MemoryStore(tmp_path / "m.db")
    a.remember("alice", "The user likes green tea.")
    assert [h.entry.text for h in b.search("alice", "tea", 3)] == ["The user likes green tea."]
    b.remember("alice", "The user drinks tea at noon.")  # b's write invalidates a's cached index (data_version)
    assert len(a.search("alice", "tea", 3)) == 2
    b.forget_all("alice")
    assert a.search("alice", "tea", 3) == []
    a.close()
    b.close()
