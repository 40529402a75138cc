"""`minichat memory ...` as the argparse hook wires it, and JSON export/import (strict, all or nothing)."""
from __future__ import annotations

import argparse
import contextlib
import io
import json

import pytest

from minichat.memory import MemoryInputError, MemoryNotFound, MemoryStore
from minichat.memory.commands import add_parser, cmd_forget
from minichat.memory.transfer import export_data, export_json, import_json


def run(*argv: str) -> str:
    ap = argparse.ArgumentParser(prog="minichat")
    add_parser(ap.add_subparsers(dest="command", required=True))
    args = ap.parse_args(list(argv))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the functions print to sys.stdout by default
        assert args.run(args) == 0
    return out.getvalue()


def test_cli_round_trip(tmp_path, monkeypatch):
    db = str(tmp_path / "m.db")
    monkeypatch.setenv("MINICHAT_MEMORY", db)
    assert "remembered 1" in run("memory", "remember", "The user likes green tea.", "--user", "alice", "--tag", "prefs")
    run("memory", "remember", "The user's dog is Biscuit.", "--user", "alice")
    run("memory", "remember", "Bob's secret.", "--user", "bob")
    listed = run("memory", "list", "--user", "alice")
    assert "The user likes green tea.  [prefs]" in listed and "Biscuit" in listed and "Bob" not in listed
    found = run("memory", "search", "what tea", "--user", "alice")
    assert "green tea" in found and "matched: tea" in found and "Biscuit" not in found
    assert "no memory shares a word" in run("memory", "search", "zzz", "--user", "alice")
    assert "forgot 1 memory (ids 2)" in run("memory", "forget", "2", "--user", "alice")
    assert "Biscuit" not in run("memory", "list", "--user", "alice")
    exported = tmp_path / "alice.json"
    assert "exported" in run("memory", "export", str(exported), "--user", "alice")
    assert exported.stat().st_mode & 0o777 == 0o600
    assert "imported 1 memories (0 already known)" in run("memory", "import", str(exported), "--user", "carol")
    assert "imported 0 memories (1 already known)" in run("memory", "import", str(exported), "--user", "carol")
    assert "forgot 1 memory" in run("memory", "forget", "--all", "--user", "alice")
    assert "no memories for user 'alice'" in run("memory", "list", "--user", "alice")
    assert "Bob's secret." in run("memory", "list", "--user", "bob", "--memory", db)
    monkeypatch.setenv("MINICHAT_USER", "bob")
    assert "Bob's secret." in run("memory", "list")


def test_forget_needs_exactly_one_target(tmp_path):
    db = str(tmp_path / "m.db")
    for kwargs in ({}, {"memory_id": 1, "everything": True}, {"matching": "x", "everything": True}):
        with pytest.raises(MemoryInputError, match="exactly one"):
            cmd_forget(path=db, user="alice", **kwargs)
    with pytest.raises(MemoryNotFound):
        cmd_forget(7, "alice", db, out=io.StringIO())
    with pytest.raises(SystemExit):  # argparse refuses a non-numeric id
        run("memory", "forget", "seven")


def test_export_import_preserves_everything(tmp_path):
    with MemoryStore(tmp_path / "a.db") as a, MemoryStore(tmp_path / "b.db") as b:
        a.remember("alice", "The user likes tea.", tags=["prefs"], source="tool")
        a.remember("alice", "The user lives in Lyon.")
        a.save_conversation("alice", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}])
        data = export_data(a, "alice")
        assert data["format"] == "minichat-memory" and data["user"] == "alice" and "id" not in data["memories"][0]
        assert import_json(b, "alice2", export_json(a, "alice")) == (2, 0, 1)
        strip = lambda es: [(e.text, e.source, e.tags, e.created, e.updated) for e in es]  # noqa: E731
        assert strip(b.list("alice2")) == strip(a.list("alice"))
        assert [c.messages for c in b.conversations("alice2")] == [c.messages for c in a.conversations("alice")]


@pytest.mark.parametrize("doc, message", [
    ("not json", "not valid JSON"), ("[]", "not a minichat memory export"),
    ('{"format": "other"}', "not a minichat memory export"),
    ('{"format": "minichat-memory", "version": 9}', "version 9"),
    ('{"format": "minichat-memory", "version": 1, "memories": {}}', "must be lists"),
    ('{"format": "minichat-memory", "version": 1, "memories": [{"text": "ok"}, {"text": ""}]}',
     r"memories\[1\].*empty"),
    ('{"format": "minichat-memory", "version": 1, "memories": [{"text": "ok", "source": "gossip"}]}', "source"),
    ('{"format": "minichat-memory", "version": 1, "memories": [{"text": "ok", "created": "yesterday"}]}', "ISO"),
    ('{"format": "minichat-memory", "version": 1, "memories": [{"text": "ok", "evil": 1}]}', "expected an object"),
    ('{"format": "minichat-memory", "version": 1, "memories": [{"text": "ok", "tags": ["a b"]}]}', "tag"),
    ('{"format": "minichat-memory", "version": 1, "conversations": [{"messages": [{"role": "x"}]}]}', "role"),
])
def test_malformed_imports_are_refused_whole(tmp_path, doc, message):
    with MemoryStore(tmp_path / "m.db") as s:
        with pytest.raises(MemoryInputError, match=message):
            import_json(s, "alice", doc)
        assert s.count("alice") == 0 and s.conversations("alice") == []  # nothing at all was imported


def test_oversized_import_is_refused(tmp_path, monkeypatch):
    import minichat.memory.transfer as transfer

    monkeypatch.setattr(transfer, "MAX_FILE", 1000)
    big = json.dumps({"format": "minichat-memory", "version": 1,
                      "memories": [{"text": f"fact {i}"} for i in range(200)]})
    with MemoryStore(tmp_path / "m.db") as s, pytest.raises(MemoryInputError, match="more than 1000"):
        import_json(s, "alice", big)
