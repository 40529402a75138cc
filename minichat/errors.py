"""The library's exception types, one per kind of bad input, so callers can catch exactly what they expect.

Every message names what was wrong and what to do about it. Validation never uses `assert` (it vanishes under -O).
"""


class MinichatError(Exception):
    """Base class for minichat's own errors."""


class TokenizerError(MinichatError, ValueError):
    """Bad tokenizer input: unknown ids, a disallowed special token in text, a corrupt vocabulary file."""


class CheckpointError(MinichatError, ValueError):
    """A model file that is truncated, corrupt, or does not match the configuration it claims."""
