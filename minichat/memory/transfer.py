"""Export and import of one user's memories and saved conversations as JSON (a backup, or a move between machines).

    {"format": "minichat-memory", "version": 1, "user": "alice", "exported": "2026-11-30T08:00:00.000Z",
     "memories": [{"text": ..., "source": "explicit", "tags": [...], "created": ..., "updated": ...}, ...],
     "conversations": [{"title": ..., "messages": [{"role": ..., "content": ...}], "created": ..., "updated": ...}]}

Ids are not exported: an import gets fresh ones, so it cannot collide with (or overwrite) existing rows. Import is
strict and all-or-nothing: every record is validated with the same rules as `remember` before the single
transaction that inserts them; one bad record refuses the whole file with its position named. Memories the user
already has are skipped, so importing the same file twice adds nothing. The file's "user" field is informational:
the records go to the user the caller names.

An export file is a plain-text copy of the memories: forgetting a memory does not reach into files exported
earlier (docs/memory.md says so).
"""
from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from minichat.memory.errors import MemoryInputError
from minichat.memory.store import MemoryStore, now_iso
from minichat.memory.validate import check_messages, check_source, check_tags, check_text, check_user

FORMAT, VERSION = "minichat-memory", 1
MAX_FILE = 50_000_000  # characters of JSON an import reads


def export_data(store: MemoryStore, user: str) -> dict[str, Any]:
    user = check_user(user)
    return {"format": FORMAT, "version": VERSION, "user": user, "exported": now_iso(),
            "memories": [{"text": e.text, "source": e.source, "tags": list(e.tags), "created": e.created,
                          "updated": e.updated} for e in store.list(user)],
            "conversations": [{"title": c.title, "messages": list(c.messages), "created": c.created,
                               "updated": c.updated} for c in store.conversations(user)]}


def export_json(store: MemoryStore, user: str) -> str:
    return json.dumps(export_data(store, user), ensure_ascii=False, indent=1)


def _time(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise MemoryInputError(f"{where}: the time must be an ISO 8601 string, not {value!r}")
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MemoryInputError(f"{where}: {value!r} is not an ISO 8601 time") from None
    return value


def parse(data: str | bytes | dict) -> tuple[list[dict], list[dict]]:
    """Validate an export (text or already-parsed) and return (memories, conversations), ready to insert."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_FILE:
            raise MemoryInputError(f"the import is {len(data)} characters, more than {MAX_FILE}; split it")
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise MemoryInputError(f"the import is not valid JSON ({e}); nothing was imported") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise MemoryInputError(f"not a minichat memory export (expected a JSON object with \"format\": "
                               f"\"{FORMAT}\"); nothing was imported")
    if data.get("version") != VERSION:
        raise MemoryInputError(f"export version {data.get('version')!r} is not supported (this minichat reads "
                               f"version {VERSION}); nothing was imported")
    raw_mem, raw_conv = data.get("memories", []), data.get("conversations", [])
    if not isinstance(raw_mem, list) or not isinstance(raw_conv, list):
        raise MemoryInputError("\"memories\" and \"conversations\" must be lists; nothing was imported")
    memories = []
    for i, m in enumerate(raw_mem):
        where = f"memories[{i}]"
        if not isinstance(m, dict) or set(m) - {"text", "source", "tags", "created", "updated"}:
            raise MemoryInputError(f"{where}: expected an object with text, source, tags, created, updated")
        try:
            created = _time(m.get("created", now_iso()), where)
            memories.append({"text": check_text(m.get("text")), "source": check_source(m.get("source", "explicit")),
                             "tags": list(check_tags(m.get("tags", []))), "created": created,
                             "updated": _time(m.get("updated", created), where)})
        except MemoryInputError as e:
            raise MemoryInputError(f"{where}: {e}; nothing was imported") from None
    conversations = []
    for i, c in enumerate(raw_conv):
        where = f"conversations[{i}]"
        if not isinstance(c, dict):
            raise MemoryInputError(f"{where}: expected an object with title, messages, created, updated")
        try:
            created = _time(c.get("created", now_iso()), where)
            conversations.append({"title": check_text(c.get("title", "untitled"), "title")[:200],
                                  "messages": check_messages(c.get("messages", [])), "created": created,
                                  "updated": _time(c.get("updated", created), where)})
        except MemoryInputError as e:
            raise MemoryInputError(f"{where}: {e}; nothing was imported") from None
    return memories, conversations


def import_json(store: MemoryStore, user: str, data: str | bytes | dict) -> tuple[int, int, int]:
    """Import an export into `user`'s memory; returns (memories added, duplicates skipped, conversations added)."""
    memories, conversations = parse(data)
    return store.insert_many(user, memories, conversations)


def import_file(store: MemoryStore, user: str, path: str | os.PathLike) -> tuple[int, int, int]:
    path = Path(path)
    if path.stat().st_size > MAX_FILE * 4:
        raise MemoryInputError(f"{path} is {path.stat().st_size} bytes, too large for a memory export")
    return import_json(store, user, path.read_bytes())
