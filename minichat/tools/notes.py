"""Ranked search over the user's notes: a folder of text files, split into notes, ranked with BM25.

    notes/
      health.txt      "Dentist appointment with Dr. Okafor on Tuesday at 09:30.\\n\\nBring the insurance card."
      travel.md       "Flight to Lisbon leaves on 3 May at 07:15, gate 12."

    NotesIndex("notes").search("dentist")  ->  [Note("health.txt", "Dentist appointment with Dr. Okafor ...", 1.2)]

A note is a paragraph (text between blank lines) of a .txt or .md file, its whitespace folded to single spaces,
because the built-in model was trained on one-sentence notes and copies them into its answer. Each note is a BM25
document of its file name's words and its text (so "dentist" finds health/dentist.txt's paragraphs even when the
word is only in the name); the ranking is `minichat.bm25.BM25` (the same module memory retrieval uses; equal to
rank_bm25.BM25Okapi from three notes up). Only notes sharing at least one word with the query are returned, best
first; BM25's idf floor can give a shared word a score of zero or less in a corpus where it is everywhere, and such
a note is still a match.

The folder is read again when a file changed (a file's size and modification time are compared at each search), so
a note written during a chat is found. Files larger than MAX_FILE_BYTES and files that are not UTF-8 are skipped.

What it leaves out: stemming ("dentists" does not find "dentist"), PDF or Word files, subfolders beyond MAX_FILES.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from minichat.bm25 import BM25, tokenize

SUFFIXES = (".txt", ".md")
MAX_FILE_BYTES = 1_000_000
MAX_FILES = 2000


@dataclass(frozen=True)
class Note:
    file: str  # the path relative to the notes folder, with / separators
    text: str
    score: float


def split_notes(text: str) -> list[str]:
    """A file's text -> its paragraphs, each on one line: "a\\nb\\n\\n c " -> ["a b", "c"]."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


class NotesIndex:
    """BM25 over the notes in `folder`; `search(query, k)` returns the k best matching notes."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self._stamp: tuple = ()
        self._notes: list[tuple[str, str]] = []  # (file, text)
        self._words: list[set[str]] = []  # each note's indexed words, to tell a match from a non-match
        self._index: BM25 | None = None

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            raise FileNotFoundError(f"the notes folder {str(self.folder)!r} does not exist; create it or pass "
                                    f"another folder (minichat chat --notes DIR)")
        files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
        return files[:MAX_FILES]

    def refresh(self) -> None:
        """Re-read the folder if any file was added, removed or changed since the last read."""
        files = self._files()
        stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
        if stamp == self._stamp and self._index is not None:
            return
        notes = []
        for p in files:
            if p.stat().st_size > MAX_FILE_BYTES:
                continue
            try:
                text = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            name = p.relative_to(self.folder).as_posix()
            notes += [(name, n) for n in split_notes(text)]
        docs = [self.document(f, t) for f, t in notes]
        self._notes, self._words, self._stamp = notes, [set(d) for d in docs], stamp
        self._index = BM25(docs)

    @staticmethod
    def document(file: str, text: str) -> list[str]:
        """The tokens a note is indexed by: its file name's words (without the suffix), then its text's."""
        return tokenize(Path(file).with_suffix("").as_posix().replace("/", " ")) + tokenize(text)

    def search(self, query: str, k: int = 3) -> list[Note]:
        self.refresh()
        terms = tokenize(query)
        if not terms or not self._notes:
            return []
        wanted = set(terms)
        ranked = self._index.top_k(terms, len(self._notes))
        hits = [(i, s) for i, s in ranked if not wanted.isdisjoint(self._words[i])]
        return [Note(self._notes[i][0], self._notes[i][1], s) for i, s in hits[:k]]
