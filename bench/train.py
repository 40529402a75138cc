"""Training-step speed: tokens per second of forward + backward + AdamW, minichat (NumPy) vs torch (CPU, eager).

Both train the same architecture (a TRAIN_PRESETS entry, "builtin" by default) from the same initial weights on the
same random (B, T) batches, with the same number of threads: OpenBLAS's for minichat (its NumPy code between the
matmuls runs on one thread; DESIGN.md rules out parallel numba kernels), torch.set_num_threads for torch. The torch
side is what a PyTorch user would write: autograd, F.scaled_dot_product_attention(is_causal=True) (its fused CPU
flash-attention kernel), F.rms_norm / F.layer_norm, torch.optim.AdamW. The two steps alternate, so a busy machine
slows both alike; each figure is the median over the timed steps. The ratio is printed last.

    .venv/bin/python bench/train.py                 # builtin preset, batch size from the preset, all cores
    .venv/bin/python bench/train.py --threads 1 --batch-size 8 --steps 5
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from minichat.config import TRAIN_PRESETS  # noqa: E402
from minichat.train import AdamW, clip_grad_norm, init_model, loss_and_grads, lr_at  # noqa: E402


def torch_step_fn(torch, config, params, batches):
    """A torch training step for `config.model`, from copies of minichat's initial weights."""
    F = torch.nn.functional
    c = config.model
    H, K, D, C = c.n_head, c.n_kv_head, c.head_dim, c.n_embd
    tp = {n: torch.tensor(p.copy(), requires_grad=True) for n, p in params.items()}
    decay = [tp[n] for n in tp if not (n in ("wte", "wpe", "lm_head") or n.endswith("bias") or "ln_" in n)]
    rest = [t for t in tp.values() if all(t is not d for d in decay)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=config.lr, betas=(config.beta1, config.beta2))
    T = config.seq_len
    inv = 1.0 / c.rope_theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv
    cos, sin = torch.cat([ang, ang], -1).cos().float(), torch.cat([ang, ang], -1).sin().float()

    def norm(x, name):
        if c.norm == "rmsnorm":
            return F.rms_norm(x, (C,), tp[name + ".weight"], eps=c.norm_eps)
        return F.layer_norm(x, (C,), tp[name + ".weight"], tp.get(name + ".bias"), eps=c.norm_eps)

    def lin(x, name):
        return F.linear(x, tp[name + ".weight"].T, tp.get(name + ".bias"))

    def rot(t):
        return t * cos + torch.cat([-t[..., D // 2:], t[..., :D // 2]], -1) * sin

    def loss_fn(ids, targets, mask):
        B = ids.shape[0]
        x = tp["wte"][ids] + (tp["wpe"][:T] if c.positions == "learned" else 0)
        for i in range(c.n_layer):
            p = f"h.{i}."
            qkv = lin(norm(x, p + "ln_1"), p + "attn.c_attn")
            q = qkv[..., :H * D].view(B, T, H, D).transpose(1, 2)
            k = qkv[..., H * D:(H + K) * D].view(B, T, K, D).transpose(1, 2)
            v = qkv[..., (H + K) * D:].view(B, T, K, D).transpose(1, 2)
            if c.positions == "rope":
                q, k = rot(q), rot(k)
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=K != H)
            x = x + lin(a.transpose(1, 2).reshape(B, T, H * D), p + "attn.c_proj")
            h = norm(x, p + "ln_2")
            if c.mlp == "swiglu":
                x = x + lin(F.silu(lin(h, p + "mlp.c_gate")) * lin(h, p + "mlp.c_fc"), p + "mlp.c_proj")
            else:
                x = x + lin(F.gelu(lin(h, p + "mlp.c_fc"), approximate="tanh"), p + "mlp.c_proj")
        logits = norm(x, "ln_f") @ (tp["wte"] if c.tie_embeddings else tp["lm_head"]).T
        nll = F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1), reduction="none")
        return (nll * mask.view(-1)).sum() / mask.sum()

    tb = [tuple(torch.as_tensor(a) for a in (ids.astype(np.int64), tg.astype(np.int64), m)) for ids, tg, m in batches]

    def step(i):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(*tb[i % len(tb)])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(tp.values()), config.grad_clip)
        opt.step()
        return loss.item()

    return step


def main() -> None:
    config = TRAIN_PRESETS[args.preset]
    config = config.replace(batch_size=args.batch_size or config.batch_size, seq_len=args.seq_len or config.seq_len)
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
