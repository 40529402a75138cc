"""The training loop: exact resume (stopped on purpose, or by Ctrl-C), determinism, gradient accumulation equal to one
big batch, a tiny model overfitting a tiny corpus, the log, plot and checkpoint files, and the errors for a clobbered
folder, a mismatched resume or a batch source that cannot resume."""
from __future__ import annotations

import json

import numpy as np
import pytest

from minichat.config import PRESETS, TrainConfig
from minichat.model.checkpoint import load_checkpoint
from minichat.train import Batches, evaluate_loss, init_model, read_log, train_model

CORPUS = np.tile(np.random.default_rng(5).integers(0, 128, 150), 8)  # 1200 tokens of a 150-token pattern

CONFIG = TrainConfig(model=PRESETS["tiny-llama"], steps=12, batch_size=4, seq_len=16, lr=1e-2, min_lr=1e-3,
                     warmup_steps=3, log_every=4, eval_every=5, eval_batches=2, checkpoint_every=4)


def windows(seed=0, config=CONFIG):
    """Windows of T + 1 tokens of CORPUS, every third position, as resumable batches in a seeded order."""
    T = config.seq_len
    rows = np.lib.stride_tricks.sliding_window_view(CORPUS, T + 1)[::3]  # (N, T+1)
    return Batches(rows, np.ones_like(rows), config.batch_size, seed)


def run(out_dir, config=CONFIG, batches=None, **kw):
    model = init_model(config)
    result = train_model(model, windows() if batches is None else batches, config, out_dir,
                         eval_batches=windows(seed=99), progress=None, **kw)
    return model, result


def same_params(a, b):
    return all(np.array_equal(a.params[n], b.params[n]) for n in a.params)


def test_deterministic_for_a_seed_and_learning(tmp_path):
    m1, r1 = run(tmp_path / "a")
    m2, r2 = run(tmp_path / "b")
    assert r1.losses == r2.losses and same_params(m1, m2)
    assert len(r1.losses) == 12 and r1.first_step == 1 and r1.last_step == 12
    assert r1.losses[-1] < r1.losses[0] - 0.5
    assert [s for s, _ in r1.eval_losses] == [5, 10, 12]
    _, r3 = run(tmp_path / "c", config=CONFIG.replace(seed=1))
    assert r3.losses != r1.losses  # another seed, other initial weights


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    full_model, full = run(tmp_path / "full")
    part_model, first = run(tmp_path / "part", until=6)  # stops after step 6 (checkpoints at 4 and 6)
    assert first.last_step == 6 and first.losses == full.losses[:6]
    model, second = run(tmp_path / "part", resume=True)
    assert second.first_step == 7 and first.losses + second.losses == full.losses  # bit for bit
    assert same_params(model, full_model)
    assert second.eval_losses == [e for e in full.eval_losses if e[0] > 6]
    log = read_log(tmp_path / "part")
    assert [r["loss"] for r in log if r["type"] == "train"] == full.losses  # the log is the whole curve, once
    assert [r["step"] for r in log if r["type"] == "eval"] == [5, 10, 12]


class InterruptAt:
    """A stateful batch source that raises KeyboardInterrupt (as Ctrl-C would) when asked for batch `at`."""

    def __init__(self, at):
        self.inner, self.at, self.n = windows(), at, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.n == self.at:
            raise KeyboardInterrupt
        self.n += 1
        return next(self.inner)

    def state(self):
        return {"inner": self.inner.state(), "n": self.n}

    def restore(self, state):
        self.inner.restore(state["inner"])
        self.n = state["n"]


def test_ctrl_c_saves_a_checkpoint_that_resumes_exactly(tmp_path):
    _, full = run(tmp_path / "full")
    _, first = run(tmp_path / "part", batches=InterruptAt(7))  # dies while drawing step 8's batch
    assert first.interrupted and first.last_step == 7
    meta = json.loads((tmp_path / "part" / "checkpoint" / "trainer.json").read_text())
    assert meta["step"] == 7
    _, second = run(tmp_path / "part", batches=InterruptAt(10**6), resume=True)
    assert first.losses + second.losses == full.losses


def test_gradient_accumulation_equals_one_big_batch(tmp_path):
    config = CONFIG.replace(steps=6, checkpoint_every=0)
    big, halves = config.replace(batch_size=8), config.replace(grad_accum=2)  # batch_size 4
    # Batches deal rows in one seeded order: micro-batches 2i and 2i + 1 of 4 rows are the two halves of batch i of 8
    a, b = windows(config=big), windows(config=halves)
    assert np.array_equal(np.concatenate([b.batch(0).ids, b.batch(1).ids]), a.batch(0).ids)
    _, one = run(None, config=big, batches=a)
    _, acc = run(None, config=halves, batches=b)
    np.testing.assert_allclose(acc.losses, one.losses, rtol=1e-5)


def test_overfits_a_tiny_corpus(tmp_path):
    """A 2-layer model memorises one 24-token sentence (every window of it) to near-zero loss."""
    sentence = np.random.default_rng(0).integers(0, 128, 25)
    rows = sentence[None].repeat(4, 0)  # (4, 25): every batch is the sentence four times
    batch = (rows[:, :-1], rows[:, 1:], np.ones((4, 24), np.float32))
    config = TrainConfig(model=PRESETS["tiny-gpt2"], steps=150, batch_size=4, seq_len=24, lr=1e-2, min_lr=1e-3,
                         warmup_steps=10, weight_decay=0.0, log_every=50, checkpoint_every=0)
    model = init_model(config)
    result = train_model(model, Batches(rows, np.ones_like(rows), 4), config, None, progress=None)
    assert result.losses[0] > 4.0 and result.losses[-1] < 0.05
    assert evaluate_loss(model, [batch]) < 0.05  # the inference forward agrees


def test_files_progress_and_checkpoint_loading(tmp_path):
    lines = []
    model = init_model(CONFIG)
    train_model(model, windows(), CONFIG, tmp_path, eval_batches=windows(seed=99), progress=lines.append)
    assert sum("tok/s" in ln and "eta" in ln and "loss" in ln for ln in lines) == 3  # steps 4, 8, 12
    assert sum("eval loss" in ln for ln in lines) == 3
    records = read_log(tmp_path)
    assert [r["step"] for r in records if r["type"] == "train"] == list(range(1, 13))
    assert all(r["tokens"] == 64 and r["grad_norm"] > 0 and r["lr"] > 0 for r in records if r["type"] == "train")
    saved, _ = load_checkpoint(tmp_path / "checkpoint")  # an ordinary minichat model folder
    assert same_params(saved, model)
    assert not (tmp_path / "checkpoint.tmp").exists() and not (tmp_path / "checkpoint.old").exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert not (tmp_path / "loss.png").exists()
    else:
        assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_checkpoints_carry_the_callers_metadata_beside_the_step(tmp_path):
    from minichat.model.checkpoint import checkpoint_metadata

    run(tmp_path, metadata={"recipe": "tiny", "seed": 3})
    meta = checkpoint_metadata(tmp_path / "checkpoint")
    assert meta["recipe"] == "tiny" and meta["seed"] == 3 and meta["step"] == 12
    assert TrainConfig.from_dict(meta["train"]) == CONFIG
    run(tmp_path / "plain")
    assert "recipe" not in checkpoint_metadata(tmp_path / "plain" / "checkpoint")


def test_refuses_to_clobber_or_to_resume_a_different_run(tmp_path):
    run(tmp_path, config=CONFIG.replace(steps=4))
    with pytest.raises(ValueError, match="resume=True"):
        run(tmp_path, config=CONFIG.replace(steps=4))
    with pytest.raises(ValueError, match="batch_size"):
        small = CONFIG.replace(steps=8, batch_size=2)
        run(tmp_path, config=small, batches=windows(config=small), resume=True)
    other = CONFIG.replace(model=PRESETS["tiny-gpt2"], steps=8)
    with pytest.raises(ValueError, match="another config"):
        run(tmp_path, config=other, resume=True)


def test_bad_sources_and_batches_are_refused():
    batches = [next(windows(seed=i)) for i in range(12)]
    with pytest.raises(TypeError, match="resumable"):  # a list cannot say where a resumed run should continue
        train_model(init_model(CONFIG), batches, CONFIG, None, progress=None)
    ids, targets, mask = batches[0]
    with pytest.raises(ValueError, match="no unmasked targets"):
        evaluate_loss(init_model(CONFIG), [(ids, targets, np.zeros_like(mask))])
    with pytest.raises(ValueError, match="TrainConfig.model is None"):
        init_model(TrainConfig())
