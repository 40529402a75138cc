"""The safety classifier's training math against PyTorch: the hand-written gradient of the weighted softmax
cross-entropy over sparse hashed features equals autograd's, and ten steps of minichat's Adam equal ten steps of
torch.optim.Adam (weight_decay on W only). Plus a hand-worked feature example, and the slab-ordered sparse sums
(sparse.py) against np.bincount, the form the shipped weights were trained with, bit for bit."""
from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import require_peer
from minichat.safety.classifier import _batch, _softmax, adam_step, feature_strings, featurize, loss_and_grads
from minichat.safety.sparse import SegmentSums, SparseRows

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


def bincount_sums(seg, src, val, A, n_segments):  # the reference: one np.bincount per column, as first written
    # (.astype: with no entries at all bincount returns integer zeros; with any it sums in float64 already)
    return np.stack([np.bincount(seg, weights=A[src, k] * val, minlength=n_segments) for k in range(A.shape[1])],
                    axis=1).astype(np.float64)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


def test_segment_sums_keep_the_order_of_addition():
    # float64 addition is not associative: 1 + 1e16 rounds back to 1e16, so in entry order
    # (0 + 1) + 1e16 - 1e16 = 0, while 1e16 - 1e16 + 1 = 1. The sums must come out 0, as bincount's do.
    A = np.array([[1.0], [1e16], [-1e16]], np.float32)
    seg, src, val = np.zeros(3, np.int64), np.array([0, 1, 2]), np.ones(3, np.float32)
    assert bincount_sums(seg, src, val, A, 1)[0, 0] == 0.0
    assert SegmentSums(seg, src, val, 1)(A)[0, 0] == 0.0
    assert SegmentSums(seg[::-1], src[::-1], val, 1)(A)[0, 0] == 1.0  # the entries in reverse: another sum


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), nnz=st.integers(0, 400), n_segments=st.integers(1, 40),
       n_src=st.integers(1, 30), K=st.integers(1, 4), block=st.sampled_from([1, 7, 64, 1 << 18]))
def test_segment_sums_equal_bincount_bit_for_bit(seed, nnz, n_segments, n_src, K, block):
    import minichat.safety.sparse as sparse
    rng = np.random.default_rng(seed)
    seg = rng.integers(0, n_segments, nnz) if seed % 2 else np.sort(rng.integers(0, n_segments, nnz))  # any order
    src = rng.integers(0, n_src, nnz)
    val = (rng.standard_normal(nnz) * 10.0 ** rng.integers(-3, 4, nnz)).astype(np.float32)  # (nnz,)
    val[rng.random(nnz) < 0.1] = 0.0  # zero values, whose products are +0 or -0
    A = (rng.standard_normal((n_src, K)) * 10.0 ** rng.integers(-8, 9, (n_src, K))).astype(np.float32)
    before, sparse.BLOCK = sparse.BLOCK, block  # small blocks: slabs spread over many blocks
    try:
        got = SegmentSums(seg, src, val, n_segments)(A)
    finally:
        sparse.BLOCK = before
    assert same_bits(got, bincount_sums(seg, src, val, A, n_segments))


def test_training_products_equal_bincount_bit_for_bit():
    batch, X, Y, w, W, b = problem(2)
    idx, val, rows = batch
    rows_x = SparseRows(idx, val, rows, len(TEXTS), F)
    assert same_bits(rows_x.dot(W), bincount_sums(rows, idx, val, W, len(TEXTS)))
    G = np.random.default_rng(3).standard_normal((len(TEXTS), K)).astype(np.float32)
    assert same_bits(rows_x.tdot(G), bincount_sums(idx, rows, val, G, F))
    # the whole gradient as the shipped weights were trained: logits and X^T G through np.bincount
    P = _softmax(bincount_sums(rows, idx, val, W, len(TEXTS)).astype(np.float32) + b)  # (n, K)
    G = (P - Y) * w[:, None] / np.float32(len(TEXTS))  # (n, K)
    _, gW, gb = loss_and_grads(W, b, rows_x, Y, w, 1e-3)
    assert same_bits(gW, bincount_sums(idx, rows, val, G, F).astype(np.float32) + np.float32(1e-3) * W)
    assert np.array_equal(gb, G.sum(axis=0))
    with pytest.raises(ValueError, match="rows from"):
        rows_x.dot(W[:10])
