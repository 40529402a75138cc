"""Chat speed: prompt caching across turns, and the terminal against the Python API.

    python bench/chat.py [--model PATH] [--repeats 5] [--window 2048]      KV reuse vs cold prefill at turn 10
    python bench/chat.py --memory ...                                       the same, with a memory store whose
                                                                            snippets change from turn to turn
    python bench/chat.py --terminal [--model PATH] [--repeats 5]           `minichat chat` vs `Chat.send`

--terminal: the same SmolLM2 turn (greedy, so the same tokens) answered by `Chat.send` in this process and by
`minichat chat --trace` in a subprocess, both piped and in a pseudo-terminal (pexpect, as a person types). The
subprocess's own `[done]` trace line gives its time to first token and generation time, so model loading is not
counted on either side; the wall time of the whole command is printed beside it. Runs are interleaved
(API, piped, terminal, API, ...) and medians reported. The ratio terminal / API decode speed is printed last.

KV reuse (default):

Both runs answer the same turn-10 message over the same history (greedy decoding makes turns 1-9 identical):
  warm  the session that just answered turn 9 still holds the conversation's keys/values, so turn 10 prefills only
        the tokens after the common prefix (the end of reply 9, the new user message, the assistant header);
  cold  a new session loads the same history from JSON and must prefill the whole prompt.
Time to first token is measured as a user sees it: from calling `send` to the first Token event, medians over
--repeats. The model is --model if given, else the real SmolLM2-135M-Instruct GGUF when .cache has it (the tests
fetch it), else a random model of the same shape with minichat's demo tokenizer. Target (issue 5): warm <= 20 %
of cold. The ratio is printed last.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from minichat.chat import events as ev
from minichat.chat.session import Chat

REPO = Path(__file__).resolve().parent.parent
SMOLLM2 = REPO / ".cache" / "SmolLM2-135M-Instruct.Q4_1.gguf"  # where the tests' minichat.downloads.fetch puts it
QUESTIONS = [
    "Hi! Can you tell me what a token is, in a few sentences?",
    "And how does the tokenizer decide where one token ends and the next begins?",
    "What is a context window, and what happens when a conversation gets longer than it?",
    "How does attention let the model look back at earlier words?",
    "Why do assistants stream their answers word by word instead of all at once?",
    "What is a KV cache and why does it make generation faster?",
    "How can a chat assistant use tools such as a calculator?",
    "What do safety layers check before and after the model runs?",
    "How does an assistant remember my preferences between conversations?",
    "Thanks! Could you summarise everything we talked about in three short points?",
]


FACTS = [
    "The user is learning how a tokenizer works.",
    "The user prefers short answers with an example.",
    "The user asked about attention in transformers last week.",
    "The user is writing a course on chat assistants.",
    "The user uses a calculator tool at work.",
    "The user cares about safety and privacy.",
    "The user wants the assistant to remember their preferences.",
    "The user reads about context windows and KV caches.",
]


def load(model_path: str | None):
    from minichat.model.checkpoint import load_model

    if model_path or SMOLLM2.exists():
        path = model_path or SMOLLM2
        model, tok = load_model(path)
        return model, tok, str(path)
    from minichat.config import PRESETS
    from minichat.model.transformer import Transformer, init_params
    from minichat.tokenizer.io import open_tokenizer

    tok = open_tokenizer()
    cfg = PRESETS["smollm2-135m"].replace(vocab_size=tok.n_vocab, n_ctx=4096)
    return Transformer(cfg, init_params(cfg, np.random.default_rng(0))), tok, "random SmolLM2-shaped model"


def first_token_seconds(chat: Chat, text: str) -> tuple[float, int, int]:
    """Seconds from send() to the first Token event; also the prompt and cached token counts. Runs the turn out."""
    t = time.perf_counter()
    ttft, prompt, cached = None, 0, 0
    for e in chat.send(text):
        if isinstance(e, ev.Tokenized) and not prompt:
            prompt, cached = e.prompt_tokens, e.cached_tokens
        if isinstance(e, ev.Token) and ttft is None:
            ttft = time.perf_counter() - t
    return ttft, prompt, cached


DONE = re.compile(r"\[done\] \w+, (\d+) tokens, first token ([\d.]+)s, generation ([\d.]+)s")


def api_turn(model, tok, question: str, max_new: int) -> tuple[float, float, int]:
    """(time to first token, decode tokens/s, tokens) of one fresh `Chat.send` turn."""
    done = None
    for e in Chat(model, tok, max_new_tokens=max_new).send(question):
        if isinstance(e, ev.Done):
            done = e
    n, t = done.usage["completion_tokens"], done.timings
    return t["first_token"], (n - 1) / max(t["generate"] - t["first_token"], 1e-9), n


def cli_turn(model_path: str, question: str, max_new: int, pty: bool) -> tuple[float, float, int, float]:
    """The same turn through `minichat chat --trace` (piped, or in a pseudo-terminal); plus the command's wall time."""
    argv = [sys.executable, "-m", "minichat", "chat", "--model", model_path, "--trace",
            "--max-new-tokens", str(max_new)]
    t0 = time.perf_counter()
    if pty:
        import pexpect

        child = pexpect.spawn(argv[0], argv[1:], cwd=str(REPO), encoding="utf-8", timeout=600)
        child.expect("you> ")
        child.sendline(question)
        child.expect(DONE)
        m = child.match
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    else:
        out = subprocess.run(argv, input=question + "\n", capture_output=True, text=True, cwd=REPO, check=True)
        m = DONE.search(out.stdout)
    wall = time.perf_counter() - t0
    n, first, gen = int(m.group(1)), float(m.group(2)), float(m.group(3))
    return first, (n - 1) / max(gen - first, 1e-9), n, wall


def terminal_vs_api(args) -> None:
    model, tok, name = load(args.model)
    if name.startswith("random"):
        raise SystemExit("--terminal needs a real model: pass --model or run `python -m minichat.downloads "
                         "SmolLM2-135M-Instruct.Q4_1.gguf` first")
    question = "Explain in one paragraph why the sky is blue."
    print(f"model: {name}; {os.getloadavg()[0]:.2f} load average (1 min) at the start; greedy, "
          f"up to {args.reply_tokens} new tokens")
    rows: dict[str, list] = {"Chat.send (API)": [], "minichat chat, piped": [], "minichat chat, terminal": []}
    for _ in range(args.repeats):
        rows["Chat.send (API)"].append(api_turn(model, tok, question, args.reply_tokens) + (float("nan"),))
        rows["minichat chat, piped"].append(cli_turn(name, question, args.reply_tokens, pty=False))
        rows["minichat chat, terminal"].append(cli_turn(name, question, args.reply_tokens, pty=True))
    print(f"{'':26s} {'first token':>12s} {'decode tok/s':>13s} {'tokens':>7s} {'command wall':>13s}")
    med = {}
    for label, runs in rows.items():
        med[label] = [statistics.median(r[i] for r in runs) for i in range(4)]
        first, rate, n, wall = med[label]
        print(f"{label:26s} {first * 1000:10.0f} ms {rate:13.1f} {n:7.0f} {wall:11.1f} s")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")
    print(f"terminal / API decode speed: {med['minichat chat, terminal'][1] / med['Chat.send (API)'][1]:.2f}x "
          f"(piped {med['minichat chat, piped'][1] / med['Chat.send (API)'][1]:.2f}x; target: 1.00x within noise)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--terminal", action="store_true", help="time `minichat chat` against `Chat.send`")
    ap.add_argument("--memory", action="store_true", help="with a memory store (snippets differ every turn)")
    ap.add_argument("--model")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--window", type=int, default=2048, help="context window used by the session")
    ap.add_argument("--reply-tokens", type=int, default=96, help="max_new_tokens per reply (turns 1-9 build history)")
    args = ap.parse_args()
    if args.terminal:
        return terminal_vs_api(args)

    model, tok, name = load(args.model)
    memory = None
    if args.memory:  # facts that share words with different questions, so each turn retrieves other snippets
        from minichat.memory import MemoryStore, StoreMemory

        store = MemoryStore(Path(tempfile.mkdtemp()) / "memory.db")
        for fact in FACTS:
            store.remember("bench", fact)
        memory = StoreMemory(store, "bench")
    make = lambda: Chat(model, tok, context_window=args.window, max_new_tokens=args.reply_tokens,  # noqa: E731
                        memory=memory)
    print(f"model: {name}; window {args.window}, replies up to {args.reply_tokens} tokens, greedy, "
          f"{'memory on (snippets in memory notes)' if memory else 'no memory'}")

    chat = make()  # build turns 1-8 once; save the history before turn 9 and before turn 10
    for q in QUESTIONS[:8]:
        for _ in chat.send(q):
            pass
    with tempfile.TemporaryDirectory() as tmp:
        before9 = Path(tmp) / "before9.json"
        chat.save(before9)
        for _ in chat.send(QUESTIONS[8]):
            pass
        before10 = Path(tmp) / "before10.json"
        chat.save(before10)
        warm, cold = [], []
        for _ in range(args.repeats):
            w = make()
            w.load(before9)
            for _ in w.send(QUESTIONS[8]):  # turn 9 fills this session's KV cache
                pass
            warm.append(first_token_seconds(w, QUESTIONS[9]))
            c = make()
            c.load(before10)
            cold.append(first_token_seconds(c, QUESTIONS[9]))
    (_, prompt, cached_w), (_, prompt_c, cached_c) = warm[0], cold[0]
    t_warm, t_cold = statistics.median(t for t, _, _ in warm), statistics.median(t for t, _, _ in cold)
    print(f"turn 10 prompt: {prompt} tokens (cold run: {prompt_c}); from the KV cache: warm {cached_w}, cold {cached_c}")
    print(f"time to first token, median of {args.repeats}:")
    print(f"  cold prefill  {t_cold * 1000:8.1f} ms")
    print(f"  KV reuse      {t_warm * 1000:8.1f} ms")
    print(f"KV reuse / cold: {t_warm / t_cold * 100:.1f} % (target <= 20 %)")


if __name__ == "__main__":
    main()
