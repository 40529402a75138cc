"""The calculator: equal to Python's own arithmetic on hypothesis-generated expressions (Python evaluates the same
text as the reference), hostile input refused quickly with a clear message, and no code from the input ever run."""
from __future__ import annotations

import ast
import math
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO
from hypothesis import example, given, settings
from hypothesis import strategies as st

from minichat.tools.calculator import MAX_CHARS, MAX_DEPTH, CalculatorError, calculate, calculator, format_number

numbers = (st.integers(0, 10**6).map(str) | st.floats(0, 1e4, allow_nan=False, allow_infinity=False).map(repr)
           | st.sampled_from(["0", "1", "2", "0.5", "1e3", "1_000"]))


def _combine(parts):
    a, op, b = parts
    if op == "**":  # small integer exponents only: Python's answer is then finite and exact
        return f"({a}) ** {len(b) % 4}"
    return f"({a} {op} {b})" if len(a) + len(b) < 80 else a


expressions = st.recursive(numbers | numbers.map(lambda n: f"-{n}"),
                           lambda inner: st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%", "**"]),
                                                   inner).map(_combine), max_leaves=10)


def _overflows_on_the_way(expr: str) -> bool:
    """Whether Python's value of the expression or of any part of it is an infinity, each part evaluated by Python."""
    for node in ast.walk(ast.parse(expr, mode="eval").body):
        if not isinstance(node, ast.expr):
            continue  # an operator such as ast.Add, not a value
        try:
            value = eval(compile(ast.Expression(node), "<part>", "eval"), {"__builtins__": {}})
        except ArithmeticError:
            continue  # a division by zero or an OverflowError inside is the other branches' business
        if isinstance(value, float) and not math.isfinite(value):
            return True
    return False


@settings(max_examples=800, deadline=None)
@given(expressions)
@example("(0 / (1 / 5e-324))")  # found by CI: Python's answer is 0.0, reached through an infinity
def test_equals_python_arithmetic(expr):
    try:
        want = eval(expr, {"__builtins__": {}})  # the reference: Python on our own generated arithmetic only
    except ZeroDivisionError:
        with pytest.raises(ZeroDivisionError):
            calculate(expr)
        return
    except OverflowError:
        with pytest.raises(CalculatorError, match="too large"):
            calculate(expr)
        return
    if _overflows_on_the_way(expr):  # Python meets inf (perhaps only inside: 0 / (1 / 5e-324)); the calculator refuses
        with pytest.raises(CalculatorError, match="too large"):
            calculate(expr)
        return
    if len(expr) > MAX_CHARS:
        with pytest.raises(CalculatorError, match="characters long"):
            calculate(expr)
        return
    got = calculate(expr)
    assert got == want and type(got) is type(want), expr


@pytest.mark.parametrize("expr,result", [
    ("347 * 29", "10063"), ("(3 + 4) * 12", "84"), ("7 / 2", "3.5"), ("10 / 4", "2.5"), ("1 / 3", "0.3333"),
    ("2 ** 10", "1024"), ("2 ^ 10", "1024"), ("6 × 7", "42"), ("84 ÷ 4", "21"), ("−5 + 2", "-3"),
    ("17 // 5", "3"), ("17 % 5", "2"), ("-2 ** 2", "-4"), ("0.1 + 0.2", "0.3"), ("1e20 * 10", "1e+21"),
    ("1 / 10 ** 8", "1e-08"), ("3,847 * 29", "111563"), ("1,000,000 / 8", "125000"), ("3 ** 2 ** 2", "81"), ("2 ** -1", "0.5"), ("4500 * 13 / 100", "585"),
])
def test_hand_worked_results(expr, result):
    assert calculator(expr) == result


def test_division_by_zero_keeps_the_trained_message():
    with pytest.raises(ZeroDivisionError, match="^division by zero$"):
        calculate("1234 / 0")
    with pytest.raises(ZeroDivisionError, match="^division by zero$"):
        calculate("0 ** -1")


HOSTILE = {
    "9**9**9": "power is too large",
    "(9**9)**(9**9)": "power is too large",
    "10 ** 5000": "power is too large",
    "2.5 ** 100000": "too large",
    "(2**4000) * (2**4000)": "more than",
    "1e308 * 10": "too large",
    "1e999": "beyond the float range",
    "(-8) ** 0.5": "no real result",
    "(" * 10_000 + "1" + ")" * 10_000: "characters long",
    "(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1): "nested parentheses",
    "1+" * 5000 + "1": "characters long",
    "__import__('os').system('echo pwned')": r"function call \(__import__",
    "().__class__.__base__.__subclasses__()": "not a function call|not an attribute",
    "(1).real": "an attribute",
    "lambda: 1": "a lambda",
    "x + 1": r"a name \(x\)",
    "open('/etc/passwd').read()": "not a function call|not an attribute",
    "[1, 2][0]": "a subscript",
    "'a' * 3": "the constant 'a'",
    "True + 1": "the constant True",
    "1j * 2": "the constant 1j",
    "1 < 2": "a comparison",
    "1 << 100": "the operator <<",
    "~5": "the operator ~",
    "1; 2": "not an arithmetic expression",
    "import os": "not an arithmetic expression",
    "": "empty",
    "(x := 3)": "an assignment",
    "1,5 + 2": "a tuple",  # a decimal comma is not a thousands separator: refused, not misread
    "12,3456 * 2": "a tuple",
}


@pytest.mark.parametrize("expr", list(HOSTILE), ids=[f"{e[:25]}" for e in HOSTILE])
def test_hostile_input_is_refused_quickly(expr):
    t = time.perf_counter()
    with pytest.raises(CalculatorError, match=HOSTILE[expr]):
        calculate(expr)
    # not a benchmark (bench/tools.py measures the milliseconds): a guard against anything that would hang
    assert time.perf_counter() - t < 0.5
    with pytest.raises(CalculatorError):
        calculate(123)  # not a string


def test_no_code_from_the_input_is_ever_executed(tmp_path):
    """A subprocess with an audit hook counts every exec/eval, os.system, subprocess and file-open event while the
    hostile expressions are handled (CPython raises an audit event for each)."""
    marker = tmp_path / "pwned"
    code = textwrap.dedent(f"""
        import sys
        from minichat.tools.calculator import calculate
        exprs = {list(HOSTILE) + [f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')"]!r}
        seen = []
        def hook(event, args):
            if event in ("exec", "os.system", "subprocess.Popen", "os.exec", "os.posix_spawn", "open"):
                seen.append(event)
        sys.addaudithook(hook)
        for e in exprs:
            try:
                calculate(e)
            except Exception:
                pass
        print(len(seen), seen[:5])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[0] == "0", out.stdout
    assert not marker.exists()


def test_format_number():
    assert [format_number(x) for x in (42, 2.0, 2.5, 1 / 3, 1e-7, 1e20, -0.25, float("inf"))] == [
        "42", "2", "2.5", "0.3333", "1e-07", "1e+20", "-0.25", "inf"]
