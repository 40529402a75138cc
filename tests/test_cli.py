"""The command line, run as a user would: `python -m minichat ...` in a subprocess."""
from __future__ import annotations

import re
import select
import subprocess
import sys

import pytest

from conftest import REPO, smollm2_gguf
from minichat.model.checkpoint import BUILTIN_MODEL
from minichat.tokenizer import load_tokenizer

CHAT_TOKENIZER = BUILTIN_MODEL / "tokenizer.bpe"  # the built-in chat model's own vocabulary


def open_tokenizer():
    return load_tokenizer(CHAT_TOKENIZER)


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "minichat", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=300)


def test_tokenize_shows_pieces_and_ids():
    out = run("tokenize", "--plain", "Hello, world!")
    assert out.returncode == 0, out.stderr
    ids = open_tokenizer().encode("Hello, world!")
    assert " ".join(map(str, ids)) in out.stdout
    assert f"{len(ids)} tokens, 13 characters" in out.stdout


def test_tokenize_reads_stdin_and_decodes_ids():
    out = run("tokenize", "--plain", stdin="naïve café")
    assert out.returncode == 0 and "tokens, 10 characters" in out.stdout
    ids = open_tokenizer().encode("naïve café")
    back = run("tokenize", "--ids", *map(str, ids))
    assert back.stdout.strip() == "naïve café"


def test_tokenizer_train_writes_a_loadable_vocabulary(tmp_path):
    corpus = tmp_path / "a.txt"
    corpus.write_text("the cat sat on the mat. " * 200 + "<|endoftext|>", encoding="utf-8")
    out_path = tmp_path / "tok.bpe"
    out = run("tokenizer", "train", str(corpus), "-", "--vocab-size", "300", "--special", "<|endoftext|>",
              "--out", str(out_path), stdin="more text from stdin " * 10)
    assert out.returncode == 0, out.stderr
    assert "learned" in out.stderr  # progress goes to stderr
    tok = load_tokenizer(out_path)
    # this small corpus runs out of pairs seen twice before 300 ids; training says so and stops early
    assert "stopped early" in out.stderr
    assert tok.n_vocab == 256 + len(tok.merges) + 1 < 300
    assert tok.special_tokens == {"<|endoftext|>": tok.n_vocab - 1}
    assert tok.decode(tok.encode("the cat sat")) == "the cat sat"
    assert len(tok.encode(" the cat")) < len(" the cat")


def test_bad_input_exits_2_with_one_line(tmp_path):
    out = run("tokenize", "--tokenizer", str(tmp_path / "missing.bpe"), "x")
    assert out.returncode == 2 and "no such file" in out.stderr and "Traceback" not in out.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe not utf-8")
    out = run("tokenizer", "train", str(bad), "--vocab-size", "300", "--out", str(tmp_path / "o.bpe"))
    assert out.returncode == 2 and "UTF-8" in out.stderr and "Traceback" not in out.stderr


def test_tokenize_default_is_the_chat_models_tokenizer_and_model_picks_another():
    """`minichat tokenize` cuts text as `minichat chat` would; --model shows a checkpoint's own (GGUF included)."""
    from minichat.model.gguf_tokenizer import tokenizer_from_gguf

    model, tok = __import__("minichat").load_model()
    text = "Tokenizers cut text 12345 ways"
    out = run("tokenize", "--plain", text)
    assert out.returncode == 0 and "minichat-builtin" in out.stdout
    assert " ".join(map(str, tok.encode(text))) in out.stdout
    gguf = smollm2_gguf()
    out = run("tokenize", "--plain", "--model", str(gguf), text)
    assert out.returncode == 0, out.stderr
    assert " ".join(map(str, tokenizer_from_gguf(gguf).encode(text))) in out.stdout and "49152 ids" in out.stdout


BAD_ARGUMENTS = [  # (argv, a phrase the one-line error must contain)
    (["frob"], "invalid choice"),
    (["tokenize", "--ids", "abc"], "--ids needs token ids"),
    (["tokenize", "--ids", "5", "999999"], "not in this vocabulary"),
    (["tokenize", "--model", "/no/such/model", "hi"], "no such file"),
    (["tokenize", "--model", "x", "--tokenizer", "y", "hi"], "not both"),
    (["tokenizer", "train", "README.md", "--vocab-size", "300", "--out", "/tmp/x.bpe", "--pattern", "(["],
     "not a valid regular expression"),
    (["tokenizer", "train", "README.md", "--vocab-size", "many", "--out", "/tmp/x.bpe"], "invalid int"),
    (["tokenizer", "train"], "required"),
    (["generate", "--model", "/no/such/model", "hi"], "no such file"),
    (["generate", "--max-new-tokens", "0", "hi"], "whole number >= 1"),
    (["chat", "--temperature", "-1"], "temperature"),
    (["chat", "--max-new-tokens", "1100"], "max_new_tokens must be in 1..1023"),
    (["chat", "--top-p", "0"], "top_p"),
    (["train", "--preset", "foo"], "invalid choice"),
    (["train", "--steps", "x"], "whole number >= 1"),
    (["eval", "--preset", "foo"], "invalid choice"),
    (["eval", "-n", "0"], "whole number >= 1"),
    (["eval", "--model", "README.md"], "not a GGUF file"),
    (["chat", "--tools", "calculator,frob"], "unknown tools ['frob']"),
    (["chat", "--notes", "/no/such/notes"], "does not exist"),
    (["chat", "--no-tools", "--tools", "calculator"], "cannot be combined"),
    (["chat", "--temporary", "--memory", "x.db"], "--temporary"),
    (["chat", "--no-safety", "--policy", "p.toml"], "cannot be combined"),
    (["tools", "list", "--notes", "/no/such/notes"], "does not exist"),
    (["memory", "forget", "abc"], "whole number"),
    (["memory", "forget"], "say what to forget"),
    (["memory", "forget", "999999"], "no memory with id 999999"),
    (["memory", "import", "/no/such/export.json"], "No such file"),
    (["safety", "check", "--policy", "/no/such/policy.toml", "hi"], "cannot read the safety policy"),
    (["safety", "frob"], "invalid choice"),
    (["export", "--format", "foo", "builtin", "out"], "invalid choice"),
    (["export", "--format", "hf", "/no/such/model", "out"], "no such file"),
]


@pytest.mark.parametrize("argv,phrase", BAD_ARGUMENTS, ids=[" ".join(a) for a, _ in BAD_ARGUMENTS])
def test_every_subcommand_reports_bad_arguments_in_one_line(argv, phrase):
    out = run(*argv, stdin="hello")
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, (out.returncode, out.stderr)
    assert len(lines) == 1 and phrase in lines[0] and "Traceback" not in out.stderr, out.stderr


def test_generate_says_when_the_model_is_chat_tuned():
    out = run("generate", "--max-new-tokens", "3", "Once upon a time")
    assert out.returncode == 0 and "is a chat model" in out.stderr and "minichat chat" in out.stderr


def test_real_model_gets_its_own_system_prompt_and_answers_in_english():
    """SmolLM2 with minichat's instructions answered in broken French; with its own default it says Paris."""
    gguf = smollm2_gguf()
    out = run("chat", "--model", str(gguf), "--max-new-tokens", "24", stdin="What is the capital of France?\n")
    assert out.returncode == 0, out.stderr
    assert "system prompt from the GGUF chat template" in out.stderr
    assert out.stdout.strip() == "The capital of France is Paris."


def test_an_over_long_piped_message_is_refused_in_one_line():
    out = run("chat", stdin="word " * 4000)
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout
    assert "message not sent" in out.stdout and len(out.stdout.strip().splitlines()) == 1


def turns(trace: str) -> list[str]:
    """The traced stdout of a piped chat cut at each turn's [done] line: the turns that assembled a context."""
    return [t for t in re.split(r"(?m)^\[done\][^\n]*\n", trace) if "[context]" in t]


def kept(turn: str) -> int:
    """How many messages the turn's first context assembly kept (the history it saw, the new message included)."""
    return int(re.search(r"\[context\] .*kept (\d+) message", turn).group(1))


def test_piped_lines_are_one_turn_each_and_a_refused_line_loses_nothing():
    """Three lines piped into the built-in model's chat: "hi", a paste too long for the window, "What is 2+3?" (and
    a blank line, skipped). Two turns run, the second seeing the first; the long line gets the interactive loop's
    one-line refusal and the conversation goes on."""
    out = run("chat", "--temporary", "--trace", "--max-new-tokens", "24",
              stdin="hi\n" + "word " * 4000 + "\n\n   \nWhat is 2+3?\n")
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout, out.stderr  # 2: a line was refused
    refusals = [line for line in out.stdout.splitlines() if "message not sent" in line]
    assert len(refusals) == 1 and "the conversation is unchanged" in refusals[0]
    assert out.stdout.count("[done]") == 2 and out.stdout.count("[safety input]") == 3  # the long line is checked too
    first, second = turns(out.stdout)
    assert kept(first) == 1  # "hi" alone
    assert kept(second) >= 3  # "hi", its reply (and any tool messages), "What is 2+3?": the history carried over
    assert "message not sent" in second and "word word" not in out.stdout


def test_piped_lines_are_answered_as_they_arrive():
    """Lines are read lazily: the first reply comes back while standard input is still open, so a long file (or a
    program feeding questions one at a time) is never read whole first."""
    child = subprocess.Popen([sys.executable, "-m", "minichat", "chat", "--temporary", "--max-new-tokens", "24"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        child.stdin.write("hi\n")
        child.stdin.flush()
        ready, _, _ = select.select([child.stdout], [], [], 120)
        assert ready and child.stdout.readline().strip(), "no reply while standard input was open"
        child.stdin.write("What is 2+3?\n")
        child.stdin.close()
        assert child.stdout.read().strip() and child.wait(120) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


def test_piped_input_as_one_message_and_empty_input():
    out = run("chat", "--temporary", "--trace", "--one-message", "--max-new-tokens", "24",
              stdin="hi\nWhat is 2+3?\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("[done]") == 1 and kept(out.stdout) == 1  # both lines in one user message
    for empty in ("", "\n  \n\n"):
        out = run("chat", "--temporary", stdin=empty)
        assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
        assert out.stderr.strip().splitlines()[-1] == "minichat: empty input: pipe one message per line"


def test_gguf_chat_template_is_reported(tmp_path):
    """A GGUF's own chat template: ChatML-like ones are honoured, others get a clear note (files written by `gguf`)."""
    from conftest import require_peer
    from minichat.cli import template_note

    gguf = require_peer("gguf")
    chatml = "{{ '<|im_start|>system\nYou are Tiny.<|im_end|>\n' }}{{ '<|im_start|>' + m['role'] }}{{ '<|im_end|>' }}"
    for name, template, expected in [("chatml", chatml, "chat template ChatML; system prompt from the GGUF"),
                                     ("bare", "{{ '<|im_start|>' + m['role'] }}{{ '<|im_end|>' }}", "no default system"),
                                     ("inst", "[INST] {{ m }} [/INST]", "not ChatML"), ("none", None, "no chat")]:
        path = tmp_path / f"{name}.gguf"
        w = gguf.GGUFWriter(str(path), "llama")
        if template is not None:
            w.add_chat_template(template)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        assert expected in template_note(str(path))


def test_train_offers_exactly_the_recipes():
    from minichat.builtin.recipe import RECIPES
    from minichat.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command" or getattr(a, "choices", None)
               and "train" in (a.choices or {}))
    train = sub.choices["train"]
    preset = next(a for a in train._actions if a.dest == "preset")
    assert sorted(preset.choices) == sorted(RECIPES)  # a recipe the CLI cannot start, or a choice without a recipe
