"""Building reference objects from minichat ones for the peer tests (kept apart from conftest's fixtures)."""
from __future__ import annotations

from minichat.tokenizer import Tokenizer
from minichat.tokenizer.vocab import bytes_to_unicode


def hf_tokenizer_from(tok: Tokenizer):
    """The same vocabulary as an HF `tokenizers.Tokenizer` (byte-level BPE from vocab + merges, same split regex)."""
    from tokenizers import AddedToken, Regex, Tokenizer as HFTokenizer, decoders, models, pre_tokenizers

    show = bytes_to_unicode()
    text = {i: "".join(show[b] for b in bs) for i, bs in tok.vocab.items()}
    vocab = {s: i for i, s in text.items()}
    merges = [(text[a], text[b]) for a, b, _ in tok.merges]
    hf = HFTokenizer(models.BPE(vocab, merges))
    hf.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tok.pattern), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    hf.decoder = decoders.ByteLevel()
    for s, i in sorted(tok.special_tokens.items(), key=lambda kv: kv[1]):
        hf.add_special_tokens([AddedToken(s, special=True, normalized=False)])
        assert hf.token_to_id(s) == i, "special ids must follow the ordinary ones in order"
    return hf
