"""`minichat train` and `minichat eval`: the built-in model's two subcommands, as an argparse hook.

    minichat train [--preset builtin] [--out DIR] [--resume] [--steps N] [--seed N] [--install]
    minichat eval [--preset builtin|builtin-v1] [--model PATH] [-n N] [--seed N] [--probes DIR | --no-probes]

`add_parser(subparsers, load, positive)` registers both with `set_defaults(run=...)`, the convention of
minichat/cli.py (which passes its model loader and its whole-number argument type, so that every subcommand loads
models and reports bad numbers the same way). The work itself is `recipe.run_recipe` and `probes.cli_eval`.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any


def add_parser(sub: Any, load: Callable[[str | None], tuple[Any, Any]], positive: Callable[[str], int]) -> None:
    """Add `train` and `eval` to an argparse subparsers object."""
    from minichat.config import TRAIN_PRESETS

    p = sub.add_parser("train", help="train a chat model from scratch (synthetic corpus, own vocabulary)")
    # the names of recipe.RECIPES, written out so that --help needs no corpus import (a test holds them equal)
    recipes = sorted({*TRAIN_PRESETS, "builtin-v1", "builtin-v2", "builtin-v2w", "builtin-v2x", "builtin-v2y",
                      "builtin-v2z", "builtin-v2c", "builtin-v2u", "builtin-v2g", "builtin-v2zz", "builtin-v2zh",
                      "builtin-v2zp", "builtin-v1s", "builtin-v1p", "builtin-v1i", "builtin-v1k",
                      "builtin-v1ks", "builtin-v2wks", "builtin-v2wk", "builtin-v2xk", "builtin-v2yk", "builtin-v2zk",
                      "builtin-v2wkf", "builtin-v2xkf", "builtin-v2ykf", "builtin-v2zkf"})
    p.add_argument("--preset", default="builtin", choices=recipes,
                   help="builtin (= builtin-v2z): the built-in model, from nothing: builtin-v1, builtin-v2w on the "
                        "v2 corpus, then three rounds of fresh v2 conversations (v2x, v2y, v2z; about 100 minutes in "
                        "all on 2 cores, 2026-12-01, 40 + 18 + 3 x 14; about 150 on a host half as fast); "
                        "builtin-v1: the first stage alone; builtin-v2w: the first two; tiny: seconds")
    p.add_argument("--out", help="folder for the log, loss plot, checkpoints and the model (default runs/PRESET)")
    p.add_argument("--resume", action="store_true", help="continue from the folder's checkpoint")
    p.add_argument("--steps", type=positive, help="override the preset's number of optimiser steps")
    p.add_argument("--seed", type=int, help="override the preset's seed (initial weights, batch order)")
    p.add_argument("--install", action="store_true", help="make the result the built-in model (minichat/assets)")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="score a chat model on held-out synthetic conversations")
    p.add_argument("--preset", default="builtin", choices=["builtin", "builtin-v1", "builtin-v2"],
                   help="whose generated held-out set follows the probes: builtin (the v2 corpus, the built-in "
                        "model's; default; builtin-v2 is the same) or builtin-v1 (the v1 corpus)")
    p.add_argument("--model", help="the model to score (default: the built-in model)")
    p.add_argument("-n", type=positive, default=200, help="held-out probes per category")
    p.add_argument("--seed", type=int, default=None, help="held-out seed (default: the corpus's held-out seed)")
    p.add_argument("--probes", metavar="DIR", help="the hand-written probe set (default: tests/data/probes)")
    p.add_argument("--no-probes", action="store_true", help="skip the probe set; only the generated held-out set")
    p.set_defaults(run=lambda args: _eval(args, load))


def _train(args: argparse.Namespace) -> int:
    from minichat.builtin.recipe import run_recipe

    result = run_recipe(args.preset, args.out or f"runs/{args.preset}", resume=args.resume, steps=args.steps,
                        seed=args.seed, install=args.install)
    return 130 if result.interrupted else 0  # stopped by Ctrl-C, after saving a checkpoint


def _eval(args: argparse.Namespace, load: Callable[[str | None], tuple[Any, Any]]) -> int:
    from minichat.builtin.probes import cli_eval

    return cli_eval(args, load)  # the hand-written probe set (primary figure), then the generated held-out set
