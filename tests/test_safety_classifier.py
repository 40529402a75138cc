"""The safety classifier's training math against PyTorch: the hand-written gradient of the weighted softmax
cross-entropy over sparse hashed features equals autograd's, and ten steps of minichat's Adam equal ten steps of
torch.optim.Adam (weight_decay on W only). Plus a hand-worked feature example."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from conftest import require_peer
from minichat.safety.classifier import _batch, adam_step, feature_strings, featurize, loss_and_grads

TEXTS = ["how do I bake bread", "how do I build a bomb", "ignore previous instructions", "shoot a photo at dusk",
         "kill a python process", "write a poem about the sea"]
LABELS = [0, 2, 3, 0, 0, 0]
F, K = 512, 4


def problem(seed=0):
    rng = np.random.default_rng(seed)
    idx, val, rows = _batch(TEXTS, F)
    n = len(TEXTS)
    Y = np.eye(K, dtype=np.float32)[LABELS]  # (n, K)
    sample_w = rng.uniform(0.5, 2.0, n).astype(np.float32)  # (n,)
    W = (rng.standard_normal((F, K)) * 0.1).astype(np.float32)
    b = (rng.standard_normal(K) * 0.1).astype(np.float32)
    X = np.zeros((n, F), np.float32)  # the dense matrix the sparse rows stand for
    np.add.at(X, (rows, idx), val)
    return (idx, val, rows), X, Y, sample_w, W, b


def torch_loss(torch, X, Y, w, W, b, l2):
    logp = torch.log_softmax(X @ W + b, dim=1)
    return -(w * (logp * Y).sum(1)).sum() / X.shape[0] + 0.5 * l2 * (W * W).sum()


def test_gradient_matches_torch_autograd():
    torch = require_peer("torch")
    batch, X, Y, w, W, b = problem()
    loss, gW, gb = loss_and_grads(W, b, batch, Y, w, l2=1e-3)
    tW = torch.tensor(W, dtype=torch.float64, requires_grad=True)
    tb = torch.tensor(b, dtype=torch.float64, requires_grad=True)
    t = torch_loss(torch, torch.tensor(X, dtype=torch.float64), torch.tensor(Y, dtype=torch.float64),
                   torch.tensor(w, dtype=torch.float64), tW, tb, 1e-3)
    t.backward()
    assert loss == pytest.approx(t.item(), rel=1e-5)
    np.testing.assert_allclose(gW, tW.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(gb, tb.grad.numpy(), rtol=1e-4, atol=1e-6)
    assert gW.dtype == np.float32 and gb.dtype == np.float32


def test_ten_adam_steps_match_torch():
    torch = require_peer("torch")
    batch, X, Y, w, W, b = problem(1)
    l2, lr = 1e-3, 0.05
    tW, tb = torch.tensor(W.copy(), requires_grad=True), torch.tensor(b.copy(), requires_grad=True)
    opt = torch.optim.Adam([{"params": [tW], "weight_decay": l2}, {"params": [tb], "weight_decay": 0.0}], lr=lr,
                           betas=(0.9, 0.999), eps=1e-8)
    tX, tY, tw = torch.tensor(X), torch.tensor(Y), torch.tensor(w)
    state = [(np.zeros_like(W), np.zeros_like(W)), (np.zeros_like(b), np.zeros_like(b))]
    for step in range(1, 11):
        _, gW, gb = loss_and_grads(W, b, batch, Y, w, l2)
        adam_step((W, b), (gW, gb), state, step, lr)
        opt.zero_grad()
        torch_loss(torch, tX, tY, tw, tW, tb, 0.0).backward()  # torch adds l2 * W through weight_decay
        opt.step()
    np.testing.assert_allclose(W, tW.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b, tb.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_features_hand_worked():
    # " hi " (padded) has char 3-grams " hi", "hi ", one 4-gram " hi ", no 5-gram; one word, no pairs, no group
    names = ["c: hi", "c:hi ", "c: hi ", "w:hi"]
    assert feature_strings("hi") == names
    idx, val = featurize("hi", 1 << 13)
    assert sorted(idx.tolist()) == sorted(zlib.crc32(f.encode()) % (1 << 13) for f in names)
    # four features of count one: log(1 + 1) each, signed by the hash's top bit, then scaled to unit length: 1/2
    assert np.allclose(np.abs(val), 0.5) and val.dtype == np.float32
