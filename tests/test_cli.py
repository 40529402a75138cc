"""The command line, run as a user would: `python -m minichat ...` in a subprocess."""
from __future__ import annotations

import subprocess
import sys

from conftest import REPO
from minichat.tokenizer import load_tokenizer
from minichat.tokenizer.io import open_tokenizer


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


def test_gguf_chat_template_is_reported(tmp_path):
    """A GGUF's own chat template: ChatML-like ones are honoured, others get a clear note (files written by `gguf`)."""
    from conftest import require_peer
    from minichat.cli import template_note

    gguf = require_peer("gguf")
    for name, template, expected in [("chatml", "{{ '<|im_start|>' + m['role'] }}{{ '<|im_end|>' }}", "is ChatML"),
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
