"""Training from scratch in NumPy: hand-written backward passes, AdamW, the training loop, token batches.

    grads.py        every layer's backward, beside a restatement of its forward (finite-difference and torch tested)
    blocked_attention.py
                    causal self-attention's forward and backward for training, arranged in causal query blocks
    backprop.py     backpropagation through the whole model: forward keeping activations, masked cross-entropy,
                    backward -> loss, grads
    optim.py        AdamW (decoupled weight decay), warmup + cosine schedule, global-norm gradient clipping
    trainer.py      `train_model`: accumulation, progress, eval loss, log file, loss plot, exact-resume checkpoints
    data.py         token batches: plain-text windows, packing of (ids, mask) sequences, resumable Batches
    grow.py         a trained model made deeper by identity blocks (the same function, more layers to train)
    wiring.py       a previous-token head (and an induction head reading it) wired into fresh weights
    scaffold.py     smeared keys taken away during training: a rising floor on their logits, then dropped

What it leaves out: what to train on. The built-in chat model's corpus, vocabulary, recipe and evaluation live in
minichat/builtin, which uses this package; nothing here knows about chat messages.
"""
from minichat.train.backprop import loss_and_grads, loss_only
from minichat.train.data import Batch, Batches, pack, text_batches
from minichat.train.optim import AdamW, clip_grad_norm, global_norm, lr_at
from minichat.train.trainer import TrainResult, evaluate_loss, init_model, plot_losses, read_log, train_model

__all__ = ["AdamW", "Batch", "Batches", "TrainResult", "clip_grad_norm", "evaluate_loss", "global_norm", "init_model",
           "loss_and_grads", "loss_only", "lr_at", "pack", "plot_losses", "read_log", "text_batches", "train_model"]
