"""Training from scratch in NumPy: hand-written backward passes, AdamW, the training loop (and, beside them, the
chat-data pipeline and the synthetic corpus the built-in model is trained on).

    grads.py        every layer's backward, beside a restatement of its forward (finite-difference and torch tested)
    model_grad.py   the whole model: forward keeping activations, masked cross-entropy, backward -> loss, grads
    optim.py        AdamW (decoupled weight decay), warmup + cosine schedule, global-norm gradient clipping
    trainer.py      `train_model`: accumulation, progress, eval loss, log file, loss plot, exact-resume checkpoints
    data.py         token streams, chat rendering with an assistant-only loss mask, packing, resumable batches,
                    the corpus tokenizer
    synthetic*.py   the synthetic chat corpus (talk, tools, memory, refusals) with disjoint held-out pools
    evaluate.py     tool calls, answers after tool results, stopping, refusals and loss on held-out conversations
"""
from minichat.train.model_grad import loss_and_grads, loss_only
from minichat.train.optim import AdamW, clip_grad_norm, global_norm, lr_at
from minichat.train.trainer import (TokenWindows, TrainResult, evaluate_loss, init_model, plot_losses, read_log,
                                    train_model)

__all__ = ["AdamW", "TokenWindows", "TrainResult", "clip_grad_norm", "evaluate_loss", "global_norm", "init_model",
           "loss_and_grads", "loss_only", "lr_at", "plot_losses", "read_log", "train_model"]

# -- data pipeline, synthetic corpus and evaluation (minichat/train/data.py, synthetic.py, evaluate.py) --------------
from minichat.train.data import (CHAT_PATTERN, SPECIAL_TOKENS, Batch, Batches, chat_batches,  # noqa: E402
                                 encode_conversation, masked_text, text_batches, train_chat_tokenizer)
from minichat.train.evaluate import evaluate, format_table  # noqa: E402
from minichat.train.synthetic import (BUILTIN_TOOL_SCHEMAS, MIX, Conversation, generate_corpus,  # noqa: E402
                                      heldout_corpus)

__all__ += ["BUILTIN_TOOL_SCHEMAS", "Batch", "Batches", "CHAT_PATTERN", "Conversation", "MIX",
            "SPECIAL_TOKENS", "chat_batches", "encode_conversation", "evaluate", "format_table", "generate_corpus",
            "heldout_corpus", "masked_text", "text_batches", "train_chat_tokenizer"]
