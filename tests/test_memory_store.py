"""The memory store's operations, input refusal, user isolation, schema migrations, and refusing corrupt or newer
databases without touching them."""
from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minichat.memory import (MemoryCorrupt, MemoryInputError, MemoryNotFound, MemoryStore, MemoryVersionError,
                             default_path)
from minichat.memory.schema import MIGRATIONS, VERSION
from minichat.memory.store import MAX_TEXT


class Clock:
    def __init__(self):
        self.t = 1_790_000_000.0

    def __call__(self):
        self.t += 1.5
        return self.t


@pytest.fixture
def store(tmp_path):
    with MemoryStore(tmp_path / "m.db", clock=Clock()) as s:
        yield s


def test_remember_list_get_update(store):
    a = store.remember("alice", "  The user likes green tea. ", tags=["prefs", "drinks", "prefs"])
    b = store.remember("alice", "The user lives in Lyon.", source="tool")
    assert a.text == "The user likes green tea." and a.tags == ("prefs", "drinks") and a.source == "explicit"
    assert a.created == a.updated and a.created.endswith("Z") and b.created > a.created
    assert [e.id for e in store.list("alice")] == [a.id, b.id]
    assert [e.id for e in store.list("alice", tag="drinks")] == [a.id]
    assert store.get("alice", b.id) == b
    u = store.update("alice", a.id, "The user likes oolong tea.", tags=["prefs"])
    assert u.text == "The user likes oolong tea." and u.tags == ("prefs",) and u.created == a.created
    assert u.updated > a.updated
    assert store.update("alice", b.id, tags=["home"]).text == b.text  # tags only


def test_remembering_the_same_fact_refreshes_it(store):
    a = store.remember("alice", "The user likes green tea.")
    again = store.remember("alice", "the user LIKES   green tea.", tags=["x"])
    assert again.id == a.id and again.text == a.text and again.tags == ("x",) and again.updated > a.updated
    assert store.count("alice") == 1


def test_forget_one_matching_all(store):
    ids = [store.remember("alice", f"fact {w}").id for w in ("one", "two", "dog one", "dog two")]
    assert store.forget("alice", ids[0]).ids == (ids[0],)
    with pytest.raises(MemoryNotFound, match="no memory with id"):
        store.forget("alice", ids[0])
    assert [e.text for e in store.matching("alice", "DOG")] == ["fact dog one", "fact dog two"]
    assert store.forget_matching("alice", "dog").ids == tuple(ids[2:])
    assert store.forget_matching("alice", "nothing like this").ids == ()
    assert [e.text for e in store.list("alice")] == ["fact two"]
    store.save_conversation("alice", [{"role": "user", "content": "hi"}])
    f = store.forget_all("alice", conversations=False)
    assert f.ids == (ids[1],) and f.conversations == () and len(store.conversations("alice")) == 1


def test_ids_of_forgotten_memories_are_never_reused(store):
    a = store.remember("alice", "first")
    store.forget("alice", a.id)
    assert store.remember("alice", "second").id != a.id


def test_search_ranks_by_bm25(store):
    for t in ("The user likes green tea.", "The user's dog is called Biscuit.", "Project Falcon ships in March.",
              "The user drinks coffee after lunch."):
        store.remember("alice", t)
    hits = store.search("alice", "what tea does the user like", 3)
    assert hits[0].entry.text == "The user likes green tea." and hits[0].score > 0
    assert "tea" in hits[0].matched and all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert store.search("alice", "zzz qqq", 3) == []  # no shared word: nothing comes back
    store.remember("alice", "The user prefers Falcon tea.")  # the cached index is rebuilt after a write
    assert "The user prefers Falcon tea." in [h.entry.text for h in store.search("alice", "falcon", 5)]


def test_users_are_isolated(store):
    a = store.remember("alice", "Alice's secret is apricot.")
    store.remember("bob", "Bob likes bananas.")
    assert [e.text for e in store.list("bob")] == ["Bob likes bananas."]
    assert store.search("bob", "apricot secret", 5) == []
    for op in (lambda: store.get("bob", a.id), lambda: store.forget("bob", a.id),
               lambda: store.update("bob", a.id, "hijacked")):
        with pytest.raises(MemoryNotFound):
            op()
    assert store.forget_matching("bob", "apricot").ids == ()
    assert store.forget_all("bob").ids != (a.id,)
    assert store.get("alice", a.id).text == "Alice's secret is apricot."
    cid = store.save_conversation("alice", [{"role": "user", "content": "private"}])
    assert store.conversations("bob") == []
    with pytest.raises(MemoryNotFound):
        store.conversation("bob", cid)
    with pytest.raises(MemoryNotFound):
        store.forget_conversation("bob", cid)


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["alice", "bob", "carol"]), st.sampled_from(["add", "forget", "all"]),
                              st.integers(0, 5)), max_size=25))
def test_isolation_property(tmp_path_factory, ops):
    # a model of the store (user -> {id: text}); the real store must agree after every operation
    model: dict[str, dict[int, str]] = {"alice": {}, "bob": {}, "carol": {}}
    with MemoryStore(tmp_path_factory.mktemp("iso") / "m.db") as s:
        for n, (user, op, arg) in enumerate(ops):
            if op == "add":
                e = s.remember(user, f"{user} fact {n}")
                model[user][e.id] = e.text
            elif op == "forget":
                target = sorted(i for u in model for i in model[u])[arg % max(1, sum(map(len, model.values())))
                                                                     ] if any(model.values()) else 1
                owner = next((u for u in model if target in model[u]), None)
                if owner == user:
                    s.forget(user, target)
                    del model[user][target]
                else:
                    with pytest.raises(MemoryNotFound):
                        s.forget(user, target)
            else:
                s.forget_all(user)
                model[user].clear()
            for u in model:
                assert {e.id: e.text for e in s.list(u)} == model[u]


@pytest.mark.parametrize("bad, message", [
    ("", "empty"), ("   \n ", "empty"), ("x" * (MAX_TEXT + 1), "more than"), ("nul\x00byte", "control"),
    ("esc\x1b[31mred", "control"), (42, "must be a string"), (None, "must be a string")])
def test_bad_text_is_refused(store, bad, message):
    with pytest.raises(MemoryInputError, match=message):
        store.remember("alice", bad)
    assert store.count("alice") == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"user": ""}, "user id"), ({"user": "a" * 65}, "user id"), ({"user": "al ice"}, "user id"),
    ({"user": "x'; DROP TABLE memories; --"}, "user id"), ({"source": "rumour"}, "source"),
    ({"tags": "prefs"}, "list of strings"), ({"tags": ["a b"]}, "tag"), ({"tags": [str(i) for i in range(17)]},
                                                                           "at most")])
def test_bad_fields_are_refused(store, kwargs, message):
    args = {"user": "alice", "text": "fine text"} | kwargs
    user = args.pop("user")
    with pytest.raises(MemoryInputError, match=message):
        store.remember(user, **args)


def test_text_at_the_limit_and_unicode_are_kept_exactly(store):
    text = "é" * MAX_TEXT
    assert store.remember("alice", text).text == text
    odd = "Emoji 🐍, RTL \u202e, tab\tand\nnewline, quotes ' \" and -- SQL"
    assert store.get("alice", store.remember("alice", odd).id).text == odd


def test_conversations_round_trip(store):
    msgs = [{"role": "user", "content": "Plan my trip to Lyon please"}, {"role": "assistant", "content": "Sure."}]
    cid = store.save_conversation("alice", msgs)
    c = store.conversation("alice", cid)
    assert c.title == "Plan my trip to Lyon please" and list(c.messages) == msgs
    store.save_conversation("alice", msgs[:1], title="Lyon", conversation_id=cid)
    assert store.conversation("alice", cid).title == "Lyon" and len(store.conversation("alice", cid).messages) == 1
    with pytest.raises(MemoryInputError, match="role"):
        store.save_conversation("alice", [{"role": "wizard", "content": "x"}])
    with pytest.raises(MemoryInputError, match="list of"):
        store.save_conversation("alice", "just a string")


def test_closed_store_says_so(tmp_path):
    s = MemoryStore(tmp_path / "m.db")
    s.close()
    with pytest.raises(Exception, match="closed"):
        s.list("alice")


def test_default_path_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MINICHAT_MEMORY", str(tmp_path / "env" / "mem.db"))
    assert default_path() == tmp_path / "env" / "mem.db"
    with MemoryStore() as s:
        assert s.path == tmp_path / "env" / "mem.db"
    assert (tmp_path / "env" / "mem.db").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "env").stat().st_mode & 0o777 == 0o700
    monkeypatch.delenv("MINICHAT_MEMORY")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".minichat" / "memory.db"


# -- schema versions and damaged files ------------------------------------------------------------------------------

def test_migration_from_version_1_keeps_the_data(tmp_path):
    db = tmp_path / "v1.db"
    conn = sqlite3.connect(db, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO memories (user, text, source, created, updated) VALUES "
                 "('alice', 'The user likes tea.', 'explicit', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')")
    conn.close()
    with MemoryStore(db) as s:
        (e,) = s.list("alice")
        assert e.text == "The user likes tea." and e.tags == () and e.created == "2026-01-01T00:00:00.000Z"
        assert s.save_conversation("alice", [{"role": "user", "content": "hi"}]) == 1  # the v2 table exists
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == VERSION == 2


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_newer_version_is_refused_and_untouched(tmp_path):
    db = tmp_path / "new.db"
    with MemoryStore(db) as s:
        s.remember("alice", "keep me")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {VERSION + 5}")
    conn.commit()
    conn.close()
    before = _digest(db)
    with pytest.raises(MemoryVersionError, match=f"version {VERSION + 5}.*newer.*untouched"):
        MemoryStore(db)
    assert _digest(db) == before


@pytest.mark.parametrize("damage", ["text", "garbage-header", "truncated", "page-garbage", "foreign"])
def test_corrupt_database_is_refused_and_untouched(tmp_path, damage):
    db = tmp_path / "bad.db"
    if damage == "text":
        db.write_text("these are my notes, not a database\n" * 20)
    elif damage == "foreign":
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE invoices (n INTEGER)")
        conn.commit()
        conn.close()
    else:
        with MemoryStore(db) as s:
            for i in range(300):
                s.remember("alice", f"memory {i} " + "words " * 30)
        data = bytearray(db.read_bytes())
        if damage == "garbage-header":
            data[:16] = b"NOT SQLITE AT AL"
        elif damage == "truncated":
            data = data[: len(data) // 2 + 100]
        else:  # scribble over b-tree pages after the header page
            for off in range(4096 * 2, len(data), 4096):
                data[off: off + 64] = b"\xff" * 64
        db.write_bytes(bytes(data))
    before = _digest(db)
    with pytest.raises(MemoryCorrupt, match="untouched"):
        MemoryStore(db)
    assert _digest(db) == before
    assert not (tmp_path / "bad.db-wal").exists() or (tmp_path / "bad.db-wal").stat().st_size == 0


def test_a_folder_is_not_a_database(tmp_path):
    with pytest.raises(Exception, match="is a folder"):
        MemoryStore(tmp_path)


def test_an_empty_file_becomes_a_new_store(tmp_path):
    db = tmp_path / "empty.db"
    db.touch()
    with MemoryStore(db) as s:
        assert s.list("alice") == []


def test_rows_on_disk_are_plain_json_tags(tmp_path):
    with MemoryStore(tmp_path / "m.db") as s:
        s.remember("alice", "x", tags=["a", "b"])
    row = sqlite3.connect(tmp_path / "m.db").execute("SELECT user, tags, source FROM memories").fetchone()
    assert row == ("alice", json.dumps(["a", "b"]), "explicit")


@pytest.mark.parametrize("bad", ["1", None, 0, -3, True, 1.0])
def test_bad_ids_are_refused(store, bad):
    store.remember("alice", "fact")
    for op in (store.get, store.forget, store.forget_conversation):
        with pytest.raises(MemoryInputError, match="whole number"):
            op("alice", bad)
    assert store.count("alice") == 1
