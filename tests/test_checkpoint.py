"""Checkpoint loading and saving: minichat's own format round-trips; HF GPT-2 folders with and without the
`transformer.` prefix and with legacy buffers; a GGUF llama file written by the `gguf` package (Q/K permuted as
llama.cpp does) gives HF's logits; broken files raise CheckpointError naming the tensor; the real SmolLM2 answers.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import gpt2_files, require_peer, smollm2_gguf
from minichat.config import PRESETS
from minichat.errors import CheckpointError
from minichat.model.checkpoint import (checkpoint_metadata, load_checkpoint, load_model, save_checkpoint,
                                       unpermute_rope_rows)
from minichat.model.safetensors import read_safetensors, write_safetensors
from minichat.model.transformer import Transformer, init_params
from minichat.tokenizer import from_gpt2_files, train
from test_transformer import TOL, hf_forward, hf_gpt2, hf_llama

IDS = np.array([[3, 14, 15, 92, 65, 35, 89, 79, 32, 38]])


# -- minichat's own --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny-gpt2", "tiny-llama"])
def test_own_format_round_trip(tmp_path, name):
    tok = train("the cat sat on the mat. the dog sat on the log. " * 20, vocab_size=270,
                special_tokens={"<|endoftext|>": 270})
    small = Transformer(PRESETS[name], init_params(PRESETS[name], np.random.default_rng(0)))
    top = max([*tok.vocab, *tok.special_tokens.values()])
    with pytest.raises(CheckpointError, match=f"ids up to {top} but the model's vocab_size is 128"):
        save_checkpoint(tmp_path / "mismatch", small, tok)
    config = PRESETS[name].replace(vocab_size=top + 1)
    model = Transformer(config, init_params(config, np.random.default_rng(0), std=0.3))
    save_checkpoint(tmp_path / "ckpt", model, tok, metadata={"step": 12, "note": "test"})
    loaded, tok2 = load_model(tmp_path / "ckpt")
    assert loaded.config == config and tok2 == tok
    assert set(loaded.params) == set(model.params)
    assert all(np.array_equal(loaded.params[k], model.params[k]) for k in model.params)
    np.testing.assert_array_equal(loaded.forward(IDS), model.forward(IDS))
    assert checkpoint_metadata(tmp_path / "ckpt") == {"step": 12, "note": "test"}
    save_checkpoint(tmp_path / "bare", model)  # the tokenizer is optional
    assert load_checkpoint(tmp_path / "bare")[1] is None


def test_own_format_refuses_other_versions_and_configs(tmp_path):
    model = Transformer(PRESETS["tiny-gpt2"], init_params(PRESETS["tiny-gpt2"], np.random.default_rng(0)))
    save_checkpoint(tmp_path, model)
    doc = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**doc, "version": 99}))
    with pytest.raises(CheckpointError, match="version 99"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**doc, "model": {**doc["model"], "n_layer": 3}}))
    with pytest.raises(CheckpointError, match="missing tensor 'h.2.ln_1.weight'"):
        load_model(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**doc, "model": {**doc["model"], "n_laeyr": 3}}))
    with pytest.raises(CheckpointError, match="n_laeyr"):
        load_model(tmp_path)


# -- HF folders ------------------------------------------------------------------------------------------------------

def test_hf_gpt2_without_prefix_and_with_legacy_buffers(tmp_path):
    ref = hf_gpt2(tmp_path)
    tensors = {k.removeprefix("transformer."): np.array(v) for k, v in
               read_safetensors(tmp_path / "model.safetensors").items()}
    for i in range(2):  # what old GPT-2 files carry: the causal mask as a buffer, and masked_bias
        tensors[f"h.{i}.attn.bias"] = np.tril(np.ones((1, 1, 48, 48), np.float32))
        tensors[f"h.{i}.attn.masked_bias"] = np.array(-1e4, np.float32)
    tensors["lm_head.weight"] = tensors["wte.weight"]  # a tied copy stored anyway
    write_safetensors(tmp_path / "model.safetensors", tensors)
    model, _ = load_model(tmp_path)
    np.testing.assert_allclose(model.forward(IDS), hf_forward(ref, IDS)[0], **TOL)


def test_hf_gpt2_folder_with_tokenizer_files(tmp_path):
    hf_gpt2(tmp_path, vocab_size=50257, n_embd=8, n_head=2, n_layer=1)
    encoder, merges = gpt2_files()  # OpenAI's files, written from the gpt2.tiktoken ranks
    shutil.copy(encoder, tmp_path / "vocab.json")
    shutil.copy(merges, tmp_path / "merges.txt")
    model, tok = load_model(tmp_path)
    assert tok == from_gpt2_files(encoder, merges)
    assert model.config.vocab_size == 50257 and tok.encode("Hello world") == [15496, 995]


def test_hf_llama_reads_config(tmp_path):
    hf_llama(tmp_path, rope_theta=321.0, rms_norm_eps=1e-5, num_key_value_heads=1)
    model, _ = load_model(tmp_path / "config.json")  # a file inside the folder works too
    c = model.config
    assert (c.family, c.n_head, c.n_kv_head, c.rope_theta, c.norm_eps, c.tie_embeddings) == \
        ("llama", 4, 1, 321.0, 1e-5, False)


# -- GGUF ------------------------------------------------------------------------------------------------------------

def permute_like_llama_cpp(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf permute: each head's rows (a half, b half) -> interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, w.shape[1]).swapaxes(1, 2).reshape(w.shape)


def write_gguf_from_hf(path, hf_model, drop: str | None = None) -> None:
    gguf = require_peer("gguf")
    c = hf_model.config
    sd = {k: v.detach().numpy().astype(np.float32) for k, v in hf_model.state_dict().items()}
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(c.max_position_embeddings)
    w.add_embedding_length(c.hidden_size)
    w.add_block_count(c.num_hidden_layers)
    w.add_feed_forward_length(c.intermediate_size)
    w.add_head_count(c.num_attention_heads)
    w.add_head_count_kv(c.num_key_value_heads)
    w.add_rope_freq_base(c.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(c.rms_norm_eps)
    names = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    per_layer = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
                 "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                 "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm"}
    for i in range(c.num_hidden_layers):
        names.update({f"model.layers.{i}.{hf}.weight": f"blk.{i}.{g}.weight" for hf, g in per_layer.items()})
    for hf_name, t in sd.items():
        if hf_name == "lm_head.weight" and c.tie_word_embeddings:
            continue  # the state dict lists the tied head too; llama.cpp writes no output.weight then
        name = names[hf_name]
        if name.endswith("attn_q.weight"):
            t = permute_like_llama_cpp(t, c.num_attention_heads)
        elif name.endswith("attn_k.weight"):
            t = permute_like_llama_cpp(t, c.num_key_value_heads)
        if name != drop:
            w.add_tensor(name, t)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.mark.parametrize("tied", [False, True])
def test_gguf_llama_matches_hf(tmp_path, tied):
    ref = hf_llama(tmp_path / "hf", tie_word_embeddings=tied)
    write_gguf_from_hf(tmp_path / "m.gguf", ref)
    model, tok = load_model(tmp_path / "m.gguf")
    assert tok is None and model.config.tie_embeddings == tied and model.config.n_kv_head == 2
    np.testing.assert_allclose(model.forward(IDS), hf_forward(ref, IDS)[0], **TOL)


def test_unpermute_inverts_llama_cpp_permute():
    w = np.arange(3 * 8 * 5, dtype=np.float32).reshape(24, 5)
    np.testing.assert_array_equal(unpermute_rope_rows(permute_like_llama_cpp(w, 3), 3), w)
    assert not np.array_equal(permute_like_llama_cpp(w, 3), w)


# -- broken files ----------------------------------------------------------------------------------------------------

def test_missing_and_misshapen_tensors_are_named(tmp_path):
    hf_llama(tmp_path)
    tensors = {k: np.array(v) for k, v in read_safetensors(tmp_path / "model.safetensors").items()}
    full = dict(tensors)
    del tensors["model.layers.1.mlp.up_proj.weight"]
    write_safetensors(tmp_path / "model.safetensors", tensors)
    with pytest.raises(CheckpointError, match="missing tensor 'model.layers.1.mlp.up_proj.weight'"):
        load_model(tmp_path)
    write_safetensors(tmp_path / "model.safetensors",
                      {**full, "model.layers.0.self_attn.k_proj.weight": np.zeros((8, 32), np.float32)})
    with pytest.raises(CheckpointError, match=r"'model.layers.0.self_attn.k_proj.weight' has shape \(8, 32\)"):
        load_model(tmp_path)
    write_safetensors(tmp_path / "model.safetensors", {**full, "model.layers.2.mlp.up_proj.weight": full[
        "model.layers.1.mlp.up_proj.weight"]})
    with pytest.raises(CheckpointError, match="unexpected tensor.*model.layers.2.mlp.up_proj.weight"):
        load_model(tmp_path)


def test_truncated_and_foreign_files(tmp_path):
    hf_gpt2(tmp_path / "hf")
    data = (tmp_path / "hf" / "model.safetensors").read_bytes()
    (tmp_path / "hf" / "model.safetensors").write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "hf")
    ref = hf_llama(tmp_path / "llama")
    write_gguf_from_hf(tmp_path / "m.gguf", ref, drop="blk.1.ffn_down.weight")
    with pytest.raises(CheckpointError, match="missing tensor 'blk.1.ffn_down.weight'"):
        load_model(tmp_path / "m.gguf")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a GGUF file"):
        load_model(tmp_path / "notes.txt")
    with pytest.raises(CheckpointError, match="no such file"):
        load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(tmp_path / "empty")
    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(CheckpointError, match="model_type 'bert' is not supported"):
        load_model(tmp_path / "bert")


def test_transformer_checks_params():
    config = PRESETS["tiny-gpt2"]
    params = init_params(config, np.random.default_rng(0))
    with pytest.raises(CheckpointError, match="missing tensor 'wpe'"):
        Transformer(config, {k: v for k, v in params.items() if k != "wpe"})
    with pytest.raises(CheckpointError, match="float64"):
        Transformer(config, {**params, "wte": params["wte"].astype(np.float64)})
    with pytest.raises(CheckpointError, match="'ln_f.bias' has shape"):
        Transformer(config, {**params, "ln_f.bias": np.zeros(3, np.float32)})


# -- the real model --------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_smollm2_gguf_knows_the_capital_of_france():
    model, tok = load_model(smollm2_gguf())
    c = model.config
    assert (c.family, c.n_layer, c.n_head, c.n_kv_head, c.n_embd, c.vocab_size, c.rope_theta) == \
        ("llama", 30, 9, 3, 576, 49152, 100000.0)
    prompt = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(prompt, allowed_special="all")
    end = tok.encode_special("<|im_end|>")
    cache = model.new_cache(1, len(ids) + 24)
    logits = model.forward(np.array([ids]), cache)
    out: list[int] = []
    while len(out) < 24 and (not out or out[-1] != end):
        out.append(int(logits[0, -1].argmax()))
        logits = model.forward(np.array([out[-1:]]), cache)
    answer = tok.decode(out)
    assert "Paris" in answer, answer
