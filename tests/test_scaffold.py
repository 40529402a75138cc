"""Smeared keys as a scaffold (minichat/train/scaffold.py): the floor schedule by hand, the projection, removing the
smear (the same function to the schedule's last cap, and a model transformers then computes), the trainer's
after_step hook (called every step, resume still exact), and a recipe that trains with the scaffold and saves an
ordinary model."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import require_peer

from minichat.config import ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.train import train_model
from minichat.train.scaffold import TINY, hold_smear_floor, smear_floor, unsmear

SMEARED = ModelConfig.llama(vocab_size=64, n_ctx=32, n_embd=16, n_layer=2, n_head=4, n_kv_head=2, n_inner=24,
                            smear_keys=True)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.float64(x)))


def test_the_floor_caps_the_previous_keys_share_linearly():
    assert smear_floor(0, 8) == -np.inf  # cap 1: no floor
    assert smear_floor(4, 8) == pytest.approx(0.0)  # cap 1/2: logit 0
    assert smear_floor(6, 8) == pytest.approx(np.log(3.0))  # cap 1/4: (1 - a) = 1/4 <=> a = 3/4 <=> logit ln 3
    for step in range(1, 8):  # the previous key's share 1 - sigmoid(floor) is the cap 1 - step/8
        assert 1 - sigmoid(smear_floor(step, 8)) == pytest.approx(1 - step / 8)
    assert smear_floor(8, 8) == smear_floor(80, 8) == pytest.approx(np.log((1 - TINY) / TINY))
    for bad in (0, -3, 2.5, "8"):
        with pytest.raises(ValueError, match="whole number of steps"):
            smear_floor(1, bad)


def test_holding_the_floor_raises_only_smear_logits_below_it():
    params = init_params(SMEARED, np.random.default_rng(0))
    params["h.0.attn.smear"][:] = [-2.0, 1.5]
    params["h.1.attn.smear"][:] = [0.5, -0.1]
    before = {k: v.copy() for k, v in params.items()}
    assert hold_smear_floor(params, 0.25) == 2
    assert params["h.0.attn.smear"].tolist() == [0.25, 1.5] and params["h.1.attn.smear"].tolist() == [0.5, 0.25]
    assert params["h.0.attn.smear"].dtype == np.float32
    assert all(np.array_equal(v, before[k]) for k, v in params.items() if not k.endswith("smear"))
    assert hold_smear_floor(params, -np.inf) == 0


def test_unsmear_keeps_the_function_and_transformers_computes_the_result(tmp_path):
    params = init_params(SMEARED, np.random.default_rng(1), std=0.3)
    ids = np.random.default_rng(2).integers(0, 64, (2, 20))
    model = Transformer(SMEARED, params)
    with pytest.raises(ValueError, match="share of 0.5"):  # logits 0: half of every key is the previous one
        unsmear(model)
    hold_smear_floor(params, smear_floor(10, 10))
    plain = unsmear(model)
    assert not plain.config.smear_keys and not any(k.endswith("smear") for k in plain.params)
    assert plain.params["wte"] is params["wte"]  # shared, not copied
    smeared_logits = model.forward(ids)
    np.testing.assert_allclose(plain.forward(ids), smeared_logits, atol=2e-3)  # the previous key weighed 1e-4
    assert not np.array_equal(plain.forward(ids), smeared_logits)
    with pytest.raises(ValueError, match="does not smear"):
        unsmear(plain)
    torch = require_peer("torch")
    transformers = require_peer("transformers")
    from minichat.model.export import export_hf

    export_hf(plain, None, tmp_path)  # an ordinary Llama model now: exported, and computed by transformers
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = hf(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(ref, smeared_logits, atol=2e-3)


def test_after_step_is_called_every_step_and_resume_stays_exact(tmp_path):
    from minichat.config import TrainConfig
    from minichat.train import Batches, init_model

    config = TrainConfig(model=SMEARED, steps=8, batch_size=2, seq_len=16, lr=1e-2, min_lr=1e-3, warmup_steps=2,
                         log_every=4, checkpoint_every=4, eval_every=0)
    rows = np.random.default_rng(3).integers(0, 64, (40, 17))
    seen = []

    def hook(step, params):
        seen.append(step)
        hold_smear_floor(params, smear_floor(step, 6))

    def run(out, **kw):
        model = init_model(config)
        return model, train_model(model, Batches(rows, np.ones_like(rows), 2, 0), config, out, progress=None,
                                  after_step=hook, **kw)

    full, r_full = run(tmp_path / "full")
    assert seen == list(range(1, 9))
    assert all(float(1 - sigmoid(full.params[f"h.{i}.attn.smear"]).max()) <= TINY * 1.0001 for i in range(2))
    part, r1 = run(tmp_path / "part", until=4)
    again, r2 = run(tmp_path / "part", resume=True)
    assert r1.losses + r2.losses == r_full.losses
    assert all(np.array_equal(again.params[k], full.params[k]) for k in full.params)
    unsmear(full)  # the schedule has run: removable


def test_a_recipe_trains_with_the_scaffold_and_saves_an_ordinary_model(tmp_path, monkeypatch):
    from minichat.builtin import recipe as rec
    from minichat.model import load_model

    tiny = rec.RECIPES["tiny"]
    smeared = replace(tiny, train=replace(tiny.train, model=tiny.train.model.replace(smear_keys=True)))
    monkeypatch.setitem(rec.RECIPES, "tiny-scaffold", replace(smeared, unsmear_steps=2))
    lines = []
    rec.run_recipe("tiny-scaffold", tmp_path / "a", steps=3, progress=lines.append)
    model, _ = load_model(tmp_path / "a" / "model")
    assert not model.config.smear_keys and not any(k.endswith("smear") for k in model.params)
    assert not json.loads((tmp_path / "a" / "model" / "config.json").read_text())["model"].get("smear_keys", False)
    said = next(line for line in lines if line.startswith("smeared keys removed"))
    with_, without = (float(w.rstrip(",")) for w in said.split() if w[0].isdigit())
    assert abs(with_ - without) < 1e-3
    # the resumable checkpoint keeps the smeared model it trains
    assert json.loads((tmp_path / "a" / "checkpoint" / "config.json").read_text())["model"]["smear_keys"]
    monkeypatch.setitem(rec.RECIPES, "tiny-bad", replace(tiny, unsmear_steps=2))
    with pytest.raises(ValueError, match="needs a model with smeared keys"):
        rec.run_recipe("tiny-bad", tmp_path / "b", steps=3, progress=None)
    monkeypatch.setitem(rec.RECIPES, "tiny-long", replace(smeared, unsmear_steps=5))
    with pytest.raises(ValueError, match="1..3 steps"):
        rec.run_recipe("tiny-long", tmp_path / "c", steps=3, progress=None)


def test_the_smeared_paths_are_the_shipped_path_but_for_the_first_stage_the_smear_and_the_scaffold():
    from minichat.builtin import recipe as rec

    R = rec.RECIPES
    assert R["builtin-v1ks"].train.steps == 1200 and replace(R["builtin-v1ks"], train=replace(
        R["builtin-v1ks"].train, steps=3800)) == R["builtin-v1k"]
    scaffold = R["builtin-v2wks"]
    assert scaffold.start == "builtin-v1ks" and scaffold.unsmear_steps == 800 and scaffold.train.model.smear_keys
    assert replace(scaffold, unsmear_steps=0) == R["builtin-v2wk"]
    for k, prev in (("w", "1"), ("x", "w"), ("y", "x"), ("z", "y")):
        smeared = R[f"builtin-v2{k}k"]
        assert smeared.train.model.smear_keys and smeared.unsmear_steps == 0
        assert replace(smeared, start=R[f"builtin-v2{k}"].start, train=replace(
            smeared.train, model=smeared.train.model.replace(smear_keys=False))) == R[f"builtin-v2{k}"]
        assert smeared.start == ("builtin-v1ks" if k == "w" else f"builtin-v2{prev}k")
    for k, prev in (("w", "1"), ("x", "w"), ("y", "x"), ("z", "y")):  # the same path on the full-length first stage
        full = R[f"builtin-v2{k}kf"]
        assert full.start == ("builtin-v1k" if k == "w" else f"builtin-v2{prev}kf")
        assert replace(full, start=R[f"builtin-v2{k}k"].start) == R[f"builtin-v2{k}k"]
