"""Memory through the real CLI, across processes: told in one chat, used in the next, gone after forget."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO


def run(*args: str, stdin: str = "", db) -> subprocess.CompletedProcess:
    env = {**os.environ, "MINICHAT_MEMORY": str(db)}
    return subprocess.run([sys.executable, "-m", "minichat", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=300, env=env)


def test_a_preference_told_in_one_chat_is_used_in_the_next_and_forgotten_for_good(tmp_path):
    db = tmp_path / "memory.db"
    told = run("chat", "--trace", stdin="Please remember that my favourite colour is teal.\n", db=db)
    assert told.returncode == 0, told.stderr
    assert "[memory updated] Saved to memory: The user's favourite colour is teal." in told.stdout
    listed = run("memory", "list", db=db)
    assert "The user's favourite colour is teal." in listed.stdout
    asked = run("chat", "--trace", stdin="What is my favourite colour?\n", db=db)  # a new process
    assert "- The user's favourite colour is teal." in asked.stdout  # the memory note the model read
    reply = [line for line in asked.stdout.splitlines() if line and not line.startswith(("[", "- "))]
    assert any("colour is teal" in line for line in reply), asked.stdout  # and the model's answer uses it
    memory_id = listed.stdout.split()[0]
    assert run("memory", "forget", memory_id, db=db).returncode == 0
    assert "teal" not in run("memory", "list", db=db).stdout
    after = run("chat", stdin="What is my favourite colour?\n", db=db)
    assert after.returncode == 0 and "teal" not in after.stdout
    # and not a byte of it is left in the database's files
    for f in tmp_path.iterdir():
        assert b"teal" not in f.read_bytes(), f.name


def test_a_temporary_chat_neither_reads_nor_writes(tmp_path):
    db = tmp_path / "memory.db"
    assert run("memory", "remember", "The user's dog is called Biscuit.", db=db).returncode == 0
    out = run("chat", "--temporary", "--trace", stdin="Please remember that my cat is called Miso.\n", db=db)
    assert out.returncode == 0 and "[memory not updated]" in out.stdout and "temporary chat" in out.stdout
    out = run("chat", "--temporary", "--trace", stdin="What is my dog's name?\n", db=db)
    assert "Biscuit" not in out.stdout
    listed = run("memory", "list", db=db).stdout
    assert "Biscuit" in listed and "Miso" not in listed
    bad = run("chat", "--temporary", "--memory", str(db), stdin="hi\n", db=db)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_slash_commands_manage_memory_in_the_terminal(tmp_path):
    pexpect = pytest.importorskip("pexpect")
    env = {**os.environ, "MINICHAT_MEMORY": str(tmp_path / "memory.db")}
    child = pexpect.spawn(sys.executable, ["-m", "minichat", "chat"], cwd=str(REPO), env=env, encoding="utf-8",
                          timeout=120)
    try:
        child.expect("you> ")
        child.sendline("/remember The user's favourite tea is sencha.")
        child.expect(r"remembered #(\d+)")
        memory_id = child.match.group(1)
        child.sendline("/memory")
        child.expect("favourite tea is sencha")
        child.sendline(f"/forget {memory_id}")
        child.expect(r"forgot 1 memory")
        child.sendline("/memory")
        child.expect(r"nothing remembered yet")
        child.sendline("/forget")
        child.expect("usage")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
