"""Export to Hugging Face and GGUF, checked by the readers of those formats: `transformers` loads the HF folder and
its logits equal minichat's (Llama with GQA, and GPT-2), `tokenizers` reads tokenizer.json and encodes like minichat,
HF's apply_chat_template runs the exported ChatML template to the ids minichat's template renders; the `gguf` package
reads the GGUF file (metadata, tensor shapes and bytes) and minichat's own GGUF loader gives the same logits.
"""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from conftest import require_peer
from minichat.chat.template import ChatTemplate, Message
from minichat.cli import build_parser
from minichat.config import ModelConfig, SamplingConfig
from minichat.model.checkpoint import load_gguf, load_hf, load_model
from minichat.model.export import export_gguf, export_hf, permute_rope_rows
from minichat.model.checkpoint import unpermute_rope_rows
from minichat.model.transformer import Transformer, init_params
from minichat.tokenizer import train

TEXT = ("Hello world! The quick brown fox, 12345 jumps; über naïve café. <|im_start|> is text here.\n\n  x ") * 6
TOK = train(TEXT, vocab_size=300, special_tokens={"<|endoftext|>": 300, "<|im_start|>": 301, "<|im_end|>": 302})
IDS = np.random.default_rng(0).integers(0, 303, (2, 21))


def tiny(family: str, tied: bool = True) -> Transformer:
    kw = dict(vocab_size=303, n_ctx=64, n_embd=48, n_layer=2, n_head=4)
    if family == "llama":
        cfg = ModelConfig.llama(**kw, n_kv_head=2, n_inner=80, rope_theta=5000.0, tie_embeddings=tied)
    else:
        cfg = ModelConfig.gpt2(**kw)
    params = init_params(cfg, np.random.default_rng(1), std=0.2)
    for name in params:  # norm gains and biases away from 1 and 0, so a dropped one shows
        if "ln" in name or name.endswith("bias"):
            params[name] = params[name] + np.random.default_rng(2).normal(0, 0.3, params[name].shape).astype("f4")
    return Transformer(cfg, params)


def test_rope_permutation_round_trip():
    w = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)  # 2 heads of D = 4
    p = permute_rope_rows(w, 2)
    assert p[:, 0].tolist() == [0, 6, 3, 9, 12, 18, 15, 21]  # per head: rows (0, 2, 1, 3) -> pairs (0,2), (1,3)
    np.testing.assert_array_equal(unpermute_rope_rows(p, 2), w)


@pytest.mark.parametrize("family,tied", [("llama", True), ("llama", False), ("gpt2", True)])
def test_transformers_loads_the_hf_export(tmp_path, family, tied):
    torch = require_peer("torch")
    transformers = require_peer("transformers")
    model = tiny(family, tied)
    export_hf(model, TOK, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(IDS)).logits.numpy()  # (B, T, V)
    np.testing.assert_allclose(model.forward(IDS), ref, atol=2e-4, rtol=1e-4)
    again, tok = load_hf(tmp_path)  # and minichat reads its own export back
    np.testing.assert_array_equal(again.forward(IDS), model.forward(IDS))
    assert tok.encode(TEXT, allowed_special="all") == TOK.encode(TEXT, allowed_special="all")


def test_tokenizer_json_and_chat_template_with_hf(tmp_path):
    tokenizers = require_peer("tokenizers")
    transformers = require_peer("transformers")
    require_peer("jinja2")
    export_hf(tiny("llama"), TOK, tmp_path)
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in (TEXT, "naïve  café\n\n!!", "<|im_start|>user\nhi<|im_end|>", "x" * 50 + " 1234567"):
        assert hf.encode(text).ids == TOK.encode(text, allowed_special="all")
        assert hf.decode(TOK.encode(text, allowed_special="all"), skip_special_tokens=False) == text
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello world!"},
                {"role": "assistant", "content": "Hi."}, {"role": "user", "content": "über café 12345?"}]
    ids = fast.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    ours = ChatTemplate(TOK).render([Message(m["role"], m["content"]) for m in messages])
    assert list(ids) == ours
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["model_type"] == "llama" and cfg["num_key_value_heads"] == 2 and cfg["eos_token_id"] == TOK.special_tokens["<|im_end|>"]


@pytest.mark.parametrize("tied", [True, False])
def test_gguf_export_read_by_gguf_package_and_minichat(tmp_path, tied):
    gguf = require_peer("gguf")
    model = tiny("llama", tied)
    path = export_gguf(model, TOK, tmp_path / "m.gguf")
    r = gguf.GGUFReader(str(path))
    field = r.fields["general.architecture"]
    assert bytes(field.parts[field.data[0]]).decode() == "llama"
    f = r.fields["llama.attention.head_count_kv"]
    assert int(f.parts[f.data[0]][0]) == 2
    f = r.fields["tokenizer.ggml.tokens"]
    tokens = [bytes(f.parts[i]).decode() for i in f.data]
    assert len(tokens) == 303 and tokens[TOK.special_tokens["<|im_start|>"]] == "<|im_start|>"
    by_name = {t.name: t for t in r.tensors}
    assert ("output.weight" in by_name) == (not tied) and len(by_name) == 2 + (not tied) + 9 * 2
    emb = by_name["token_embd.weight"]
    assert emb.tensor_type == gguf.GGMLQuantizationType.F32 and list(emb.shape) == [48, 303]  # fastest dim first
    np.testing.assert_array_equal(np.asarray(emb.data).reshape(303, 48), model.params["wte"])
    again, _ = load_gguf(path, with_tokenizer=False)
    np.testing.assert_array_equal(again.forward(IDS), model.forward(IDS))
    assert again.config == model.config  # GGUF stores the epsilon as float32; it reads back as the decimal written


def test_gguf_refuses_gpt2_and_cli_exports_builtin(tmp_path, capsys):
    with pytest.raises(ValueError, match="Llama-shaped"):
        export_gguf(tiny("gpt2"), None, tmp_path / "x.gguf")
    args = build_parser().parse_args(["export", "--format", "gguf", "builtin", str(tmp_path / "b.gguf")])
    assert args.run(args) == 0 and "wrote" in capsys.readouterr().out
    builtin, _ = load_model()
    again, _ = load_gguf(tmp_path / "b.gguf", with_tokenizer=False)
    ids = np.asarray([[1, 2, 3, 400, 4000]])
    np.testing.assert_array_equal(again.forward(ids), builtin.forward(ids))


@pytest.mark.slow
def test_smollm2_round_trip_through_transformers_and_gguf(tmp_path):
    """The real SmolLM2-135M-Instruct (its Q4_1 GGUF, dequantised): exported to HF, transformers computes minichat's
    logits and answers the capital question greedily with the exported tokenizer and chat template (the model's own,
    with its default system prompt); exported to GGUF, minichat reads it back, tokenizer included."""
    torch = require_peer("torch")
    transformers = require_peer("transformers")
    require_peer("jinja2")
    from conftest import smollm2_gguf

    model, tok = load_model(smollm2_gguf())
    export_hf(model, tok, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf", dtype=torch.float32).eval()
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    ids = fast.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                   add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert "You are a helpful AI assistant" in fast.decode(ids)  # SmolLM2's own template and default system prompt
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits.numpy()  # (1, T, V)
        out = hf.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids):]
    np.testing.assert_allclose(model.forward(np.asarray([ids])), ref, atol=2e-3, rtol=1e-3)
    assert fast.decode(out, skip_special_tokens=True).startswith("The capital of France is Paris")
    text = "Hello world! 12345 naïve café\n\n  über"
    assert fast.encode(text, add_special_tokens=False) == tok.encode(text)
    again, tok2 = load_gguf(export_gguf(model, tok, tmp_path / "s.gguf"))
    np.testing.assert_array_equal(again.forward(np.asarray([ids[:12]])), model.forward(np.asarray([ids[:12]])))
    assert tok2.encode(text) == tok.encode(text)


@pytest.mark.slow
def test_builtin_model_answers_the_same_in_transformers(tmp_path):
    """The built-in chat model exported by the CLI: transformers' greedy reply, from the prompt its tokenizer and
    the exported ChatML template render, is the reply minichat generates."""
    torch = require_peer("torch")
    transformers = require_peer("transformers")
    require_peer("jinja2")
    from minichat.generate import generate

    args = build_parser().parse_args(["export", "--format", "hf", "builtin", str(tmp_path)])
    assert args.run(args) == 0
    model, tok = load_model()
    fast = transformers.AutoTokenizer.from_pretrained(tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    messages = [{"role": "user", "content": "What is 2 + 3?"}]
    ids = fast.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
    assert ids == ChatTemplate(tok).render([Message("user", "What is 2 + 3?")])
    end = tok.special_tokens["<|im_end|>"]
    with torch.no_grad():
        out = hf.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False, eos_token_id=end)[0, len(ids):]
    ours = [s.token_id for s in generate(model, ids, SamplingConfig(temperature=0.0), max_new_tokens=64,
                                         stop_ids=[end])]
    assert out.tolist() == ours and ours[-1] == end, tok.decode(ours)
