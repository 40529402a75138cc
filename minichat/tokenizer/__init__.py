"""Byte-level BPE: train, encode, decode, special tokens, real vocabularies, streaming decode.

    basic.py     BPE's definition in four list functions (get_pair_counts, merge, encode_chunk, train_naive)
    bpe.py       the Tokenizer (encode/decode, special-token rules)
    train.py     learning merges from text
    patterns.py  pre-tokenization regexes (GPT-2, GPT-4)
    fastsplit.py the same split, exactly, faster on mostly-ASCII text
    stream.py    StreamDecoder, UTF-8-safe incremental decoding
    io.py        minichat's own file format
    vocab.py     GPT-2 files, tiktoken rank files, HF tokenizer.json
    show.py      token boundaries made visible (terminal and notebook)
"""
from minichat.tokenizer.bpe import Tokenizer
from minichat.tokenizer.io import load_tokenizer, save_tokenizer
from minichat.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN
from minichat.tokenizer.show import TokenPiece, TokenView, show_tokens, token_pieces
from minichat.tokenizer.stream import StreamDecoder
from minichat.tokenizer.train import train
from minichat.tokenizer.vocab import from_gpt2_files, from_hf_tokenizer_json, from_tiktoken_file

__all__ = ["GPT2_PATTERN", "GPT4_PATTERN", "StreamDecoder", "TokenPiece", "TokenView", "Tokenizer", "from_gpt2_files",
           "from_hf_tokenizer_json", "from_tiktoken_file", "load_tokenizer", "save_tokenizer", "show_tokens",
           "token_pieces", "train"]
