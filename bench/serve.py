"""Serving throughput and latency of the continuous-batching engine (minichat/server/scheduler.py), in process.

One run prints, for a GPT-2-124M-shaped model (random weights: speed does not depend on what the weights say) and
for the built-in chat model:
  * aggregate tokens/s of 8 concurrent streaming requests through the engine (continuous batching: one batched
    decode forward per step) vs the same 8 requests served one at a time (`generate`, what a server without a
    scheduler does), and the p50/p95 time to first token of the concurrent requests;
  * the time to first token of a request whose 1,000-token prefix is in the prefix cache (a hit: the blocks are
    copied in, 8 tokens computed) vs one whose prefix is not (a miss: another tenant's salt, so nothing is found).
    The built-in model's window is 512 tokens, so its shared prefix is 400.
Then the targets (>= 4x throughput with GPT-2-124M; hit TTFT <= 20 % of miss) and last the headline ratio.

Each figure is the median over rounds, and rounds interleave what is compared (batched, one at a time, batched,
...; miss, hit, miss, ...) so a busy moment on this shared machine hurts both alike; the throughput headline is the
median of the per-round ratios (each round's two timings are back to back). Streaming clients are threads
reading each request's queue, as the HTTP routes do; HTTP itself is not timed (tests/test_server* cover it).

Threads: BLAS and the matmul kernel use --threads threads (default 1). On this 2-core machine shared by several
jobs, two-thread BLAS collapses (a 408-token prefill of the built-in model took 1.4 s with 2 threads, 0.19 s with
1, at a load average of 11); pass --threads 2 on a quiet machine.

Usage: python bench/serve.py [--rounds R] [--tokens N] [--threads T] [--skip-gpt2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

ARGS = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ARGS.add_argument("--rounds", type=int, default=3, help="rounds per figure; the median is reported")
ARGS.add_argument("--tokens", type=int, default=64, help="new tokens per request")
ARGS.add_argument("--clients", type=int, default=8, help="concurrent requests")
ARGS.add_argument("--threads", type=int, default=1, help="BLAS / matmul-kernel threads (set before numpy loads)")
ARGS.add_argument("--skip-gpt2", action="store_true", help="only the built-in model (fast)")
if __name__ == "__main__":
    _threads = str(ARGS.parse_args().threads)
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = _threads

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from minichat.config import PRESETS, SamplingConfig  # noqa: E402
from minichat.generate import generate  # noqa: E402
from minichat.model.checkpoint import load_model  # noqa: E402
from minichat.model.transformer import Transformer, init_params  # noqa: E402
from minichat.server.scheduler import Engine, EngineConfig  # noqa: E402

GREEDY = SamplingConfig(temperature=0.0)


def load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


def concurrent(engine: Engine, prompts, n: int) -> tuple[float, list[float], int]:
    """Submit every prompt at once; one streaming client thread per request. -> seconds, TTFTs, tokens."""
    t0 = time.perf_counter()
    firsts, counts = [None] * len(prompts), [0] * len(prompts)

    def client(i, req):
        for _ in req:
            if firsts[i] is None:
                firsts[i] = time.perf_counter() - t0
            counts[i] += 1

    threads = [threading.Thread(target=client, args=(i, engine.submit(p, GREEDY, max_new_tokens=n)))
               for i, p in enumerate(prompts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, firsts, sum(counts)


def one_at_a_time(model, prompts, n: int) -> tuple[float, int]:
    t0, count = time.perf_counter(), 0
    for p in prompts:
        count += sum(1 for _ in generate(model, p, GREEDY, max_new_tokens=n))
    return time.perf_counter() - t0, count


def throughput(name: str, model, args) -> float:
    rng = np.random.default_rng(0)
    V = model.config.vocab_size
    prompts = [rng.integers(0, V, int(rng.integers(20, 40))).tolist() for _ in range(args.clients)]
    with Engine(model, config=EngineConfig(max_slots=args.clients)) as engine:
        concurrent(engine, prompts, 4)  # warm up: numba kernels, every slot's first cache pages
        one_at_a_time(model, prompts[:1], 4)
        batched, serial, ttfts = [], [], []
        for r in range(args.rounds):
            secs, firsts, count = concurrent(engine, prompts, args.tokens)
            batched.append(count / secs)
            ttfts += firsts
            secs, count = one_at_a_time(model, prompts, args.tokens)
            serial.append(count / secs)
            print(f"  round {r + 1}: batched {batched[-1]:6.1f} tok/s, one at a time {serial[-1]:6.1f} tok/s, "
                  f"{batched[-1] / serial[-1]:.2f}x (load {load()})", flush=True)
        mean_rows = engine.decode_rows / max(engine.steps, 1)
    b, s = statistics.median(batched), statistics.median(serial)
    # Each round times both back to back, so a round's ratio compares like with like; the median of those ratios
    # is the headline (the ratio of the two medians can pair a quiet moment of one with a busy moment of the other).
    paired = statistics.median(x / y for x, y in zip(batched, serial))
    p50, p95 = np.percentile(ttfts, 50), np.percentile(ttfts, 95)
    print(f"{name}: {args.clients} concurrent streams {b:.1f} tok/s vs one at a time {s:.1f} tok/s (medians); "
          f"median of per-round ratios {paired:.2f}x (ratio of medians {b / s:.2f}x); "
          f"TTFT p50 {p50 * 1e3:.0f} ms, p95 {p95 * 1e3:.0f} ms (all {args.clients} submitted at once); "
          f"{mean_rows:.1f} decode rows per step on average")
    return paired


def prefix_ttft(name: str, model, prefix_len: int, args) -> float:
    rng = np.random.default_rng(1)
    V = model.config.vocab_size
    shared = rng.integers(0, V, prefix_len).tolist()
    with Engine(model, config=EngineConfig(max_slots=2, max_len=prefix_len + 16)) as engine:
        def ttft(tenant: str) -> tuple[float, int]:
            req = engine.submit(shared + rng.integers(0, V, 8).tolist(), GREEDY, max_new_tokens=1, tenant=tenant)
            list(req)
            return req.ttft, req.cached_tokens

        ttft("warm")  # the "warm" tenant's blocks are now cached; every other tenant misses
        miss, hit = [], []
        for r in range(args.rounds):
            t, cached = ttft(f"cold-{r}")
            assert cached == 0
            miss.append(t)
            t, cached = ttft("warm")
            assert cached == prefix_len // 16 * 16, cached
            hit.append(t)
        m, h = statistics.median(miss), statistics.median(hit)
        print(f"{name}: TTFT with a {prefix_len}-token shared prefix: miss {m * 1e3:.0f} ms, hit {h * 1e3:.0f} ms "
              f"({prefix_len // 16 * 16} tokens cached): hit/miss = {h / m:.1%}  (load {load()})")
    return h / m


def main() -> None:
    args = ARGS.parse_args()
    print(f"load average (1 min) at the start: {load()}; {os.cpu_count()} cores, {args.threads} thread(s); greedy; {args.tokens} new tokens "
          f"per request; {args.rounds} rounds, medians")
    builtin, _ = load_model()
    ratios = {}
    ratios["builtin"] = throughput(f"built-in model ({builtin.n_params / 1e6:.1f}M)", builtin, args)
    prefix_ttft("built-in model", builtin, 400, args)
    if not args.skip_gpt2:
        cfg = PRESETS["gpt2-124m"]
        gpt2 = Transformer(cfg, init_params(cfg, np.random.default_rng(0)))
        print(f"GPT-2-124M shape, random weights ({gpt2.n_params / 1e6:.1f}M parameters)")
        ratios["gpt2"] = throughput("GPT-2-124M", gpt2, args)
        ratios["prefix"] = prefix_ttft("GPT-2-124M", gpt2, 1000, args)
    print("targets: >= 4x aggregate throughput with GPT-2-124M; hit TTFT <= 20 % of a miss")
    print(f"load average (1 min) at the end: {load()}")
    key = "gpt2" if "gpt2" in ratios else "builtin"
    print(f"ratio (continuous batching / one at a time, {key}, median of per-round ratios): {ratios[key]:.2f}x")


if __name__ == "__main__":
    main()
