"""Hostile model files: a structure-aware fuzzer for the safetensors, GGUF and checkpoint readers.

The promise (minichat/model/checkpoint.py's docstring): whatever the bytes, reading a model file returns, or raises
CheckpointError naming the file. Nothing else escapes (no RecursionError, ZeroDivisionError, TypeError, IndexError,
OverflowError, MemoryError, or a plain ValueError from NumPy or the config checks), and no reader allocates memory
in proportion to a size the file declares but does not back: tracemalloc, which NumPy reports its buffers to,
measures each call's peak against the file's size.

The fuzzer mutates the structure of real files rather than random bytes, so it gets past the first check and into
the code behind it: a safetensors file written by the `safetensors` package; HF Llama and GPT-2 folders (config.json
plus a safetensors file from the same package); a small Llama GGUF with a tokenizer, written by the `gguf` package;
and the header of the real SmolLM2 GGUF. Each file is split into fields (JSON entries; GGUF counts, typed metadata
entries, tensor infos), hypothesis changes fields (values, types, lengths, counts, dims, offsets, nesting), and the
file is written back and perhaps truncated: tests/hostile_safetensors.py and tests/hostile_gguf.py hold the
splitters and the mutations. A mutated safetensors file that minichat accepts must also be accepted,
with the same arrays, by the reference package; a model that loads must run.

The default runs take a few hundred examples in all; the `slow` runs four to six times as many.
"""
from __future__ import annotations

import json
import struct
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from conftest import require_peer, smollm2_gguf
from hostile_gguf import ARRAY, GGUF, apply_gguf, gguf_mutations, write_tiny_llama_gguf
from hostile_safetensors import (ASSORTED, FOLDER_CONFIGS, FOLDER_SHAPES, Safetensors, apply_st, config_mutations,
                                 mutate_config, st_mutations, write_hf)
from minichat.errors import CheckpointError, TokenizerError
from minichat.model.checkpoint import load_model
from minichat.model.gguf import read_gguf
from minichat.model.gguf_tokenizer import tokenizer_from_gguf
from minichat.model.safetensors import read_safetensors, read_safetensors_metadata

MiB = 2**20


def fuzz(examples: int):
    """Hypothesis settings for one fuzz run: no per-example deadline (a loaded machine would make it flaky)."""
    return settings(max_examples=examples, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large, HealthCheck.large_base_example])


RUNS = [100, pytest.param(600, marks=pytest.mark.slow)]
# Garbage weights (a scale of inf times a zero, a huge logit) make NaNs and overflows: data, not a reader's fault.
quiet = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def guarded(path: Path, call, *args, allowed=(CheckpointError,), budget: int | None = None):
    """call(*args); an exception must be one of `allowed` and name `path` (anything else propagates and fails the
    test). With `budget`, the call's peak traced allocation must stay below it. Returns the result, or None."""
    started = budget is not None and not tracemalloc.is_tracing()  # tracing makes allocation-heavy code ~10x slower
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        return call(*args)
    except allowed as e:
        assert str(path) in str(e), f"{type(e).__name__} does not name the file {path}: {e}"
        return None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        if started:
            tracemalloc.stop()
        if budget is not None:
            assert peak <= budget, f"{getattr(call, '__name__', call)} allocated {peak} bytes (budget {budget})"


def fresh(tmp_path: Path, name: str) -> Path:
    return Path(tempfile.mkdtemp(dir=tmp_path)) / name


@pytest.fixture(scope="module")
def assorted(tmp_path_factory) -> Safetensors:
    st_numpy = require_peer("safetensors.numpy")
    path = tmp_path_factory.mktemp("st") / "assorted.safetensors"
    st_numpy.save_file(ASSORTED, path, metadata={"format": "np"})
    return Safetensors.parse(path.read_bytes())

def same_arrays(ours: dict, reference: dict) -> None:
    assert set(ours) == set(reference)
    for name, x in reference.items():
        assert ours[name].dtype == x.dtype and ours[name].shape == x.shape, name
        np.testing.assert_array_equal(ours[name], x, err_msg=name)


def reference_read(path: Path) -> dict:
    """Every tensor as the `safetensors` package reads it; BF16 ones (NumPy has no bfloat16) through torch, widened
    to the float32 that minichat returns for them."""
    safetensors = require_peer("safetensors")
    out = {}
    with safetensors.safe_open(path, framework="numpy") as f:
        bf16 = [name for name in f.keys() if f.get_slice(name).get_dtype() == "BF16"]
        out.update({name: f.get_tensor(name) for name in f.keys() if name not in bf16})
    if bf16:
        require_peer("torch")
        with safetensors.safe_open(path, framework="pt") as f:
            out.update({name: f.get_tensor(name).float().numpy() for name in bf16})
    return out


def test_unmutated_safetensors_round_trips(tmp_path, assorted):
    st_numpy = require_peer("safetensors.numpy")
    path = fresh(tmp_path, "x.safetensors")
    path.write_bytes(assorted.to_bytes())
    same_arrays(read_safetensors(path), ASSORTED)
    same_arrays(st_numpy.load_file(path), ASSORTED)
    assert read_safetensors_metadata(path) == {"format": "np"}


@pytest.mark.parametrize("examples", RUNS)
def test_fuzz_safetensors_headers(tmp_path, assorted, examples):
    @fuzz(examples)
    @given(ops=st_mutations)
    def run(ops):
        path = fresh(tmp_path, "m.safetensors")
        raw = apply_st(assorted, ops).to_bytes()
        path.write_bytes(raw)
        budget = 64 * len(raw) + MiB  # json.loads and the error messages: a small multiple of the header
        ours = guarded(path, read_safetensors, path, budget=budget)
        meta = guarded(path, read_safetensors_metadata, path, budget=budget)
        assert (ours is None) == (meta is None)  # the same header checks decide both
        event("accepted" if ours is not None else "refused")
        if ours is not None:  # accepted: the reference package accepts it too and reads the same arrays
            same_arrays(ours, reference_read(path))

    run()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Safetensors]:
    """The weights of a tiny HF Llama and GPT-2 and a tiny minichat Llama, written by the `safetensors` package (F32,
    the norms F16)."""
    st_numpy = require_peer("safetensors.numpy")
    rng, out = np.random.default_rng(0), {}
    for kind, shapes in FOLDER_SHAPES.items():
        tensors = {name: (rng.standard_normal(shape) * 0.3).astype(np.float16 if "norm" in name else np.float32)
                   for name, shape in shapes.items()}
        path = tmp_path_factory.mktemp(kind) / "model.safetensors"
        st_numpy.save_file(tensors, path, metadata={"format": "pt"})
        out[kind] = Safetensors.parse(path.read_bytes())
    return out


@pytest.mark.parametrize("kind", sorted(FOLDER_CONFIGS))
def test_unmutated_folders_load_and_run(tmp_path, folders, kind):
    write_hf(tmp_path / kind, FOLDER_CONFIGS[kind], folders[kind])
    model, _ = load_model(tmp_path / kind)
    assert model.config.family == {"minichat": "llama"}.get(kind, kind) and model.config.n_layer == 1
    assert model.forward(np.array([[0, 5, 47]])).shape == (1, 3, 48)


@quiet
@pytest.mark.parametrize("examples", RUNS)
def test_fuzz_checkpoint_folders(tmp_path, folders, examples):
    @fuzz(examples)
    @given(kind=st.sampled_from(sorted(FOLDER_CONFIGS)), cops=config_mutations, wops=st.none() | st_mutations)
    def run(kind, cops, wops):
        folder = fresh(tmp_path, kind)
        write_hf(folder, mutate_config(kind, cops), apply_st(folders[kind], wops) if wops else folders[kind])
        size = sum(f.stat().st_size for f in folder.iterdir())
        loaded = guarded(folder, load_model, folder, budget=64 * size + 64 * MiB)  # + the RoPE tables' floor
        event("loaded" if loaded else "refused")
        if loaded:  # whatever loads must run
            model, _ = loaded
            assert model.forward(np.array([[0]])).shape == (1, 1, model.config.vocab_size)

    run()


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> tuple[Path, GGUF]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    write_tiny_llama_gguf(path)
    return path, GGUF.parse(path.read_bytes())


def test_unmutated_tiny_gguf_round_trips_and_loads(tmp_path, tiny_gguf):
    """The splitter and writer above give back the very bytes the gguf package wrote, and that file loads."""
    gguf = require_peer("gguf")
    path, base = tiny_gguf
    copy_path = fresh(tmp_path, "copy.gguf")
    base.write(copy_path)
    assert copy_path.read_bytes() == path.read_bytes()
    model, tok = load_model(copy_path)
    assert (model.config.n_layer, model.config.n_head, model.config.n_kv_head, model.config.vocab_size) == (1, 4, 2,
                                                                                                            261)
    reader = gguf.GGUFReader(str(path))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    np.testing.assert_array_equal(model.params["wte"], gguf.quants.dequantize(embd.data, embd.tensor_type))
    assert tok.encode(" the") == [258] and model.forward(np.array([[258, 259]])).shape == (1, 2, 261)


@quiet
@pytest.mark.parametrize("examples", RUNS)
def test_fuzz_tiny_gguf(tmp_path, tiny_gguf, examples):
    _, base = tiny_gguf

    @fuzz(examples)
    @given(ops=gguf_mutations)
    def run(ops):
        path = fresh(tmp_path, "m.gguf")
        size = apply_gguf(base, ops).write(path)
        g = guarded(path, read_gguf, path, budget=64 * size + MiB)
        if g is not None:
            for name in g.tensor_infos:
                guarded(path, g.tensor, name, budget=64 * size + MiB)
            guarded(path, tokenizer_from_gguf, g, allowed=(CheckpointError, TokenizerError))
        loaded = guarded(path, load_model, path, budget=64 * size + 64 * MiB)  # + the RoPE tables' floor
        event("read" if g else "refused by read_gguf")
        event("loaded" if loaded else "refused by load_model")
        if loaded:  # whatever loads must run
            model, _ = loaded
            assert model.forward(np.array([[0]])).shape == (1, 1, model.config.vocab_size)

    run()


# -- the real SmolLM2 header ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm2_header() -> GGUF:
    path = smollm2_gguf()
    with open(path, "rb") as f:
        head = f.read(4 * MiB)  # the header (metadata with 49,152 tokens and merges, 272 tensor infos) is ~1.8 MB
    return GGUF.parse(head, file_size=path.stat().st_size)


def test_unmutated_smollm2_header_round_trips(tmp_path, smollm2_header):
    path = smollm2_gguf()
    copy_path = fresh(tmp_path, "smollm2.gguf")
    smollm2_header.write(copy_path)  # the same header, and zeros for the data
    n = len(smollm2_header.header())
    with open(path, "rb") as real, open(copy_path, "rb") as copied:
        assert copied.read(n) == real.read(n) and copy_path.stat().st_size == path.stat().st_size
    real, copied = read_gguf(path), read_gguf(copy_path)
    assert copied.metadata == real.metadata and copied.tensor_infos == real.tensor_infos
    copy_path.unlink()


@quiet
@pytest.mark.parametrize("examples", [25, pytest.param(150, marks=pytest.mark.slow)])
def test_fuzz_smollm2_header(tmp_path, smollm2_header, examples):
    tokenizer_kvs = {kv for kv in smollm2_header.kvs if kv[0].startswith(b"tokenizer.")}

    @fuzz(examples)
    @given(ops=gguf_mutations)
    def run(ops):
        path = fresh(tmp_path, "smollm2.gguf")
        mutated = apply_gguf(smollm2_header, ops)
        mutated.write(path)
        try:
            g = guarded(path, read_gguf, path)  # no memory budget: tracing 100,000 strings takes seconds
            event("read" if g else "refused by read_gguf")
            if g is None:
                return
            for name, info in g.tensor_infos.items():
                if info.nbytes <= 64 * 1024:  # the norms: decoding the 98 MB of zeros would take seconds
                    guarded(path, g.tensor, name)
            if {kv for kv in mutated.kvs if kv[0].startswith(b"tokenizer.")} != tokenizer_kvs:
                guarded(path, tokenizer_from_gguf, g, allowed=(CheckpointError, TokenizerError))
        finally:
            path.unlink()  # sparse, but 98 MB to anything that copies it

    run()


# -- hand-made attacks: each way a reader could escape, named ----------------------------------------------------

def refused(path: Path, *words: str, call=load_model) -> None:
    """call(path) raises CheckpointError, naming the file and every one of `words`."""
    with pytest.raises(CheckpointError) as info:
        call(path)
    message = str(info.value)
    assert str(path) in message, message
    for word in words:
        assert word in message, (word, message)


def st_entry(base: Safetensors, name: str, **fields) -> Safetensors:
    header = json.loads(json.dumps(base.header))
    header[name].update(fields)
    return Safetensors(header, base.data)


SAFETENSORS_ATTACKS = {  # name -> (change to the assorted file's header, words the message must hold)
    "nesting deeper than json recurses": ({"shape": "@@deep-list@@"}, ["nests too deeply"]),
    "an integer of 5000 digits": ({"shape": ["@@digits@@"]}, ["does not parse", "4300"]),
    "a dtype that is a list": ({"dtype": ["F32"]}, ["'f32'", "dtype ['F32']"]),
    "an empty tensor with 2^62 rows": ({"shape": [0, 2**62, 4]}, ["'f32'", "beyond what NumPy can hold"]),
    "65 dims": ({"shape": [1] * 65}, ["'f32'", "at most 64 dims"]),
    "offsets past the end": ({"data_offsets": [0, 2**64]}, ["'f32'", "out of range"]),
    "shape and bytes disagree": ({"shape": [3, 3]}, ["'f32'", "needs 36 bytes"]),
    "NaN, which JSON lacks": ({"note": float("nan")}, ["NaN is not JSON"]),  # the reference refuses both, too
    "a number beyond a double": ({"note": 10**400}, ["out of range"]),
}


@pytest.mark.parametrize("attack", sorted(SAFETENSORS_ATTACKS))
def test_safetensors_attacks(tmp_path, assorted, attack):
    fields, words = SAFETENSORS_ATTACKS[attack]
    path = tmp_path / "bad.safetensors"
    path.write_bytes(st_entry(assorted, "f32", **fields).to_bytes())
    refused(path, *words, call=read_safetensors)


def u32(v: int) -> tuple[int, bytes]:
    return 4, struct.pack("<I", v)


def gguf_string(b: bytes) -> bytes:
    return struct.pack("<Q", len(b)) + b


def gguf_array(etype: int, items: list[bytes], count: int | None = None) -> tuple[int, bytes]:
    return ARRAY, struct.pack("<IQ", etype, len(items) if count is None else count) + b"".join(items)


GGUF_ATTACKS = {  # name -> (mutations of the tiny Llama GGUF, words the message must hold)
    "metadata arrays nested 3000 deep": ([("kv nest", "general.name", 3000)], ["'general.name'", "more than 16"]),
    "zero heads": ([("kv set", "llama.attention.head_count", u32(0))], ["'llama.attention.head_count' is 0"]),
    "a head count that is a string": ([("kv set", "llama.attention.head_count", (8, gguf_string(b"4")))],
                                      ["'llama.attention.head_count' is '4'"]),
    "heads that do not group": ([("kv set", "llama.attention.head_count", u32(3)),
                                 ("kv set", "llama.attention.key_length", u32(8))], ["impossible", "n_kv_head"]),
    "a NaN epsilon": ([("kv set", "llama.attention.layer_norm_rms_epsilon", (6, struct.pack("<f", float("nan"))))],
                      ["'llama.attention.layer_norm_rms_epsilon' is nan"]),
    "a context of 2^32 - 1": ([("kv set", "llama.context_length", u32(2**32 - 1))],
                              ["'llama.context_length' is 4294967295", "position tables"]),
    "2^40 layers": ([("kv set", "llama.block_count", (10, struct.pack("<Q", 2**40)))], ["1099511627776 layers"]),
    "an alignment that is a bool": ([("kv set", "general.alignment", (7, b"\x01"))], ["'general.alignment'"]),
    "a declared metadata count of 2^63": ([("n_kv", 2**63)], ["truncated"]),
    "an array declaring 2^60 elements": ([("kv set", "tokenizer.ggml.token_type", gguf_array(5, [], 2**60))],
                                         ["'tokenizer.ggml.token_type'", "1152921504606846976 elements"]),
    "tokens that are numbers": ([("kv set", "tokenizer.ggml.tokens", gguf_array(5, [struct.pack("<i", 7)] * 261))],
                                ["tokenizer", "arrays of strings"]),
    "a pre-tokenizer that is a list": ([("kv set", "tokenizer.ggml.pre", gguf_array(8, [gguf_string(b"gpt-2")]))],
                                       ["tokenizer.ggml.pre"]),
    "an embedding of rank 1": ([("t dims", 0, [32 * 261])], ["'token_embd.weight'", "shape (8352,)"]),
    "a quantised scalar": ([("t dims", 0, [])], ["'token_embd.weight'", "rows of no numbers"]),
    "an empty tensor with 2^62 rows": ([("t dims", 1, [0, 2**62, 2**62])], ["'output_norm.weight'", "elements"]),
    "an offset past the end": ([("t offset", 11, 2**40)], ["'blk.0.ffn_norm.weight'", "truncated"]),
}


@pytest.mark.parametrize("attack", sorted(GGUF_ATTACKS))
def test_gguf_attacks(tmp_path, tiny_gguf, attack):
    ops, words = GGUF_ATTACKS[attack]
    path = tmp_path / "bad.gguf"
    apply_gguf(tiny_gguf[1], ops).write(path)
    refused(path, *words)


HF_ATTACKS = {  # name -> (kind, config.json changes, words the message must hold)
    "zero heads": ("llama", {"num_attention_heads": 0}, ["'num_attention_heads' is 0"]),
    "a width that is a string": ("llama", {"hidden_size": "16"}, ["'hidden_size' is '16'"]),
    "a NaN epsilon": ("llama", {"rms_norm_eps": float("nan")}, ["'rms_norm_eps' is nan"]),
    "rope_scaling that is a list": ("llama", {"rope_scaling": ["linear"]}, ["'rope_scaling'", "an object"]),
    "heads that do not group": ("llama", {"num_attention_heads": 3}, ["impossible"]),
    "a context of 2^40": ("llama", {"max_position_embeddings": 2**40}, ["'max_position_embeddings'",
                                                                         "position tables"]),
    "10^12 GPT-2 layers": ("gpt2", {"n_layer": 10**12}, ["1000000000000 layers"]),
    "tie_word_embeddings that is a string": ("gpt2", {"tie_word_embeddings": "no"}, ["'tie_word_embeddings'"]),
    "a nested config": ("gpt2", {"n_inner": "@@deep-dict@@"}, ["nests too deeply"]),
}


@pytest.mark.parametrize("attack", sorted(HF_ATTACKS))
def test_hf_config_attacks(tmp_path, folders, attack):
    kind, changes, words = HF_ATTACKS[attack]
    write_hf(tmp_path / kind, {**FOLDER_CONFIGS[kind], **changes}, folders[kind])
    refused(tmp_path / kind, *words)


OWN_ATTACKS = {  # name -> (changes to the "model" of a saved tiny Llama's config.json, words the message must hold)
    "a context of 2^40": ({"n_ctx": 2**40}, ["'n_ctx' is 1099511627776", "position tables"]),
    "10^12 layers": ({"n_layer": 10**12}, ["1000000000000 layers"]),
    "a head count that is a string": ({"n_head": "4"}, ["n_head"]),
    "an epsilon too big for a float": ({"norm_eps": 10**400}, ["invalid model config"]),
}


@pytest.mark.parametrize("attack", sorted(OWN_ATTACKS))
def test_own_checkpoint_attacks(tmp_path, attack):
    from minichat.config import PRESETS
    from minichat.model.checkpoint import checkpoint_metadata, save_checkpoint
    from minichat.model.transformer import Transformer, init_params

    config = PRESETS["tiny-llama"]
    save_checkpoint(tmp_path, Transformer(config, init_params(config, np.random.default_rng(0))))
    doc = json.loads((tmp_path / "config.json").read_text())
    changes, words = OWN_ATTACKS[attack]
    doc["model"].update(changes)
    doc["metadata"] = ["not", "an", "object"]
    (tmp_path / "config.json").write_text(json.dumps(doc))
    refused(tmp_path, *words)
    refused(tmp_path, "'metadata'", "an object", call=checkpoint_metadata)
