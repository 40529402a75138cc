"""Paired comparison of two probe-set runs (minichat/builtin/probe_compare.py): the exact sign test against
hand-worked values and a brute-force count over every outcome, the discordant counts on hand-built runs, and
`bench/probes.py --compare` from the command line, bad input included."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minichat.builtin.probe_compare import compare, format_comparison, sign_test
from minichat.builtin.probes import METRICS, ProbeResult, summarize

REPO = Path(__file__).resolve().parent.parent


def test_sign_test_hand_worked():
    assert sign_test(0, 0) == 1.0  # no discordant probe: no evidence either way
    assert sign_test(5, 0) == 2 / 32  # all five one way: 2 * (1/2)^5
    assert sign_test(1, 1) == 1.0  # an even split (2 * 3/4 is capped at 1)
    assert sign_test(9, 1) == pytest.approx(2 * (1 + 10) / 1024)  # 0.0215
    assert sign_test(34, 20) == pytest.approx(0.0759, abs=5e-5)  # 54 discordant probes, 34 to 20
    with pytest.raises(ValueError, match="non-negative integers"):
        sign_test(-1, 3)
    with pytest.raises(ValueError, match="non-negative integers"):
        sign_test(2.0, 3)


@given(st.integers(0, 9), st.integers(0, 9))
def test_sign_test_equals_counting_every_outcome(a, b):
    """Enumerate all 2^n ways n fair coins can fall and count those at least as far from an even split as (a, b)."""
    n = a + b
    far = sum(abs(2 * sum(flips) - n) >= abs(a - b) for flips in itertools.product((0, 1), repeat=n))
    assert sign_test(a, b) == pytest.approx(float(Fraction(far, 2 ** n)), rel=1e-12)
    assert sign_test(a, b) == sign_test(b, a)


def _result(pid: str, category: str, **checks: bool) -> ProbeResult:
    return ProbeResult(pid, category, checks.get("ok", False), checks, "reply")


def test_compare_counts_the_probes_each_run_alone_passes():
    first = [_result("calc-1", "calculator", valid_args=True, answer=True, ok=True),
             _result("calc-2", "calculator", valid_args=True, answer=False),
             _result("calc-3", "calculator", valid_args=False, answer=False),
             _result("look-1", "lookalike", refused=True),
             _result("look-2", "lookalike", refused=False, ok=True)]
    second = [_result("calc-1", "calculator", valid_args=True, answer=False),
              _result("calc-2", "calculator", valid_args=False, answer=False),
              _result("calc-3", "calculator", valid_args=True, answer=True, ok=True),
              _result("look-1", "lookalike", refused=False, ok=True),
              _result("look-2", "lookalike", refused=False, ok=True)]
    table = compare(first, second)
    assert set(table) == set(METRICS)
    assert table["tool_right"] == {"n": 3, "first_only": 1, "second_only": 1, "p": 1.0}
    assert table["calculator_answers"] == {"n": 3, "first_only": 1, "second_only": 1, "p": 1.0}
    assert table["lookalike_refused"] == {"n": 2, "first_only": 1, "second_only": 0, "p": 1.0}
    assert table["lookalike_on_topic"] == {"n": 2, "first_only": 0, "second_only": 1, "p": 1.0}
    assert table["time_answers"] == {"n": 0, "first_only": 0, "second_only": 0, "p": 1.0}
    # the pairs agree with the two runs' own figures: first - second = (first only - second only) / n
    s1, s2 = summarize(first)["metrics"], summarize(second)["metrics"]
    for key in ("tool_right", "calculator_answers", "lookalike_refused", "lookalike_on_topic"):
        row = table[key]
        assert s1[key] - s2[key] == pytest.approx(100 * (row["first_only"] - row["second_only"]) / row["n"])
    # the JSON form (bench/probes.py --json) compares as the dataclasses do
    assert compare([r.__dict__ for r in first], [json.loads(json.dumps(r.__dict__)) for r in second]) == table
    text = format_comparison(table, ("old", "new"))
    # fewer look-alike refusals are better: the second run refused fewer, so it is the better one on that line
    assert [line.split()[-1] for line in text.splitlines() if line.startswith("lookalike_refused")] == ["new"]


def test_compare_refuses_runs_on_other_probes():
    one = [_result("calc-1", "calculator", ok=True)]
    with pytest.raises(ValueError, match="not on the same probes: 2 ids"):
        compare(one, [_result("calc-2", "calculator")])
    with pytest.raises(ValueError, match="same probe id twice"):
        compare(one + one, one)


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "bench" / "probes.py"), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=120)


def test_bench_compare_from_the_command_line(tmp_path):
    def run_file(name: str, answers: list[bool]) -> Path:
        rows = [_result(f"calc-{i}", "calculator", answer=a, ok=a).__dict__ for i, a in enumerate(answers)]
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"model": {"metrics": {}, "results": rows}}), encoding="utf-8")
        return path

    old, new = run_file("old", [False] * 10), run_file("new", [True] * 9 + [False])
    out = _bench("--compare", str(old), str(new))
    assert out.returncode == 0, out.stderr
    line = next(x for x in out.stdout.splitlines() if x.startswith("calculator_answers"))
    assert line.split() == ["calculator_answers", "10", "0", "9", "0.004", "new"]  # 2 / 2^9
    missing = _bench("--compare", str(old), str(tmp_path / "nope.json"))
    assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
    other = run_file("other", [True] * 3)
    short = _bench("--compare", str(old), str(other))
    assert short.returncode == 1 and "not on the same probes" in short.stderr and "Traceback" not in short.stderr
    (tmp_path / "bad.json").write_text('{"model": [1, 2]}', encoding="utf-8")
    bad = _bench("--compare", str(old), str(tmp_path / "bad.json"))
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
