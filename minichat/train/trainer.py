"""The training loop: batches in, a trained model, a log, a loss curve and resumable checkpoints out.

    for step in 1..steps:
        draw grad_accum micro-batches (ids, targets, mask), each (B, T)
        loss, grads = loss_and_grads(...)    summed over micro-batches, averaged over all their unmasked targets
        clip the global gradient norm; AdamW step at lr_at(step)
        log the step; every eval_every steps an eval loss; every checkpoint_every steps a checkpoint

Exact resume: a checkpoint holds the weights (`save_checkpoint`), AdamW's moments bit for bit, the step, and the
batch source's position, so continuing from it computes exactly the numbers the uninterrupted run would have (the
tests check the loss curves are identical). The trainer itself draws no random numbers (no dropout): all randomness
lives in the initial weights (`init_model`, seeded) and in the batch source, whose state is saved.

The batches come from one kind of source: `Batches` (minichat/train/data.py: `text_batches` for plain text, or
packed conversations from minichat/builtin/data.py), or anything else that is an iterator of (ids, targets, mask)
with `state() -> JSON-able` and `restore(state)`. Its state goes into the checkpoint.

The output folder:
    log.jsonl            one JSON record per step ({"type": "train", "step", "loss", "lr", "grad_norm", ...}) and per
                         eval ({"type": "eval", "step", "loss"}); truncated to the checkpoint's step on resume
    loss.png             the loss curve, drawn only if matplotlib is installed (never a dependency)
    checkpoint/          the latest checkpoint: a minichat model folder (load it with `load_checkpoint`) plus
                         optimizer.safetensors (AdamW's moments) and trainer.json (step, batches' state, config)

What it leaves out: multiple processes or devices, mixed precision, early stopping, keeping more than one checkpoint.
"""
from __future__ import annotations

import itertools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from minichat.config import TrainConfig
from minichat.model.checkpoint import load_checkpoint, save_checkpoint
from minichat.model.safetensors import read_safetensors, write_safetensors
from minichat.model.transformer import Transformer, init_params
from minichat.train.backprop import loss_and_grads, loss_only
from minichat.train.optim import AdamW, clip_grad_norm, lr_at

LOG_FILE, PLOT_FILE, CKPT_DIR = "log.jsonl", "loss.png", "checkpoint"
OPTIM_FILE, STATE_FILE = "optimizer.safetensors", "trainer.json"


@dataclass
class TrainResult:
    """What one call of `train_model` did. `losses[i]` is the training loss of step `first_step + i`."""

    first_step: int  # the first step this call ran (1, or the checkpoint's step + 1 when resuming)
    last_step: int  # the last step completed (== config.steps unless stopped early)
    losses: list[float] = field(default_factory=list)  # training loss of each step this call ran
    eval_losses: list[tuple[int, float]] = field(default_factory=list)  # (step, eval loss) of this call's evals
    tokens: int = 0  # tokens this call fed through the model (masked ones included)
    seconds: float = 0.0  # wall time of this call's steps
    out_dir: Path | None = None  # where the log and checkpoint went
    interrupted: bool = False  # stopped by Ctrl-C (after saving a checkpoint)


def init_model(config: TrainConfig) -> Transformer:
    """A freshly initialised model for `config.model`, its weights drawn from `config.seed`."""
    if config.model is None:
        raise ValueError("TrainConfig.model is None: give the config a ModelConfig (or build the model yourself)")
    return Transformer(config.model, init_params(config.model, np.random.default_rng(config.seed), config.init_std))


def _format_time(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def evaluate_loss(model: Transformer, batches: Iterable) -> float:
    """The masked mean cross-entropy over every unmasked target of `batches` (each (ids, targets, mask))."""
    total, count = 0.0, 0.0
    for ids, targets, mask in batches:
        n = float(np.asarray(mask, dtype=np.float64).sum())
        if n > 0:
            total += loss_only(model, ids, targets, mask, normalizer=1.0)
            count += n
    if count == 0:
        raise ValueError("the evaluation batches hold no unmasked targets")
    return total / count


def read_log(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of `out_dir`/log.jsonl, in order ([] if there is none)."""
    path = Path(out_dir) / LOG_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def plot_losses(out_dir: str | os.PathLike) -> Path | None:
    """Draw log.jsonl's train and eval losses into loss.png; None (and nothing written) without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure  # the object API: no global backend switch, safe inside notebooks
    except ImportError:
        return None
    records = read_log(out_dir)
    train = [(r["step"], r["loss"]) for r in records if r["type"] == "train"]
    evals = [(r["step"], r["loss"]) for r in records if r["type"] == "eval"]
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), lw=1, label="train")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval")
    ax.set(xlabel="step", ylabel="loss (nats per token)", title="training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    path = Path(out_dir) / PLOT_FILE
    fig.savefig(path, dpi=100)
    return path


def _save(out: Path, model: Transformer, opt: AdamW, batches_state: dict, step: int, config: TrainConfig,
          tokenizer: Any, metadata: dict[str, Any] | None = None) -> None:
    """Write the checkpoint folder atomically: a fresh folder, then a rename over the old one."""
    tmp, final, old = out / (CKPT_DIR + ".tmp"), out / CKPT_DIR, out / (CKPT_DIR + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    save_checkpoint(tmp, model, tokenizer, metadata={**(metadata or {}), "step": step, "train": config.to_dict()})
    state = opt.state_dict()
    write_safetensors(tmp / OPTIM_FILE, state, metadata={"format": "minichat-adamw"})
    doc = {"step": step, "batches": batches_state, "config": config.to_dict()}
    (tmp / STATE_FILE).write_text(json.dumps(doc) + "\n", encoding="utf-8")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _resume(out: Path, model: Transformer, opt: AdamW, batches: Any, config: TrainConfig) -> int:
    """Load the checkpoint in `out` into `model` (in place), `opt` and `batches`; return its step."""
    folder = out / CKPT_DIR
    saved, _ = load_checkpoint(folder)
    if saved.config != model.config:
        raise ValueError(f"{folder} holds a model with another config ({saved.config}); it cannot resume this one")
    doc = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    old = TrainConfig.from_dict(doc["config"])
    for name in ("grad_accum", "batch_size", "seq_len"):
        if getattr(old, name) != getattr(config, name):
            raise ValueError(f"the checkpoint was trained with {name}={getattr(old, name)}, this config has "
                             f"{getattr(config, name)}: the steps would not see the same batches")
    for name, p in model.params.items():
        np.copyto(p, saved.params[name])  # in place: the Transformer's per-block references stay valid
    opt.load_state_dict(read_safetensors(folder / OPTIM_FILE))
    batches.restore(doc["batches"])
    return int(doc["step"])


def train_model(model: Transformer, batches: Any, config: TrainConfig, out_dir: str | os.PathLike | None = None,
                eval_batches: Iterable | None = None, resume: bool = False,
                progress: Callable[[str], None] | None = print, tokenizer: Any = None,
                until: int | None = None, metadata: dict[str, Any] | None = None,
                after_step: Callable[[int, dict[str, np.ndarray]], Any] | None = None) -> TrainResult:
    """Train `model` in place on `batches` for `config.steps` optimiser steps (see the module docstring).

    batches: a Batches, or another iterator of (ids, targets, mask) batches ((B, T) each) with state() and
    restore(state). out_dir: where the log, plot and checkpoints go (None: nowhere, and no resume). eval_batches:
    held-out batches; the first `config.eval_batches` of them are drawn once and scored at every eval. resume: continue from `out_dir`/checkpoint if it exists (the
    model's weights are replaced by the checkpoint's). progress: called with one line of text per `log_every` steps
    (None: silent). tokenizer: saved into each checkpoint. until: stop after this step, as if interrupted (the
    schedule still runs to config.steps); for splitting a run in parts. metadata: JSON values written into each
    checkpoint's config.json beside the step (a recipe's name, so a checkpoint chats as that recipe's model).
    after_step: called as after_step(step, model.params) after each optimiser step, to constrain the weights in place
    (train/scaffold.py holds smear logits above a floor); it must depend on the step only, or resume is not exact.
    """
    if not (hasattr(batches, "state") and hasattr(batches, "restore") and hasattr(batches, "__next__")):
        raise TypeError(f"batches must be a resumable iterator (a Batches from text_batches or chat_batches, or one "
                        f"with state() and restore(state)), not {type(batches).__name__}")
    out = None if out_dir is None else Path(out_dir)
    say = progress or (lambda line: None)
    opt = AdamW(model.params, config)
    eval_set = None if eval_batches is None else list(itertools.islice(iter(eval_batches), config.eval_batches))
    start = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        has_ckpt = (out / CKPT_DIR / STATE_FILE).exists()
        if has_ckpt and resume:
            start = _resume(out, model, opt, batches, config)
            say(f"resumed from {out / CKPT_DIR} at step {start}")
        elif has_ckpt or (out / LOG_FILE).exists() and not resume:
            raise ValueError(f"{out} already holds a training run; pass resume=True to continue it, or choose "
                             f"another (or an empty) out_dir")
        kept = [r for r in read_log(out) if r["step"] <= start]  # forget steps after the checkpoint
        (out / LOG_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
    last = config.steps if until is None else min(until, config.steps)
    result = TrainResult(first_step=start + 1, last_step=start, out_dir=out)
    log = None if out is None else open(out / LOG_FILE, "a", encoding="utf-8")

    def record(rec: dict[str, Any]) -> None:
        if log is not None:
            log.write(json.dumps(rec) + "\n")
            log.flush()

    def checkpoint(step: int) -> None:
        if out is not None:
            _save(out, model, opt, batches_state, step, config, tokenizer, metadata)
            plot_losses(out)

    t0 = time.perf_counter()
    window_tokens, window_time, updating = 0, 0.0, False  # tok/s counts training time only
    batches_state = batches.state()  # the position after the last *completed* step
    try:
        for step in range(start + 1, last + 1):
            step_t0 = time.perf_counter()
            micro = [next(batches) for _ in range(config.grad_accum)]
            total = sum(float(np.asarray(m, dtype=np.float64).sum()) for _, _, m in micro)  # unmasked targets
            loss, acc = 0.0, None
            for ids, targets, mask in micro:
                part, grads = loss_and_grads(model, ids, targets, mask, normalizer=total)
                loss += part
                if acc is None:
                    acc = grads
                else:
                    for name, g in grads.items():
                        acc[name] += g
            n_tokens = sum(int(np.size(ids)) for ids, _, _ in micro)
            norm = clip_grad_norm(acc, config.grad_clip)
            lr = lr_at(step, config)
            updating = True  # a Ctrl-C in the middle of the update would leave half-updated weights
            opt.step(acc, lr)
            if after_step is not None:  # a constraint on the weights, a function of the step (so resume stays exact)
                after_step(step, model.params)
            updating = False
            batches_state = json.loads(json.dumps(batches.state()))  # a frozen copy
            result.losses.append(loss)
            result.last_step = step
            result.tokens += n_tokens
            now = time.perf_counter()
            window_tokens += n_tokens
            window_time += now - step_t0
            record({"type": "train", "step": step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": n_tokens,
                    "time": round(now - t0, 3)})
            if step % config.log_every == 0 or step == last:
                tps = window_tokens / max(window_time, 1e-9)
                eta = (now - t0) / (step - start) * (last - step)
                say(f"step {step:>5}/{config.steps} | loss {loss:.4f} | lr {lr:.2e} | grad norm {norm:.3f} | "
                    f"{tps:,.0f} tok/s | {_format_time(now - t0)} elapsed, eta {_format_time(eta)}")
                window_tokens, window_time = 0, 0.0
            if eval_set and (config.eval_every and step % config.eval_every == 0 or step == config.steps):
                ev = evaluate_loss(model, eval_set)
                result.eval_losses.append((step, ev))
                record({"type": "eval", "step": step, "loss": ev})
                say(f"step {step:>5}/{config.steps} | eval loss {ev:.4f}")
            if config.checkpoint_every and step % config.checkpoint_every == 0 or step == last:
                checkpoint(step)
    except KeyboardInterrupt:
        result.interrupted = True
        if updating:
            say("interrupted during a weight update: the weights are inconsistent, the last checkpoint stands")
        elif result.last_step > start and out is not None:
            say(f"interrupted: saving a checkpoint at step {result.last_step}")
            checkpoint(result.last_step)
    finally:
        result.seconds = time.perf_counter() - t0
        if log is not None:
            log.close()
    return result
