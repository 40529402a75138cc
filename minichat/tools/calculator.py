"""The calculator tool: arithmetic evaluated over a parsed syntax tree, never with eval().

    calculate("(3 + 4) * 12")   -> 84          calculate("7 / 2")  -> 3.5        format_number(1 / 3) -> "0.3333"

`eval("__import__('os').system('rm -rf ~')")` would run that command; a "restricted" eval can be escaped through
attribute chains (().__class__.__base__.__subclasses__()). So the text is only *parsed* (`ast.parse`, which executes
nothing) and the tree is walked by hand, allowing exactly: int and float literals, + - * / // % ** and unary + -,
and parentheses. Any other node — a name, a call, an attribute, a lambda, a subscript, a string — is an error that
says what was found. Nothing from the expression is ever executed.

Hostile input is stopped before it costs anything, each with a CalculatorError that says what to do:

    long input          more than MAX_CHARS characters                  checked before parsing
    deep nesting        more than MAX_DEPTH open parentheses at once    checked before parsing (the parser's own
                                                                        recursion would be slow or crash)
    huge powers         9**9**9: the result's size is estimated from bits(base) * exponent before computing,
                        and refused beyond MAX_BITS (integers) or the float range
    huge results        any integer result beyond MAX_BITS bits (products of large numbers)

Division by zero keeps Python's ZeroDivisionError ("division by zero"): the built-in model was trained on the
chat's report of it, "error: ZeroDivisionError: division by zero". `×` and `÷` are read as `*` and `/`, and `^` as
`**` (nobody asking a chat assistant means XOR); thousands separators are dropped ("3,847 * 29"), since the model
copies numbers as the user wrote them.

What it leaves out: functions (sqrt, sin), constants (pi), variables, bitwise operators, comparisons, exact
fractions or decimals (floats round: 0.1 + 0.2 gives 0.30000000000000004, shown as 0.3).
"""
from __future__ import annotations

import ast
import math
import operator
import re
from typing import Callable

from minichat.errors import MinichatError

MAX_CHARS = 200  # what the built-in model's calculator expressions ever need, with a wide margin
MAX_DEPTH = 50  # nested parentheses
MAX_BITS = 4096  # about 1,233 decimal digits: an integer result larger than this is refused

_BINARY: dict[type, Callable] = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
                                 ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
                                 ast.Pow: operator.pow}
_UNARY: dict[type, Callable] = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_WHAT = {ast.Name: "a name", ast.Call: "a function call", ast.Attribute: "an attribute", ast.Lambda: "a lambda",
         ast.Subscript: "a subscript", ast.Compare: "a comparison", ast.BoolOp: "and/or", ast.IfExp: "if/else",
         ast.List: "a list", ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.JoinedStr: "an f-string",
         ast.NamedExpr: "an assignment", ast.GeneratorExp: "a generator", ast.ListComp: "a comprehension",
         ast.Starred: "a starred expression", ast.Await: "await", ast.Slice: "a slice"}
_OP_NAMES = {ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>",
             ast.MatMult: "@", ast.Invert: "~", ast.Not: "not"}


# a number written with thousands separators, "3,847" or "1,000,000" (a comma anywhere else stays a syntax error)
_THOUSANDS = re.compile(r"(?<![\d.,])\d{1,3}(?:,\d{3})+(?![\d,])")


class CalculatorError(MinichatError, ValueError):
    """The expression is not plain arithmetic, or would be too large to compute."""


ALLOWED = "numbers, + - * / // % ** ( ) and unary minus"


def _check_text(expression: str) -> str:
    if not isinstance(expression, str):
        raise CalculatorError(f"the expression must be a string, not {type(expression).__name__}")
    if len(expression) > MAX_CHARS:
        raise CalculatorError(f"the expression is {len(expression)} characters long; at most {MAX_CHARS} are "
                              f"allowed: split the calculation into steps")
    if not expression.strip():
        raise CalculatorError("the expression is empty; write one such as 12 * (3 + 4)")
    depth = 0
    for c in expression:  # the parser recurses per parenthesis: refuse deep nesting before calling it
        depth += (c == "(") - (c == ")")
        if depth > MAX_DEPTH:
            raise CalculatorError(f"more than {MAX_DEPTH} nested parentheses; simplify the expression")
    text = expression.replace("×", "*").replace("÷", "/").replace("^", "**").replace("−", "-")
    return _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)


def _bits(x: int | float) -> float:
    """log2 of |x| (0 for 0): how big a number is, without building anything big."""
    if x == 0:
        return 0.0
    return math.log2(abs(x))  # exact enough for integers of any size too


def _power(a: int | float, b: int | float) -> int | float:
    """a ** b, refused when the result would be too large, so 9**9**9 costs microseconds, not hours."""
    size = _bits(a) * abs(b)  # log2 of the result's magnitude (an upper bound for integers)
    if isinstance(a, int) and isinstance(b, int) and b >= 0:
        if abs(a) > 1 and size > MAX_BITS:
            raise CalculatorError(f"the power is too large to compute (about {int(size * 0.30103):,} digits); "
                                  f"at most {int(MAX_BITS * 0.30103):,} digits are allowed")
        return a**b
    if b > 0 and size > 1024 and abs(a) > 1:  # beyond the float range (about 1.8e308)
        raise CalculatorError("the power is too large to compute (beyond about 1e308)")
    try:
        out = a**b
    except ZeroDivisionError:
        raise ZeroDivisionError("division by zero") from None  # 0 ** -1, in the words the model knows
    except OverflowError:
        raise CalculatorError("the power is too large to compute (beyond about 1e308)") from None
    if isinstance(out, complex):
        raise CalculatorError("a negative number to a fractional power has no real result")
    return out


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant):
        if type(node.value) in (int, float):  # not bool (a subclass of int), str, complex, bytes or None
            if not math.isfinite(node.value):  # 1e999 parses as inf
                raise CalculatorError(f"the number {node.value} is beyond the float range (about 1e308)")
            return node.value
        raise CalculatorError(f"only {ALLOWED} are allowed, not the constant {node.value!r:.40}")
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            out = _power(a, b)
        else:
            try:
                out = _BINARY[type(node.op)](a, b)
            except OverflowError:
                raise CalculatorError("the result is too large for a floating-point number (beyond about "
                                      "1e308)") from None
        if isinstance(out, int) and out.bit_length() > MAX_BITS:
            raise CalculatorError(f"the result has more than {int(MAX_BITS * 0.30103):,} digits; too large")
        if isinstance(out, float) and not math.isfinite(out):  # float * and + overflow to inf without an error
            raise CalculatorError("the result is too large for a floating-point number (beyond about 1e308)")
        return out
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        op = _OP_NAMES.get(type(node.op), type(node.op).__name__)
        raise CalculatorError(f"the operator {op} is not allowed; only {ALLOWED}")
    what = _WHAT.get(type(node), type(node).__name__)
    if isinstance(node, (ast.Name, ast.Call, ast.Attribute)):  # show what was found (unparse only prints)
        shown = ast.unparse(node)
        what += f" ({shown if len(shown) <= 40 else shown[:37] + '...'})"
    raise CalculatorError(f"only {ALLOWED} are allowed, not {what}")


def calculate(expression: str) -> int | float:
    """Evaluate arithmetic safely (see the module docstring). Raises CalculatorError or ZeroDivisionError.

    >>> calculate("(3 + 4) * 12")
    84
    >>> calculate("2 ** -1")
    0.5
    """
    text = _check_text(expression)
    try:
        tree = ast.parse(text.strip(), mode="eval")  # parsing executes nothing
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise CalculatorError(f"not an arithmetic expression: {expression!r:.80}; use {ALLOWED}") from None
    return _evaluate(tree.body)


def format_number(x: int | float) -> str:
    """How results are written: integers exactly, other numbers rounded to at most 4 decimals (2.5, 0.3333), tiny or
    huge ones in scientific notation (1e-07, 1e+20). Short results are easier for a small model to copy.

    (The built-in model's corpus writes results this way; keep the two identical.)"""
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return str(x)
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    if abs(x) >= 1e15 or abs(x) < 1e-4:
        return f"{x:.6g}"
    return f"{x:.4f}".rstrip("0").rstrip(".")


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression (+ - * / ** and parentheses)."""
    return format_number(calculate(expression))
