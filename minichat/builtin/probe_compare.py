"""Two runs of the probe set compared probe by probe: which probes one model gets right and the other does not.

A probe-set line is a share of 45-243 probes, so one run's figure carries a standard error of 3-7 points, and two
models' figures differ by that much by chance. But two runs on the *same* probes are paired: a probe both models get
right, or both wrong, says nothing about which is better; only the discordant ones do. With a probes right for the
first model only and b for the second only, if the two were equally good each discordant probe would be a fair coin,
so the chance of a split at least as uneven as (a, b) is the two-sided exact sign test on n = a + b:

    p = min(1, 2 * sum(C(n, k) for k in 0..min(a, b)) / 2**n)

(McNemar's test in its exact form; McNemar 1947, "Note on the sampling error of the difference between correlated
proportions or percentages"). `python bench/probes.py --compare A.json B.json` prints it for every target metric.

What it leaves out: a correction for reading eleven lines at once (at p < 0.05 about one line in twenty looks
different by chance, so one small p among eleven is a hint, not a finding), confidence intervals, and pairing runs
of different probe sets (the ids must match).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from minichat.builtin.probes import METRICS, TARGETS


def sign_test(a: int, b: int) -> float:
    """The two-sided exact sign test: the chance, under a fair coin, of a split of a + b at least as uneven as (a, b)."""
    if not all(isinstance(x, int) and x >= 0 for x in (a, b)):
        raise ValueError(f"counts must be non-negative integers, not {a!r} and {b!r}")
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a, b) + 1))  # exact integers: no rounding until the division
    return min(1.0, 2 * tail / 2 ** n)


def _passes(result: Any) -> tuple[str, str, Mapping[str, Any]]:
    """(id, category, checks) of a ProbeResult or of its JSON form (bench/probes.py --json)."""
    if isinstance(result, Mapping):
        return result["id"], result["category"], result["checks"]
    return result.id, result.category, result.checks


def compare(first: Sequence[Any], second: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """Per target metric: n probes counted, how many pass in `first` only and in `second` only, and the sign test's
    p. Both runs must hold the same probe ids (a ValueError names the difference)."""
    a = {i: (c, checks) for i, c, checks in map(_passes, first)}
    b = {i: (c, checks) for i, c, checks in map(_passes, second)}
    if len(a) != len(first) or len(b) != len(second):
        raise ValueError("a run holds the same probe id twice")
    if a.keys() != b.keys():
        only = sorted(a.keys() ^ b.keys())
        raise ValueError(f"the two runs are not on the same probes: {len(only)} ids in one only, e.g. {only[:5]}")
    out = {}
    for key, (cats, check) in METRICS.items():
        ids = [i for i, (c, _) in a.items() if c in cats]
        first_only = sum(bool(a[i][1].get(check)) and not b[i][1].get(check) for i in ids)
        second_only = sum(bool(b[i][1].get(check)) and not a[i][1].get(check) for i in ids)
        out[key] = {"n": len(ids), "first_only": first_only, "second_only": second_only,
                    "p": sign_test(first_only, second_only)}
    return out


def format_comparison(table: Mapping[str, Mapping[str, Any]], names: tuple[str, str] = ("A", "B")) -> str:
    """The comparison as plain text; `better` reads each line's direction from the targets (fewer look-alike
    refusals are better)."""
    width = max(12, *(len(n) for n in names))
    lines = [f"{'metric':<22} {'n':>4} {names[0] + ' only':>{width + 5}} {names[1] + ' only':>{width + 5}} "
             f"{'p (sign test)':>13}  better", "-" * (62 + 2 * width)]
    for key, row in table.items():
        lower_is_better = TARGETS.get(key, (">=", 0))[0] == "<="
        a, b = row["first_only"], row["second_only"]
        better = "" if a == b else names[(a > b) == lower_is_better]
        lines.append(f"{key:<22} {row['n']:>4} {a:>{width + 5}} {b:>{width + 5}} {row['p']:>13.3f}  {better}")
    chance = 1 - 0.95 ** len(table)  # were the lines independent; they share probes, so this is an upper bound
    lines.append(f"(a probe may count on several lines; with {len(table)} lines, a p below 0.05 somewhere turns up by "
                 f"chance in up to {chance:.0%} of comparisons)")
    return "\n".join(lines)
