"""Memory: what the assistant keeps about a user between chats, and how it brings back only what is relevant.

    store.py      MemoryStore: one SQLite file, every row scoped by user; remember / update / forget / list / search,
                  saved conversations. Forget means gone (secure_delete + WAL checkpoint; no full-text index copy).
    schema.py     where the file lives, the checks before any write (corrupt / newer files are never touched),
                  connection settings and the versioned migrations
    recall.py     StoreMemory: the chat's Memory socket (retrieve -> snippets, with scores in last_hits), the model's
                  `remember` tool, the temporary mode that neither reads nor writes
    validate.py   the input rules (sizes, characters, tags, user ids), checked before any write
    transfer.py   JSON export / import (strict, all or nothing)
    commands.py   `minichat memory list|search|remember|forget|export|import`
    errors.py     the exceptions

Retrieval uses minichat.bm25 (shared with the notes tool). This package imports only config, errors and bm25 of
minichat, and knows nothing of tokens or models (docs/design.md §2). docs/memory.md tells the whole story.
"""
from minichat.memory.errors import MemoryCorrupt, MemoryInputError, MemoryNotFound, MemoryStoreError, MemoryVersionError
from minichat.memory.recall import REMEMBER_SCHEMA, StoreMemory, asks_what_is_remembered, open_memory
from minichat.memory.schema import default_path
from minichat.memory.store import Conversation, Entry, Forgotten, Hit, MemoryStore

__all__ = ["Conversation", "Entry", "Forgotten", "Hit", "MemoryCorrupt", "MemoryInputError", "MemoryNotFound",
           "MemoryStore", "MemoryStoreError", "MemoryVersionError", "REMEMBER_SCHEMA", "StoreMemory",
           "asks_what_is_remembered", "default_path", "open_memory"]
