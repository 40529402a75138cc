"""Training-step speed: tokens per second of forward + backward + AdamW, minichat (NumPy) vs torch (CPU, eager).

Both train the same architecture (a TRAIN_PRESETS entry, "builtin" by default) from the same initial weights on the
same random (B, T) batches, with the same number of threads: OpenBLAS's for minichat (its NumPy code between the
matmuls runs on one thread; docs/design.md rules out parallel numba kernels), torch.set_num_threads for torch. The torch
side is what a PyTorch user would write, and the model tests/test_grads.py checks minichat's gradients against
(tests/peer_helpers.py): autograd, F.scaled_dot_product_attention(is_causal=True) (its fused CPU flash-attention
kernel), F.rms_norm / F.layer_norm, torch.optim.AdamW. The two steps alternate, so a busy machine
slows both alike; each figure is the median over the timed steps. The ratio is printed last.

    .venv/bin/python bench/train.py                 # builtin preset, batch size from the preset, all cores
    .venv/bin/python bench/train.py --threads 1 --batch-size 8 --steps 5
    .venv/bin/python bench/train.py --batch-size 4 --seq-len 1024    # the built-in model's v2 stages
"""
from __future__ import annotations

import argparse
import os
import sys
import time

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--preset", default="builtin", help="a TRAIN_PRESETS name (default builtin)")
parser.add_argument("--batch-size", type=int, default=None, help="sequences per step (default: the preset's)")
parser.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default: the preset's)")
parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for BLAS and torch (default: all)")
parser.add_argument("--steps", type=int, default=3, help="timed steps per side, after one warm-up step")
parser.add_argument("--no-torch", action="store_true", help="time minichat only")
args = parser.parse_args()
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(args.threads)  # must be set before NumPy loads OpenBLAS

import numpy as np  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]
from minichat.config import TRAIN_PRESETS  # noqa: E402
from minichat.train import AdamW, clip_grad_norm, init_model, loss_and_grads, lr_at  # noqa: E402
from minichat.train.optim import decays  # noqa: E402
from peer_helpers import torch_model_loss  # noqa: E402  (the torch model the tests check gradients against)


def torch_step_fn(torch, config, params, batches):
    """A torch training step for `config.model`, from copies of minichat's initial weights: the tests' torch model
    (tests/peer_helpers.py), autograd, clipping and torch.optim.AdamW with minichat's decay groups."""
    tp = {n: torch.tensor(p.copy(), requires_grad=True) for n, p in params.items()}
    opt = torch.optim.AdamW([{"params": [tp[n] for n in tp if decays(n, config)], "weight_decay": config.weight_decay},
                             {"params": [tp[n] for n in tp if not decays(n, config)], "weight_decay": 0.0}],
                            lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    tb = [(torch.as_tensor(ids.astype(np.int64)), torch.as_tensor(tg.astype(np.int64)), m) for ids, tg, m in batches]

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = torch_model_loss(torch, config.model, tp, *tb[i % len(tb)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(tp.values()), config.grad_clip)
        opt.step()
        return loss.item()

    return step


def main() -> None:
    config = TRAIN_PRESETS[args.preset]
    T = args.seq_len or config.seq_len  # longer rows than the preset's window widen it (the v2 recipes' 1,024)
    config = config.replace(model=config.model.replace(n_ctx=max(config.model.n_ctx, T)),
                            batch_size=args.batch_size or config.batch_size, seq_len=T)
    B, T = config.batch_size, config.seq_len
    model = init_model(config)
    c = model.config
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"note: load average {load:.1f} before starting: other processes are using the CPU; multi-threaded BLAS "
              f"slows down sharply when it shares cores (compare with --threads 1)")
    print(f"preset {args.preset}: {c.family}, {model.n_params / 1e6:.2f}M parameters (n_embd {c.n_embd}, n_layer "
          f"{c.n_layer}, n_head {c.n_head}/{c.n_kv_head}, vocab {c.vocab_size}); batch {B} x {T} = {B * T} tokens; "
          f"{args.threads} thread(s)")
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(4):
        ids = rng.integers(0, c.vocab_size, (B, T + 1)).astype(np.int32)
        batches.append((ids[:, :-1], ids[:, 1:], np.ones((B, T), np.float32)))
    opt = AdamW(model.params, config)

    def ours(i):
        loss, grads = loss_and_grads(model, *batches[i % len(batches)])
        clip_grad_norm(grads, config.grad_clip)
        opt.step(grads, lr_at(i + 1, config))
        return loss

    sides = {"minichat": ours}
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
        sides["torch"] = torch_step_fn(torch, config, {n: p.copy() for n, p in model.params.items()}, batches)
    times = {name: [] for name in sides}
    for i in range(args.steps + 1):
        for name, fn in sides.items():
            t = time.perf_counter()
            loss = fn(i)
            if i:  # step 0 warms up (numba compilation, allocator, caches)
                times[name].append(time.perf_counter() - t)
            print(f"  step {i} {name:8s} loss {loss:.4f}  {time.perf_counter() - t:.2f} s", flush=True)
    rate = {name: B * T / float(np.median(ts)) for name, ts in times.items()}
    for name, r in rate.items():
        print(f"{name:8s} {r:10,.0f} tokens/s  ({float(np.median(times[name])):.3f} s per step)")
    if "torch" in rate:
        print(f"ratio minichat / torch: {rate['minichat'] / rate['torch']:.2f}x")


if __name__ == "__main__":
    main()
