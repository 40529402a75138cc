"""minichat: how a ChatGPT-style assistant works, end to end, in readable NumPy that really runs on a laptop CPU.

The public API is re-exported here. Importing minichat is cheap: numba is imported only when a kernel first runs.
"""
from minichat.errors import CheckpointError, MinichatError, TokenizerError
from minichat.tokenizer import StreamDecoder, Tokenizer, load_tokenizer, train

__version__ = "0.1.0"
__all__ = ["CheckpointError", "MinichatError", "StreamDecoder", "Tokenizer", "TokenizerError", "load_tokenizer",
           "train", "__version__"]
