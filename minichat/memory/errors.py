"""The memory store's exceptions: each names what was wrong and what to do, and none is raised after a partial write.

    MemoryStoreError      base class (a MinichatError)
      MemoryCorrupt       the file is not a SQLite database, fails its integrity check, or belongs to another program
      MemoryVersionError  the database was written by a newer minichat (a schema version this code does not know)
      MemoryInputError    text, tags, user id, conversation or import file refused (also a ValueError)
      MemoryNotFound      no memory / conversation with that id *for this user* (also a LookupError)

A corrupt or newer database is never written to: these errors are raised before the first write.
"""
from __future__ import annotations

from minichat.errors import MinichatError


class MemoryStoreError(MinichatError):
    """Base class for the memory store's errors."""


class MemoryCorrupt(MemoryStoreError):
    """The database file cannot be trusted; it was left exactly as found."""


class MemoryVersionError(MemoryStoreError):
    """The database's schema is newer than this code; it was left exactly as found."""


class MemoryInputError(MemoryStoreError, ValueError):
    """Input refused before anything was stored."""


class MemoryNotFound(MemoryStoreError, LookupError):
    """No such memory or conversation for this user (another user's ids are indistinguishable from missing ones)."""
