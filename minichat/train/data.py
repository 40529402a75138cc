"""Training data: token ids in (B, T) batches with next-token targets and a loss mask, resumable by step.

    text_batches   plain language-model training: files or strings are encoded, joined with <|endoftext|> and cut
                   into windows of T + 1 tokens; every target counts (mask 1).
    pack           (ids, mask) sequences, e.g. conversations with their assistant-only loss mask (the chat template's
                   render_with_mask; minichat/builtin/data.py's chat_batches), packed whole into rows of T + 1 tokens
                   (first fit over a few open rows, padding with <|endoftext|> at mask 0).
    Batches        rows of T + 1 tokens -> endless, deterministic, resumable batches.

A row s of T + 1 tokens gives ids = s[:-1], targets = s[1:] and mask = m[1:], where m[j] says whether token j is
trained on: mask[t] weights the loss of predicting targets[t] from ids[:t + 1].

Batches are a pure function of (rows, seed, step): epoch e visits the rows in the order of
`default_rng([seed, e]).permutation(n_rows)`, and step i takes the next B of that endless sequence. So resuming at
step i (`Batches.restore({"step": i, ...})`, or `batch(i)`) gives exactly the batches an uninterrupted run would.

What it leaves out: attention masks between packed sequences (they may attend to the previous one in the row, as in
GPT-2/nanoGPT packing), streaming from disk (everything is held in memory: 20k conversations are ~30 MB).
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from minichat.tokenizer import Tokenizer

ENDOFTEXT = "<|endoftext|>"  # between documents of a stream, and the padding of packed rows


class Batch(NamedTuple):
    """One micro-batch. Unpacks as `ids, targets, mask = batch`."""

    ids: np.ndarray  # (B, T) int64 input token ids
    targets: np.ndarray  # (B, T) int64 the next token at each position
    mask: np.ndarray  # (B, T) float32 1.0 where the target counts in the loss, else 0.0


# -- packing -----------------------------------------------------------------------------------------------------------

def pack(sequences: Iterable[tuple[Sequence[int], Sequence[int]]], seq_len: int, pad_id: int,
         open_rows: int = 8) -> tuple[np.ndarray, np.ndarray, int]:
    """Pack (ids, mask) sequences (lists or 1-D arrays) whole into rows of seq_len + 1 tokens: (rows (N, T+1) int32,
    masks (N, T+1) uint8, number of sequences cut because they alone were longer than a row).

    First fit: each sequence goes into the first of up to `open_rows` unfinished rows with room for it; when none
    has room, the fullest is closed and a new one opened. The rest of a closed row is padding (pad_id, mask 0).
    """
    if seq_len < 1 or open_rows < 1:
        raise ValueError(f"seq_len and open_rows must be >= 1, got {seq_len} and {open_rows}")
    cap = seq_len + 1
    done: list[tuple[list, list]] = []
    rows: list[tuple[list, list]] = []
    cut = 0
    for ids, mask in sequences:
        ids, mask = list(ids), list(mask)
        if len(ids) != len(mask):
            raise ValueError(f"ids and mask differ in length ({len(ids)} vs {len(mask)})")
        if len(ids) > cap:
            ids, mask, cut = ids[:cap], mask[:cap], cut + 1
        for row in rows:
            if len(row[0]) + len(ids) <= cap:
                row[0].extend(ids)
                row[1].extend(mask)
                break
        else:
            if len(rows) == open_rows:
                fullest = max(range(len(rows)), key=lambda k: len(rows[k][0]))
                done.append(rows.pop(fullest))
            rows.append((ids, mask))
        done += [r for r in rows if len(r[0]) == cap]
        rows = [r for r in rows if len(r[0]) < cap]
    done += rows
    out = np.full((len(done), cap), pad_id, dtype=np.int32)  # (N, T+1)
    out_mask = np.zeros((len(done), cap), dtype=np.uint8)  # (N, T+1)
    for k, (ids, mask) in enumerate(done):
        out[k, : len(ids)] = ids
        out_mask[k, : len(mask)] = mask
    return out, out_mask, cut


# -- batches -----------------------------------------------------------------------------------------------------------

class Batches:
    """Endless, deterministic, resumable batches over fixed rows of T + 1 tokens.

    `next(batches)` gives the batch at `batches.step` and advances; `batch(step)` gives any step's batch without
    moving; `state()` / `restore(state)` save and resume the position (the trainer stores it in its checkpoint).
    """

    def __init__(self, rows: np.ndarray, masks: np.ndarray, batch_size: int, seed: int = 0, cut: int = 0,
                 weights: Sequence[float] | None = None):
        rows, masks = np.asarray(rows), np.asarray(masks)
        if rows.ndim != 2 or rows.shape != masks.shape or rows.shape[1] < 2 or len(rows) == 0:
            raise ValueError(f"rows and masks must be equal (N, T+1) arrays with N >= 1 and T >= 1, got "
                             f"{rows.shape} and {masks.shape}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {batch_size}")
        self.rows, self.masks = rows, masks  # (N, T+1) int32, (N, T+1) uint8
        # weights[level]: the loss weight of a target whose mask holds `level` (None: the mask is the weight, 0 or 1)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float32)  # (levels,)
        if self.weights is not None and (self.weights.ndim != 1 or int(masks.max()) >= len(self.weights)
                                         or (self.weights < 0).any()):
            raise ValueError(f"weights must give a weight >= 0 to every mask level 0..{int(masks.max())}, got "
                             f"{list(self.weights)}")
        self.batch_size, self.seed, self.step, self.cut = int(batch_size), int(seed), 0, cut
        self._perms: dict[int, np.ndarray] = {}

    @property
    def seq_len(self) -> int:
        return self.rows.shape[1] - 1

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    @property
    def steps_per_epoch(self) -> float:
        return self.n_rows / self.batch_size

    @property
    def trained_tokens(self) -> int:
        """Targets with mask 1 (the assistant's, in chat data) in one pass over the rows."""
        return int((self.masks[:, 1:] == 1).sum())

    def _weigh(self, m: np.ndarray) -> np.ndarray:  # (B, T) mask levels -> (B, T) float32 loss weights
        return m.astype(np.float32) if self.weights is None else self.weights[m]

    def _perm(self, epoch: int) -> np.ndarray:  # (N,) the row order of one epoch
        if epoch not in self._perms:
            if len(self._perms) > 4:
                self._perms.clear()
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
        return self._perms[epoch]

    def batch(self, step: int) -> Batch:
        if step < 0:
            raise ValueError(f"step must be >= 0, not {step}")
        first = step * self.batch_size
        picks = [self._perm(g // self.n_rows)[g % self.n_rows] for g in range(first, first + self.batch_size)]
        s = self.rows[picks].astype(np.int64)  # (B, T+1)
        m = self._weigh(self.masks[picks, 1:])  # (B, T)
        return Batch(s[:, :-1], s[:, 1:], m)

    def one_pass(self) -> Iterator[Batch]:
        """Every row once, in stored order, in batches (the last may be smaller): for an evaluation loss over a
        whole held-out set. Does not move `step`."""
        for lo in range(0, self.n_rows, self.batch_size):
            s = self.rows[lo: lo + self.batch_size].astype(np.int64)  # (b, T+1)
            yield Batch(s[:, :-1], s[:, 1:], self._weigh(self.masks[lo: lo + self.batch_size, 1:]))

    def __iter__(self) -> "Batches":
        return self

    def __next__(self) -> Batch:
        b = self.batch(self.step)
        self.step += 1
        return b

    def state(self) -> dict:
        return {"step": self.step, "seed": self.seed, "n_rows": self.n_rows, "batch_size": self.batch_size,
                "seq_len": self.seq_len}

    def restore(self, state: dict) -> None:
        mine = self.state()
        for key in ("seed", "n_rows", "batch_size", "seq_len"):
            if key in state and state[key] != mine[key]:
                raise ValueError(f"cannot resume: the saved batches had {key}={state[key]}, these have {mine[key]} "
                                 f"(rebuild the data with the same corpus, seed and shape)")
        self.step = int(state["step"])


# -- plain text --------------------------------------------------------------------------------------------------------

def read_texts(paths: Iterable[str | os.PathLike]) -> list[str]:
    """The UTF-8 text of each file (directories: every *.txt and *.md file inside, sorted)."""
    out = []
    for p in map(Path, paths):
        files = sorted(f for f in p.rglob("*") if f.suffix in (".txt", ".md")) if p.is_dir() else [p]
        for f in files:
            try:
                out.append(f.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError) as e:
                raise ValueError(f"cannot read {f} as UTF-8 text: {e}") from None
    return out


def token_stream(tokenizer: Tokenizer, texts: Iterable[str]) -> np.ndarray:  # -> (N,) int32
    """All texts encoded as ordinary text, each followed by <|endoftext|> when the tokenizer has it."""
    eot = tokenizer.special_tokens.get(ENDOFTEXT)
    ids: list[int] = []
    for t in texts:
        ids += tokenizer.encode_ordinary(t)
        if eot is not None:
            ids.append(eot)
    return np.asarray(ids, dtype=np.int32)


def text_batches(tokenizer: Tokenizer, texts_or_paths: Iterable[str | os.PathLike], batch_size: int, seq_len: int,
                 seed: int = 0, *, paths: bool = False) -> Batches:
    """Batches for plain language-model training: the token stream cut into windows of seq_len + 1 tokens that
    overlap by one (each token is a target exactly once). `paths=True`: the items are files or directories."""
    texts = read_texts(texts_or_paths) if paths else list(texts_or_paths)
    stream = token_stream(tokenizer, texts)  # (N,)
    n = (len(stream) - 1) // seq_len
    if n < 1:
        raise ValueError(f"the texts hold {len(stream)} tokens, fewer than one window of seq_len + 1 = {seq_len + 1}; "
                         f"give more text or a smaller seq_len")
    rows = np.lib.stride_tricks.sliding_window_view(stream, seq_len + 1)[: n * seq_len: seq_len].copy()  # (n, T+1)
    return Batches(rows, np.ones_like(rows, dtype=np.uint8), batch_size, seed)
