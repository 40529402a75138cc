"""The training recipe end to end, at the tiny size: corpus -> vocabulary -> batches -> training -> a model folder
that the chat loop, the CLI and the evaluation can use; resuming continues the same run."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from minichat.builtin.recipe import RECIPES, run_recipe
from minichat.chat.session import Chat
from minichat.model import load_model


@pytest.mark.slow
def test_tiny_recipe_trains_resumes_and_chats(tmp_path):
    first = run_recipe("tiny", tmp_path, steps=6, progress=None)
    assert first.last_step == 6 and (tmp_path / "model" / "config.json").exists()
    assert first.losses[-1] < first.losses[0]  # it learns something even in six steps
    model, tok = load_model(tmp_path / "model")
    assert tok.n_vocab == model.config.vocab_size <= RECIPES["tiny"].vocab_size
    reply = list(Chat(model, tok, max_new_tokens=8).send("hello"))
    assert reply[-1].type == "done"
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if r["type"] == "train"] == list(range(1, 7))
    # a mid-run checkpoint names its recipe too, so `minichat chat --model out/checkpoint` treats it as a chat model
    from minichat.chat.profile import profile_from_path
    from minichat.model.checkpoint import checkpoint_metadata

    assert checkpoint_metadata(tmp_path / "checkpoint")["recipe"] == "tiny"
    assert profile_from_path(tmp_path / "checkpoint") == profile_from_path(tmp_path / "model")
    assert profile_from_path(tmp_path / "model").chat_tuned


@pytest.mark.slow
def test_a_recipe_can_continue_another_ones_model(tmp_path, monkeypatch):
    from dataclasses import replace

    from minichat.builtin import recipe as R
    from minichat.model.checkpoint import load_checkpoint

    tiny = RECIPES["tiny"]
    monkeypatch.setitem(R.RECIPES, "tiny-next", replace(tiny, start="tiny", train=replace(tiny.train, lr=1e-3)))
    said = []
    nxt = run_recipe("tiny-next", tmp_path, steps=3, progress=said.append)
    first, _ = load_checkpoint(tmp_path / "start" / "model")  # the start recipe ran first, into out_dir/start
    # ... before this stage made its corpus (the two corpora are never held at once)
    corpus_lines = [i for i, line in enumerate(said) if line.startswith("corpus:")]
    assert said[0].startswith("first the 'tiny' recipe") and len(corpus_lines) == 2, said
    assert corpus_lines[1] > said.index(next(line for line in said if line.startswith("starting from")))
    fresh = run_recipe("tiny", tmp_path / "fresh", steps=1, progress=None)
    assert nxt.losses[0] < fresh.losses[0] - 1.0  # step 1 already predicts like a trained model, not a fresh one
    assert (tmp_path / "start" / "model" / "tokenizer.bpe").read_bytes() == (
        tmp_path / "model" / "tokenizer.bpe").read_bytes()  # the start's vocabulary, not a new one
    again = run_recipe("tiny-next", tmp_path / "again", steps=3, progress=None)  # deterministic end to end
    assert again.losses == nxt.losses
    # a deeper model grows from the start's by identity blocks: its first loss (before any update) is the start's
    deep = replace(tiny.train, model=tiny.train.model.replace(n_layer=tiny.train.model.n_layer + 1))
    monkeypatch.setitem(R.RECIPES, "tiny-deep", replace(tiny, start="tiny", train=deep))
    shutil.copytree(tmp_path / "start", tmp_path / "deep" / "start")  # the same start model
    grown = run_recipe("tiny-deep", tmp_path / "deep", steps=2, progress=None)
    assert grown.losses[0] == nxt.losses[0]
    assert load_checkpoint(tmp_path / "deep" / "model")[0].config.n_layer == deep.model.n_layer
    wide = replace(tiny.train, model=tiny.train.model.replace(n_embd=2 * tiny.train.model.n_embd))
    monkeypatch.setitem(R.RECIPES, "tiny-wide", replace(tiny, start="tiny", train=wide))
    with pytest.raises(ValueError, match="only the window may differ"):
        run_recipe("tiny-wide", tmp_path, steps=1, progress=None)  # reuses tmp_path/start: a model of another shape


def test_cli_train_rejects_unknown_preset(tmp_path):
    out = subprocess.run([sys.executable, "-m", "minichat", "train", "--preset", "nope", "--out", str(tmp_path)],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2 and "'nope'" in out.stderr and "builtin" in out.stderr  # names the choices
    for steps in ("0", "-5", "ten"):  # never a silent full-length run for --steps 0
        out = subprocess.run([sys.executable, "-m", "minichat", "train", "--preset", "tiny", "--steps", steps, "--out",
                              str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert out.returncode == 2 and "whole number >= 1" in out.stderr and "Traceback" not in out.stderr
        assert not any(tmp_path.iterdir())  # nothing started
    with pytest.raises(ValueError, match="steps must be a whole number"):  # the library says the same
        run_recipe("tiny", tmp_path, steps=0, progress=None)


@pytest.mark.slow
def test_recipe_seed_is_another_draw_and_resume_keeps_it(tmp_path):
    base = run_recipe("tiny", tmp_path / "a", steps=2, progress=None)
    subprocess.run([sys.executable, "-m", "minichat", "train", "--preset", "tiny", "--steps", "2", "--seed", "7",
                    "--out", str(tmp_path / "b")], check=True, capture_output=True, cwd=REPO, timeout=300)
    first = json.loads((tmp_path / "b" / "log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and first["loss"] != base.losses[0]  # other initial weights and batches
    meta = json.loads((tmp_path / "b" / "model" / "config.json").read_text())
    assert meta["metadata"]["seed"] == 7
    with pytest.raises(ValueError, match="seed=7"):  # the checkpoint's batches came from seed 7
        run_recipe("tiny", tmp_path / "b", steps=4, seed=8, resume=True, progress=None)


@pytest.mark.slow
def test_a_compact_listing_recipe_says_so_in_its_model_folder(tmp_path, monkeypatch):
    """A v2 recipe trained on the compact tool listing writes tool_listing into its checkpoints, so the chat and the
    evaluation list tools that way for its model; the v1 corpus has only the full listing, and says so."""
    from dataclasses import replace

    from minichat.builtin import recipe as R
    from minichat.chat.profile import profile_from_path
    from minichat.model.checkpoint import checkpoint_metadata

    tiny = RECIPES["tiny"]
    monkeypatch.setitem(R.RECIPES, "tiny-c", replace(tiny, corpus="v2", tool_listing="compact", n_conversations=120))
    run_recipe("tiny-c", tmp_path, steps=2, progress=None)
    assert checkpoint_metadata(tmp_path / "checkpoint")["tool_listing"] == "compact"
    assert profile_from_path(tmp_path / "model").tool_listing == "compact"
    assert profile_from_path(tmp_path / "model") == profile_from_path(tmp_path / "checkpoint")
    monkeypatch.setitem(R.RECIPES, "tiny-v1c", replace(tiny, tool_listing="compact"))
    with pytest.raises(ValueError, match="only the v2 corpus"):
        run_recipe("tiny-v1c", tmp_path / "v1", steps=1, progress=None)


def test_the_builtin_preset_is_the_shipped_models_recipe():
    """`minichat train --preset builtin` makes the model that ships: the recipe named in the shipped folder's
    metadata, the same model shape, and a chain of starts that begins from nothing."""
    from minichat.builtin.recipe import ASSET_MODEL
    from minichat.model.checkpoint import checkpoint_metadata

    shipped = checkpoint_metadata(ASSET_MODEL)["recipe"]
    assert RECIPES["builtin"] is RECIPES[shipped]
    config = json.loads((ASSET_MODEL / "config.json").read_text(encoding="utf-8"))["model"]
    want = RECIPES["builtin"].train.model
    assert {k: config[k] for k in ("n_ctx", "n_embd", "n_layer", "n_head", "n_kv_head", "n_inner")} == {
        "n_ctx": want.n_ctx, "n_embd": want.n_embd, "n_layer": want.n_layer, "n_head": want.n_head,
        "n_kv_head": want.n_kv_head, "n_inner": want.n_inner}
    chain, name = [], "builtin"
    while name is not None:
        chain.append(name)
        name = RECIPES[name].start
    assert chain == ["builtin", "builtin-v2y", "builtin-v2x", "builtin-v2w", "builtin-v1"]
