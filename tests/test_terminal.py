"""The terminal chat driven like a person would: through a pseudo-terminal (pexpect), with Ctrl-C mid-reply."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from minichat.config import ModelConfig
from minichat.model.checkpoint import save_checkpoint
from minichat.model.transformer import Transformer, init_params
from minichat.tokenizer.io import open_tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A random model big enough that a 900-token greedy reply takes seconds (and, for this seed, never ends early)."""
    tok = open_tokenizer()
    cfg = ModelConfig.llama(vocab_size=tok.n_vocab, n_ctx=1024, n_embd=256, n_layer=4, n_head=4, n_kv_head=2)
    path = tmp_path_factory.mktemp("model")
    save_checkpoint(path, Transformer(cfg, init_params(cfg, np.random.default_rng(0), std=0.1)), tok)
    return path


def test_piped_input_prints_just_the_reply(model_dir):
    out = subprocess.run([sys.executable, "-m", "minichat", "chat", "--model", str(model_dir), "--max-new-tokens",
                          "12"], input="hello there\n", capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() and "[context]" not in out.stdout and "you>" not in out.stdout
    traced = subprocess.run([sys.executable, "-m", "minichat", "chat", "--model", str(model_dir), "--trace",
                             "--max-new-tokens", "12"], input="hello there\n", capture_output=True, text=True,
                            cwd=REPO, timeout=300)
    for stage in ("[safety input]", "[memory]", "[context]", "[tokens]", "[done] length, 12 tokens"):
        assert stage in traced.stdout


def test_interactive_chat_streams_traces_and_survives_ctrl_c(model_dir, tmp_path):
    pexpect = pytest.importorskip("pexpect")  # part of the test extra
    child = pexpect.spawn(sys.executable, ["-m", "minichat", "chat", "--model", str(model_dir), "--max-new-tokens",
                                           "900"], cwd=str(REPO), encoding="utf-8", timeout=120)
    try:
        child.expect("you> ")
        child.sendline("/trace")
        child.expect(r"\(trace on\)")
        child.sendline("Tell me a long story")
        child.expect(r"\[tokens\] prompt \d+ = 0 from the KV cache")
        child.expect("minichat> |\\S")  # the reply has started streaming
        child.sendintr()  # Ctrl-C mid-reply
        child.expect(r"\[interrupted\]")
        child.expect("you> ")
        child.sendline("/history")
        child.expect("assistant: ")
        child.expect("you> ")
        child.sendline("/trace")
        child.sendline("/reset")
        child.expect(r"\(conversation forgotten\)")
        child.sendline(f"/save {tmp_path / 'c.json'}")
        child.expect("saved to")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert (tmp_path / "c.json").exists()


def test_an_over_long_message_is_refused_and_the_chat_goes_on(model_dir):
    """A paste too long for the window prints one line; the conversation before it is intact and the chat goes on."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(sys.executable, ["-m", "minichat", "chat", "--model", str(model_dir), "--max-new-tokens",
                                           "4"], cwd=str(REPO), encoding="utf-8", timeout=120)
    try:
        child.expect("you> ")
        child.sendline("first message")
        child.expect("you> ")
        child.sendline("paste " * 600)  # a terminal line holds at most 4,095 characters; this is ~3,600 (1,200 tokens)
        child.expect(r"message not sent: .* only \d+ fit .*the conversation is unchanged")
        child.expect("you> ")
        child.sendline("/history")
        child.expect("user: first message")
        child.expect("you> ")
        assert "paste paste" not in child.before
        child.sendline("second message")
        child.expect("you> ")
        child.sendline("/history")
        child.expect("user: second message")
        child.sendline("/quit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
