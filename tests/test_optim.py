"""AdamW, the schedule and clipping against hand-worked values and torch: one update on random tensors equals
torch.optim.AdamW's, clipping equals torch.nn.utils.clip_grad_norm_, and the losses of 10 training steps of a tiny
model (minichat's backward + AdamW vs torch autograd + torch.optim.AdamW, same weights, batches, schedule, clipping
and decay groups) agree to 1e-4."""
from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import require_peer
from minichat.config import TrainConfig
from minichat.train import AdamW, clip_grad_norm, global_norm, loss_and_grads, lr_at
from minichat.train.optim import decays
from peer_helpers import torch_model_loss
from test_grads import CONFIGS, random_batch, random_model


@pytest.fixture(scope="module")
def torch():
    t = require_peer("torch")
    t.set_num_threads(1)
    return t


def schedule(**kw) -> TrainConfig:
    return TrainConfig(**{"lr": 1.0, "min_lr": 0.1, "warmup_steps": 4, "steps": 14, **kw})


def test_schedule_hand_values():
    c = schedule()
    assert [lr_at(s, c) for s in (1, 2, 4)] == pytest.approx([0.25, 0.5, 1.0])  # linear warmup
    assert lr_at(9, c) == pytest.approx(0.55)  # half-way through the decay: the middle of min_lr..lr
    assert lr_at(6, c) == pytest.approx(0.1 + 0.45 * (1 + math.cos(0.2 * math.pi)))  # 20% of the way
    assert lr_at(14, c) == pytest.approx(0.1) and lr_at(30, c) == pytest.approx(0.1)  # the end, and past it
    lin = schedule(schedule="linear")
    assert [lr_at(s, lin) for s in (6, 9, 14)] == pytest.approx([0.82, 0.55, 0.1])
    assert [lr_at(s, schedule(schedule="constant")) for s in (2, 5, 14)] == pytest.approx([0.5, 1.0, 1.0])
    assert lr_at(1, schedule(warmup_steps=0, steps=2)) == pytest.approx(0.55)
    assert all(lr_at(s + 1, c) <= lr_at(s, c) for s in range(4, 20))  # never rises after warmup
    with pytest.raises(ValueError, match="from 1"):
        lr_at(0, c)


def test_train_config_validation_and_round_trip():
    c = schedule(schedule="linear")
    assert TrainConfig.from_dict(c.to_dict()) == c
    for bad in ({"steps": 0}, {"schedule": "step"}, {"min_lr": 2.0}, {"beta2": 1.0}, {"grad_accum": 1.5},
                {"weight_decay": -1.0}):
        with pytest.raises(ValueError):
            schedule(**bad)
    with pytest.raises(ValueError, match="unknown"):
        TrainConfig.from_dict({"stepz": 3})


def test_decay_groups():
    c = TrainConfig()
    assert decays("h.0.attn.c_attn.weight", c) and decays("h.3.mlp.c_gate.weight", c)
    assert not any(decays(n, c) for n in ("wte", "wpe", "lm_head", "h.0.ln_1.weight", "ln_f.bias",
                                          "h.1.mlp.c_fc.bias"))
    assert decays("wte", c.replace(decay_embeddings=True))
    assert decays("h.0.ln_2.weight", c.replace(decay_norms_and_biases=True))


def test_clipping_matches_torch(torch):
    rng = np.random.default_rng(0)
    for max_norm in (0.5, 1e9, 0.0):
        grads = {f"g{i}": rng.standard_normal((3, 4 + i)).astype(np.float32) for i in range(3)}
        tensors = [torch.zeros(g.shape, requires_grad=True) for g in grads.values()]
        for t, g in zip(tensors, grads.values()):
            t.grad = torch.tensor(g.copy())
        norm = clip_grad_norm(grads, max_norm)
        ref = torch.nn.utils.clip_grad_norm_(tensors, max_norm if max_norm > 0 else float("inf"))
        assert norm == pytest.approx(ref.item(), rel=1e-6)
        for t, g in zip(tensors, grads.values()):
            np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-6)
        if max_norm > 0:
            assert global_norm(grads) <= max_norm * (1 + 1e-6)


def test_adamw_updates_match_torch(torch):
    rng = np.random.default_rng(1)
    params = {"h.0.attn.c_attn.weight": rng.standard_normal((4, 6)).astype(np.float32),
              "h.0.ln_1.weight": rng.standard_normal(6).astype(np.float32),
              "wte": rng.standard_normal((5, 4)).astype(np.float32)}
    config = TrainConfig(beta1=0.8, beta2=0.9, eps=1e-6, weight_decay=0.3)
    tparams = {n: torch.tensor(p.copy(), requires_grad=True) for n, p in params.items()}
    opt = AdamW(params, config)
    assert opt.decay == {"h.0.attn.c_attn.weight"}
    topt = torch.optim.AdamW([{"params": [tparams["h.0.attn.c_attn.weight"]], "weight_decay": 0.3},
                              {"params": [tparams["h.0.ln_1.weight"], tparams["wte"]], "weight_decay": 0.0}],
                             lr=1.0, betas=(0.8, 0.9), eps=1e-6)
    for step in range(5):
        lr = 0.01 * (step + 1)
        grads = {n: rng.standard_normal(p.shape).astype(np.float32) for n, p in params.items()}
        for n, t in tparams.items():
            t.grad = torch.tensor(grads[n])
        for group in topt.param_groups:
            group["lr"] = lr
        opt.step(grads, lr)
        topt.step()
        for n, p in params.items():
            assert p.dtype == np.float32
            np.testing.assert_allclose(p, tparams[n].detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=n)
    with pytest.raises(ValueError, match="no gradient"):
        opt.step({}, 0.1)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_ten_training_steps_match_torch(torch, name):
    """minichat (hand-written backward + AdamW) vs torch (autograd + torch.optim.AdamW) on the same weights and
    batches: warmup + cosine schedule, clipping that is active, decay on matrices only."""
    model_config = CONFIGS[name]
    config = TrainConfig(model=model_config, steps=10, warmup_steps=3, lr=3e-2, min_lr=3e-3, weight_decay=0.1,
                         grad_clip=0.5, seq_len=12)
    model = random_model(model_config, seed=3)
    tparams = {n: torch.tensor(p.copy(), requires_grad=True) for n, p in model.params.items()}
    groups = [{"params": [tparams[n] for n in tparams if decays(n, config)], "weight_decay": 0.1},
              {"params": [tparams[n] for n in tparams if not decays(n, config)], "weight_decay": 0.0}]
    topt = torch.optim.AdamW(groups, lr=config.lr, betas=(config.beta1, config.beta2), eps=config.eps)
    opt = AdamW(model.params, config)
    ours, theirs, clipped = [], [], 0
    for step in range(1, 11):
        ids, targets, mask = random_batch(model_config, 2, 12, seed=100 + step)
        loss, grads = loss_and_grads(model, ids, targets, mask)
        norm = clip_grad_norm(grads, config.grad_clip)
        clipped += norm > config.grad_clip
        # the schedule, written out independently: warmup 3 steps, then cosine from lr to min_lr over steps 4..10
        lr = 3e-2 * step / 3 if step <= 3 else 3e-3 + (3e-2 - 3e-3) * 0.5 * (1 + math.cos(math.pi * (step - 3) / 7))
        assert lr_at(step, config) == pytest.approx(lr)
        opt.step(grads, lr_at(step, config))
        ours.append(loss)
        topt.zero_grad()
        ref = torch_model_loss(torch, model_config, tparams, ids, targets, mask)
        ref.backward()
        torch.nn.utils.clip_grad_norm_(list(tparams.values()), config.grad_clip)
        for group in topt.param_groups:
            group["lr"] = lr
        topt.step()
        theirs.append(ref.item())
    assert clipped > 0, "clipping never engaged, so this test would not check it"
    np.testing.assert_allclose(ours, theirs, rtol=1e-4)
    assert ours[-1] < ours[0] - 0.1  # and it learned something (these batches repeat the same distribution)
    H, K, D = model_config.n_head, model_config.n_kv_head, model_config.head_dim
    for n, p in model.params.items():
        expected = tparams[n].detach().numpy()
        if n.endswith("c_attn.bias"):
            # The key bias adds q.b to every score of a row, which softmax ignores: its true gradient is 0, both
            # sides compute rounding noise, and Adam's m / sqrt(v) blows noise up to full-size steps. Skip it.
            p, expected = np.delete(p, np.s_[H * D:(H + K) * D]), np.delete(expected, np.s_[H * D:(H + K) * D])
        np.testing.assert_allclose(p, expected, rtol=1e-3, atol=1e-4, err_msg=n)


def test_state_dict_round_trip_continues_identically():
    rng = np.random.default_rng(2)
    make = lambda: {"a": rng.standard_normal((3, 3)).astype(np.float32)}  # noqa: E731
    params = make()
    twin = {"a": params["a"].copy()}
    config = TrainConfig(weight_decay=0.2)
    opt, grads_seq = AdamW(params, config), [make() for _ in range(6)]
    for g in grads_seq[:3]:
        opt.step(g, 0.1)
    other = AdamW(twin, config)
    twin["a"][...] = params["a"]
    other.load_state_dict({k: v.copy() for k, v in opt.state_dict().items()})
    assert other.t == 3
    for g in grads_seq[3:]:
        opt.step(g, 0.1)
        other.step(g, 0.1)
    np.testing.assert_array_equal(params["a"], twin["a"])
    with pytest.raises(ValueError, match="another model"):
        AdamW({"b": np.zeros(2, np.float32)}, config).load_state_dict(opt.state_dict())
