"""Incremental decoding for streaming: ids arrive one at a time, text leaves as soon as it is whole.

A token is a run of bytes, not of characters: "é" is two UTF-8 bytes and a byte-level BPE may put them in different
tokens, and an emoji with skin tone is eight bytes that may span four tokens. Decoding each token on its own would
print U+FFFD halves. `StreamDecoder` keeps the bytes of an unfinished character back until the rest arrives, using
Python's incremental UTF-8 decoder, so the concatenated pieces always equal `tokenizer.decode(all_ids)`.

Invalid UTF-8 (possible when a model emits tokens in a nonsensical order) becomes U+FFFD, as in `decode`.
"""
from __future__ import annotations

import codecs
from collections.abc import Iterable

from minichat.tokenizer.bpe import Tokenizer


class StreamDecoder:
    """Feed token ids, get text. Call `flush()` at the end for whatever is still held back.

    >>> d = StreamDecoder(tok)               # doctest: +SKIP
    >>> [d.feed(i) for i in tok.encode("né")] + [d.flush()]   # doctest: +SKIP
    ['n', 'é', '']
    """

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, token_id: int) -> str:
        """Add one token; return the text it completes (possibly "", when a character is still unfinished)."""
        return self._utf8.decode(self.tokenizer.token_bytes(token_id))

    def feed_many(self, ids: Iterable[int]) -> str:
        return self._utf8.decode(self.tokenizer.decode_bytes(ids))

    @property
    def pending(self) -> bytes:
        """The bytes held back because they start a character that has not finished yet."""
        return self._utf8.getstate()[0]

    def flush(self) -> str:
        """End of stream: held-back bytes (an unfinished character) come out as U+FFFD; the decoder resets."""
        text = self._utf8.decode(b"", final=True)
        self._utf8.reset()
        return text
