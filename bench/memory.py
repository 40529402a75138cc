"""Memory benchmark: BM25 retrieval against rank_bm25 at 100 / 1,000 / 10,000 memories, and the store's insert and
forget throughput, in one run.

    python bench/memory.py [--sizes 100 1000 10000] [--queries 50] [--repeats 5]

The memories are real English sentences: lines of the docstrings in Python's standard library (every install
has them), de-duplicated, in sorted file order; the queries are other such lines, not in the store. Both
libraries index the same token lists (minichat.bm25.tokenize) and answer the same top-5 question (rank_bm25:
get_scores + argsort, which is what its get_top_n does). Per size the two are timed in turn within each repeat
(interleaved), so load from other jobs hits both alike; times are medians per query. `store` is the whole
StoreMemory.retrieve (tokenize, freshness check, BM25, budget) with its cached index; `build` is indexing once.

Throughput: remember() one fact per transaction (each commit fsync'ed, synchronous=FULL), a bulk import of
10,000 in one transaction, forget() one id (delete + WAL checkpoint), forget_all of 10,000.
Targets (issue 17): retrieval >= 1x rank_bm25's speed and < 10 ms at 10,000 memories. Ratios are printed last.
"""
from __future__ import annotations

import argparse
import ast
import os
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from minichat.bm25 import BM25, tokenize  # noqa: E402
from minichat.memory import MemoryStore, StoreMemory  # noqa: E402


def sentences(n: int) -> list[str]:
    """n distinct docstring lines (20-200 characters, 4+ words) from the standard library."""
    seen, out = set(), []
    for f in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "site-packages" in f.parts or "test" in f.parts or "tests" in f.parts:
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef, ast.Module)):
                for line in (ast.get_docstring(node) or "").splitlines():
                    line = line.strip()
                    key = " ".join(line.casefold().split())
                    if 20 <= len(line) <= 200 and len(tokenize(line)) >= 4 and key not in seen:
                        seen.add(key)
                        out.append(line)
                        if len(out) == n:
                            return out
    raise SystemExit(f"only {len(out)} docstring lines found, {n} needed")


def per_query(fn, queries) -> float:
    t = time.perf_counter()
    for q in queries:
        fn(q)
    return (time.perf_counter() - t) / len(queries)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        import rank_bm25
    except ImportError:
        raise SystemExit("rank_bm25 is not installed: pip install rank-bm25 (the 'peers' extra)") from None

    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    pool = sentences(max(args.sizes) + args.queries)
    queries_text = pool[-args.queries:]
    queries = [tokenize(q) for q in queries_text]
    rows, ratios = [], []
    tmp = tempfile.TemporaryDirectory()
    for n in args.sizes:
        docs = pool[:n]
        corpus = [tokenize(d) for d in docs]
        store = MemoryStore(Path(tmp.name) / f"m{n}.db")
        store.insert_many("bench", [{"text": d, "source": "extracted", "tags": [], "created": "2026-11-30T00:00:00Z",
                                     "updated": "2026-11-30T00:00:00Z"} for d in docs])
        socket = StoreMemory(store, "bench", max_chars=10**6)
        socket.retrieve("warm the cached index", 5)
        ref, ours = rank_bm25.BM25Okapi(corpus), BM25(corpus)
        # same answers first (ties aside, the top-5 sets agree when the 5th and 6th scores differ)
        for q in queries[:10]:
            s_ref = ref.get_scores(q)
            np.testing.assert_allclose(ours.scores(q), s_ref, rtol=0, atol=1e-9)
        times = {"rank_bm25": [], "minichat": [], "store": [], "build_ref": [], "build_ours": []}
        for _ in range(args.repeats):
            times["rank_bm25"].append(per_query(lambda q: np.argsort(ref.get_scores(q))[::-1][:5], queries))
            times["minichat"].append(per_query(lambda q: ours.top_k(q, 5), queries))
            times["store"].append(per_query(lambda q: socket.retrieve(q, 5), queries_text))
            t = time.perf_counter()
            rank_bm25.BM25Okapi(corpus)
            times["build_ref"].append(time.perf_counter() - t)
            t = time.perf_counter()
            BM25(corpus)
            times["build_ours"].append(time.perf_counter() - t)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append((n, med))
        ratios.append((n, med["rank_bm25"] / med["minichat"], med["rank_bm25"] / med["store"]))
        store.close()

    print(f"\nretrieval, top 5, median per query over {args.queries} queries x {args.repeats} repeats (ms)")
    print(f"{'memories':>9} {'rank_bm25':>10} {'minichat':>9} {'store':>8}   index build: {'rank_bm25':>9} "
          f"{'minichat':>9}")
    for n, m in rows:
        print(f"{n:>9} {m['rank_bm25'] * 1e3:>10.3f} {m['minichat'] * 1e3:>9.3f} {m['store'] * 1e3:>8.3f}   "
              f"{'':>13}{m['build_ref'] * 1e3:>9.1f} {m['build_ours'] * 1e3:>9.1f}")

    # -- store throughput ------------------------------------------------------------------------------------------
    with MemoryStore(Path(tmp.name) / "tp.db") as s:
        facts = pool[:10000]
        k = 200
        t = time.perf_counter()
        ids = [s.remember("one", f).id for f in facts[:k]]
        remember_rate = k / (time.perf_counter() - t)
        t = time.perf_counter()
        for i in ids[:100]:
            s.forget("one", i)
        forget_rate = 100 / (time.perf_counter() - t)
        rows_ = [{"text": f, "source": "extracted", "tags": [], "created": "2026-11-30T00:00:00Z",
                  "updated": "2026-11-30T00:00:00Z"} for f in facts]
        t = time.perf_counter()
        s.insert_many("bulk", rows_)
        bulk_rate = len(rows_) / (time.perf_counter() - t)
        t = time.perf_counter()
        s.forget_all("bulk")
        forget_all_s = time.perf_counter() - t
    print("\nstore throughput")
    print(f"  remember, one per transaction   {remember_rate:8.0f} /s")
    print(f"  forget one id (+ checkpoint)    {forget_rate:8.0f} /s")
    print(f"  bulk import of 10,000           {bulk_rate:8.0f} /s")
    print(f"  forget_all of 10,000            {forget_all_s * 1e3:8.1f} ms")
    prompt_cache_placement(pool, Path(tmp.name))
    tmp.cleanup()
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("speed ratio rank_bm25 time / minichat time (>= 1 means minichat is faster):")
    for n, r_index, r_store in ratios:
        print(f"  {n:>6} memories: bm25 {r_index:6.1f}x   whole store retrieval {r_store:6.1f}x")


def prompt_cache_placement(pool: list[str], folder: Path, turns: int = 10) -> None:
    """How much of each turn's prompt the KV cache can reuse, by where the memory snippets sit.

    A ten-turn chat with the built-in tokenizer; every turn retrieves the top 3 memories for its message from a
    store of 200. The KV cache holds the previous prompt plus the reply; a turn reuses the longest common prefix.
      system  today's placement: snippets inside the system message (context.system_text), rebuilt every turn
      turn    snippets in a system message just before the user message they were retrieved for, kept in the
              history afterwards (frozen), and only snippets not already in the conversation are added
    This counts tokens (no model runs); bench/chat.py times the first token with a model."""
    from minichat.chat.context import DEFAULT_INSTRUCTIONS, system_text
    from minichat.chat.template import ChatTemplate, Message, assistant, user
    from minichat.tokenizer.io import open_tokenizer

    tpl = ChatTemplate(open_tokenizer())
    with MemoryStore(folder / "cache.db") as s:
        for f in pool[:200]:
            s.remember("u", f)
        mem = StoreMemory(s, "u")
        asks = [pool[i * 17 + 3] for i in range(turns)]  # messages sharing words with stored memories
        shares = {}
        for placement in ("system", "turn"):
            history: list[Message] = []
            seen: set[str] = set()
            cached: list[int] = []
            share = []
            for t, ask in enumerate(asks):
                snippets = mem.retrieve(ask, 3)
                if placement == "system":
                    history.append(user(ask))
                    msgs = [Message("system", system_text(DEFAULT_INSTRUCTIONS, snippets))] + history
                else:
                    new = [x for x in snippets if x not in seen]
                    seen.update(new)
                    if new:
                        history.append(Message("system", system_text("", new)))
                    history.append(user(ask))
                    msgs = [Message("system", DEFAULT_INSTRUCTIONS)] + history
                ids = tpl.render(msgs)
                common = next((i for i, (a, b) in enumerate(zip(cached, ids)) if a != b), min(len(cached), len(ids)))
                share.append(common / len(ids))
                reply = assistant(f"Here is what I found about turn {t}.")
                history.append(reply)
                cached = ids + tpl.render_message(reply)[len(tpl.generation_prompt()):]
            shares[placement] = share
    print("\nprompt cache: share of the prompt reused from the previous turn (turns 2..10), by snippet placement")
    for placement, share in shares.items():
        print(f"  {placement:<7} " + " ".join(f"{x:4.0%}" for x in share[1:]))


if __name__ == "__main__":
    main()
