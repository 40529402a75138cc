"""minichat: how a ChatGPT-style assistant works, end to end, in readable NumPy that really runs on a laptop CPU.

The public API is re-exported here:

    Tokenizer, train, load_tokenizer, StreamDecoder     tokenization (minichat.tokenizer)
    Transformer, load_model, save_checkpoint            the model and its checkpoints (minichat.model)
    SamplingConfig, generate, generate_batch             sampling and the generation loop (minichat.generate)
    Chat, Message                                         the chat loop and its events (minichat.chat)

Importing minichat is cheap: numba is imported only when a kernel first runs, and no peer library is ever imported.
"""
from minichat.chat import Message
from minichat.chat.session import Chat
from minichat.errors import CheckpointError, MinichatError, TokenizerError
from minichat.generate import SamplingConfig, generate, generate_batch
from minichat.model import Transformer, load_model, save_checkpoint
from minichat.tokenizer import StreamDecoder, Tokenizer, load_tokenizer, train

__version__ = "0.1.0"
__all__ = ["Chat", "CheckpointError", "Message", "MinichatError", "SamplingConfig", "StreamDecoder", "Tokenizer",
           "TokenizerError", "Transformer", "generate", "generate_batch", "load_model", "load_tokenizer",
           "save_checkpoint", "train", "__version__"]
