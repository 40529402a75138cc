"""Tool-calling costs: the streaming parser against decoding, the calculator on hostile input, the listing's tokens,
and (optionally) the built-in model's calculator accuracy end to end through `Chat`.

    python bench/tools.py [--repeats 7] [--accuracy N] [--listing full|compact|both]

1 parser    the built-in model decodes a reply (greedy) that contains a tool call; each token's text is then fed to
            ToolStreamParser. Per token: decode time (minichat's generation loop) vs parser time (its peer, the
            non-streaming parse_assistant on the whole reply, is timed too). Interleaved, medians. Target: parser
            <= 2 % of decode time.
2 hostile   calculate() on each hostile input of tests/test_tools_calculator.py: median and worst latency. Target
            <= 10 ms each. Beside it, Python's eval() on a benign expression (the unsafe peer) for scale.
3 listing   tokens of the tool listing (full, as the model was trained, and compact) with the built-in tokenizer.
4 accuracy  (--accuracy N) N arithmetic questions with 3-5 digit numbers through Chat with the four built-in tools;
            a reply is right when it contains the calculator's exact result. Target >= 90 %. --listing compact
            swaps the system prompt's tool listing for compact_listing (an experiment: the model was trained on the
            full one); --delimit wraps results in <tool_result> tags (also untrained).
5 notes     (--notes N) the first N held-out "notes" conversations of the corpus: the note is written to a file named
            after its topic, the user's question goes through Chat, and the reply must contain every detail the
            corpus's probe lists; once with bare results (as trained) and once with file names (show_files).
The load average is printed first; the ratio parser/decode last.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import minichat  # noqa: E402
from minichat.chat import context as chat_context  # noqa: E402
from minichat.chat import events as ev  # noqa: E402
from minichat.chat.context import DEFAULT_INSTRUCTIONS, system_text  # noqa: E402
from minichat.chat.session import Chat  # noqa: E402
from minichat.chat.template import ChatTemplate, Message, parse_assistant, tools_prompt, user  # noqa: E402
from minichat.chat.toolstream import ToolStreamParser  # noqa: E402
from minichat.generate import SamplingConfig, generate  # noqa: E402
from minichat.tools import BUILTIN_TOOL_SCHEMAS, Toolbox, builtin_tools  # noqa: E402
from minichat.tools.calculator import calculate, calculator  # noqa: E402
from minichat.tools.listing import compact_listing  # noqa: E402

ASSETS = Path(minichat.__file__).resolve().parent / "assets" / "model"


def bench_parser(model, tok, repeats: int) -> float:
    template = ChatTemplate(tok)
    sys_msg = Message("system", system_text(DEFAULT_INSTRUCTIONS, tools=BUILTIN_TOOL_SCHEMAS))
    ids = template.render([sys_msg, user("What is 4821 * 37?")])
    decode, parse_s, peer_s, texts = [], [], [], []
    for _ in range(repeats):
        t = time.perf_counter()
        steps = list(generate(model, ids, SamplingConfig(temperature=0.0), max_new_tokens=60,
                              stop_ids=template.stop_ids, tokenizer=tok))
        decode.append((time.perf_counter() - t) / len(steps))
        texts = [s.text for s in steps]
        t = time.perf_counter()
        for _ in range(20):
            p = ToolStreamParser()
            for x in texts:
                p.feed(x)
            p.flush()
        parse_s.append((time.perf_counter() - t) / 20 / len(texts))
        t = time.perf_counter()
        for _ in range(20):
            parse_assistant("".join(texts))
        peer_s.append((time.perf_counter() - t) / 20 / len(texts))
    reply = "".join(texts)
    d, p, q = statistics.median(decode), statistics.median(parse_s), statistics.median(peer_s)
    print(f"[parser] reply of {len(texts)} tokens: {reply!r:.110}")
    print(f"[parser] decode {d * 1e3:.2f} ms/token | ToolStreamParser {p * 1e6:.2f} us/token | "
          f"parse_assistant (whole reply, per token) {q * 1e6:.2f} us")
    return p / d


HOSTILE = ["9**9**9", "(9**9)**(9**9)", "10 ** 5000", "2.5 ** 100000", "(2**4000) * (2**4000)", "1e308 * 10",
           "(" * 10_000 + "1" + ")" * 10_000, "(" * 51 + "1" + ")" * 51, "1+" * 5000 + "1",
           "1+" * 99 + "1", "-" * 199 + "1", "((((((((((1))))))))))" * 9,
           "__import__('os').system('echo pwned')", "().__class__.__base__.__subclasses__()", "lambda: 1",
           "x" * 10**6, "1234 / 0"]


def bench_hostile(repeats: int) -> float:
    """Wall time and CPU time (this thread's) per hostile input. On a loaded machine the worst wall time includes
    the scheduler's time slices (several ms when 8 processes share 2 cores); the CPU time is the calculator's own."""
    worst_cpu = worst_wall = 0.0
    rows = []
    for e in HOSTILE:
        wall, cpu = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.thread_time()
            try:
                calculate(e)
            except Exception:  # noqa: BLE001 - every one of them is refused; only the time matters here
                pass
            cpu.append(time.thread_time() - c)
            wall.append(time.perf_counter() - t)
        rows.append((statistics.median(wall), max(wall), max(cpu), e))
        worst_cpu, worst_wall = max(worst_cpu, max(cpu)), max(worst_wall, max(wall))
    for med, mx, mc, e in sorted(rows, reverse=True)[:6]:
        print(f"[hostile] wall median {med * 1e3:6.3f} ms, worst {mx * 1e3:6.3f} ms | CPU worst {mc * 1e3:6.3f} ms"
              f"  {e!r:.50}")
    benign = "(3847 * 29 + 12) / 7 - 2 ** 10"
    ours, peer = [], []
    for _ in range(repeats * 20):  # interleaved: ours, then the peer
        t = time.perf_counter()
        calculator(benign)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        eval(benign, {"__builtins__": {}})  # the unsafe peer, on our own constant text
        peer.append(time.perf_counter() - t)
    print(f"[hostile] worst of all: CPU {worst_cpu * 1e3:.3f} ms, wall {worst_wall * 1e3:.3f} ms (target <= 10 ms); "
          f"benign {benign!r}: calculator {statistics.median(ours) * 1e6:.1f} us, eval "
          f"{statistics.median(peer) * 1e6:.1f} us")
    return worst_cpu


def bench_listing(tok, window: int) -> None:
    template = ChatTemplate(tok)
    full, compact = tools_prompt(BUILTIN_TOOL_SCHEMAS), compact_listing(BUILTIN_TOOL_SCHEMAS)
    base = template.count(Message("system", DEFAULT_INSTRUCTIONS))
    with_tools = template.count(Message("system", system_text(DEFAULT_INSTRUCTIONS, tools=BUILTIN_TOOL_SCHEMAS)))
    print(f"[listing] full: {len(tok.encode_ordinary(full))} tokens, compact: {len(tok.encode_ordinary(compact))} "
          f"tokens; system message with instructions: full {with_tools}, none {base} (window {window})")


def questions(n: int, seed: int = 2026) -> list[tuple[str, str]]:
    rng = np.random.default_rng(seed)
    asks = ("What is {e}?", "Calculate {e}.", "How much is {e}?", "What's {e}?", "Please calculate {e}.")
    out = []
    for _ in range(n):
        op = "+-*/"[int(rng.integers(4))]
        a = int(rng.integers(100, 100_000))
        b = int(rng.integers(100, 10_000)) if op != "*" else int(rng.integers(10, 1000))
        if op == "/":
            a = b * int(rng.integers(2, 100))  # exact divisions mostly, as people ask
        e = f"{a} {op} {b}"
        out.append((asks[int(rng.integers(len(asks)))].format(e=e), calculator(e)))
    return out


def accuracy(model, tok, n: int, listing: str, delimit: bool = False) -> float:
    if listing == "compact":
        chat_context.tools_prompt = compact_listing  # the experiment: what the system prompt lists
    try:
        right, called = 0, 0
        for q, want in questions(n):
            chat = Chat(model, tok, tools=Toolbox(builtin_tools(), delimit=delimit), max_new_tokens=64)
            events = list(chat.send(q))
            called += any(isinstance(e, ev.ToolCalled) and e.name == "calculator" for e in events)
            right += want in events[-1].text
        print(f"[accuracy] listing {listing}{', delimited results' if delimit else ''}: {right}/{n} right "
              f"({100 * right / n:.1f} %), calculator called in {called}/{n}")
        return right / n
    finally:
        chat_context.tools_prompt = tools_prompt


def notes_accuracy(model, tok, n: int) -> None:
    import importlib
    import tempfile
    for name in ("minichat.builtin.corpus.synthetic", "minichat.train.synthetic"):
        try:
            synthetic = importlib.import_module(name)
            break
        except ImportError:
            continue
    convs = synthetic.heldout_corpus(n, kinds=["notes"])
    for show_files in (False, True):
        right = 0
        for k, conv in enumerate(convs):
            question, call, result = conv.messages[1], conv.messages[2].tool_calls[0], conv.messages[3].content
            probe = next(p for p in conv.probes if p.kind == "answer" and p.index == 4)
            with tempfile.TemporaryDirectory() as folder:
                topic = call.arguments["query"]
                if result.startswith("1 note found:\n- "):
                    Path(folder, topic + ".txt").write_text(result.split("- ", 1)[1] + "\n", encoding="utf-8")
                chat = Chat(model, tok, tools=Toolbox(builtin_tools(notes=folder, show_files=show_files)),
                            max_new_tokens=96)
                reply = list(chat.send(question.content))[-1].text
            right += all(c in reply for c in probe.contains)
        print(f"[notes] file names {'shown' if show_files else 'hidden (as trained)'}: {right}/{n} answers with "
              f"every detail ({100 * right / n:.1f} %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--accuracy", type=int, default=0, help="questions for the end-to-end accuracy (0: skip)")
    ap.add_argument("--listing", choices=["full", "compact", "both"], default="full")
    ap.add_argument("--delimit", action="store_true", help="also measure accuracy with delimited results")
    ap.add_argument("--notes", type=int, default=0, help="held-out notes conversations to answer (0: skip)")
    args = ap.parse_args()
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    model, tok = minichat.load_model(ASSETS)
    bench_listing(tok, model.config.n_ctx)
    bench_hostile(args.repeats)
    if args.accuracy:
        for listing in (["full", "compact"] if args.listing == "both" else [args.listing]):
            accuracy(model, tok, args.accuracy, listing)
        if args.delimit:
            accuracy(model, tok, args.accuracy, "full", delimit=True)
    if args.notes:
        notes_accuracy(model, tok, args.notes)
    ratio = bench_parser(model, tok, args.repeats)
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"ratio parser / decode time per token: {100 * ratio:.3f} % (target <= 2 %)")


if __name__ == "__main__":
    main()
