"""The safety policy: which categories exist, how they map onto Llama Guard 3's codes, and what to do with each.

Categories follow the OpenAI moderation taxonomy (harassment, hate, self-harm, sexual, sexual/minors, violence,
illicit, illicit/violent), folded to one name each (the sub-labels such as "self-harm/intent" are kept in
`OPENAI_LABELS` for reference), plus four the moderation API does not have: misinformation (defamation and election
disinformation), injection (prompt injection and jailbreaks), personal_data and secrets. Each category carries the
Llama Guard 3 hazard codes (S1-S14, Inan et al. 2023 / the Llama Guard 3 model card) that cover it, so a verdict can
be compared with a Llama Guard one. Codes with no category here: S6 specialised advice and S8 intellectual property
(allowed; the built-in model gives no such advice anyway).

A policy is a small TOML file (read with `tomllib`): one table per category with an `action` (allow, warn, redact,
refuse) and optionally a `threshold`, plus `[classifier] threshold` (and `semantic = true` to switch on the
semantic classifier, with its own `semantic_threshold`). `default_policy.toml` beside this module is the
documented default; a deployment's file only lists what it changes.

    >>> load_policy().action("hate")
    'refuse'

What it leaves out: per-user or per-tool policies, and severity levels within a category.
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from minichat.errors import MinichatError

DEFAULT_POLICY = Path(__file__).with_name("default_policy.toml")
ACTIONS = ("allow", "warn", "redact", "refuse")

# category -> Llama Guard 3 codes: S1 violent crimes, S2 non-violent crimes, S3 sex-related crimes, S4 child sexual
# exploitation, S5 defamation, S6 specialised advice, S7 privacy, S8 intellectual property, S9 indiscriminate weapons,
# S10 hate, S11 suicide and self-harm, S12 sexual content, S13 elections, S14 code interpreter abuse.
LLAMA_GUARD = {
    "harassment": ("S10",),  # Llama Guard has no harassment code; S10 (hate) is the nearest, threats go to S1
    "hate": ("S10",),
    "self_harm": ("S11",),
    "sexual": ("S12", "S3"),
    "sexual_minors": ("S4",),
    "violence": ("S1",),
    "illicit": ("S2", "S14"),  # S14: malware and intrusion requests
    "illicit_violent": ("S9", "S1"),
    "misinformation": ("S5", "S13"),
    "injection": (),  # outside Llama Guard's taxonomy (Meta covers it with a separate model, Prompt Guard)
    "personal_data": ("S7",),
    "secrets": ("S7",),
}
OPENAI_LABELS = {
    "harassment": ("harassment", "harassment/threatening"),
    "hate": ("hate", "hate/threatening"),
    "self_harm": ("self-harm", "self-harm/intent", "self-harm/instructions"),
    "sexual": ("sexual",),
    "sexual_minors": ("sexual/minors",),
    "violence": ("violence", "violence/graphic"),
    "illicit": ("illicit",),
    "illicit_violent": ("illicit/violent",),
}
CATEGORIES = tuple(LLAMA_GUARD)
# The classes the input classifier predicts: "benign" plus every category a message can be about. personal_data and
# secrets are found by the PII detectors, not learned.
CLASSES = ("benign",) + tuple(c for c in CATEGORIES if c not in ("personal_data", "secrets"))
# Categories no policy file may relax: the guard refuses them whatever the file says.
FIXED = {"sexual_minors": "refuse"}


class PolicyError(MinichatError, ValueError):
    """A policy file that cannot be read, or names an unknown category or action."""


@dataclass(frozen=True)
class Policy:
    """What to do per category. Build with `load_policy(path)`; the default needs no file of yours."""

    actions: dict[str, str]  # category -> allow | warn | redact | refuse
    thresholds: dict[str, float] = field(default_factory=dict)  # category -> classifier threshold (optional)
    threshold: float = 0.5  # the classifier's default threshold on P(harmful)
    semantic: bool = False  # also run the semantic classifier (semantic.py: a probe on SmolLM2's hidden states)
    semantic_threshold: float = 0.525  # the threshold on the combined score when the semantic classifier runs
    name: str = "default"  # the file's stem, shown in verdicts as "<name>:<category>"

    def action(self, category: str) -> str:
        if category not in self.actions:
            raise PolicyError(f"unknown safety category {category!r}; known: {', '.join(CATEGORIES)}")
        return self.actions[category]

    def threshold_for(self, category: str) -> float:
        return self.thresholds.get(category, self.threshold)

    def rule(self, category: str) -> str:
        """The policy rule a verdict names, e.g. 'default:hate'."""
        return f"{self.name}:{category}"


def _read(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise PolicyError(f"cannot read the safety policy {path}: {e.strerror}; pass an existing TOML file") from None
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"the safety policy {path} is not valid TOML ({e}); fix the file") from None


def load_policy(path: str | Path | None = None) -> Policy:
    """The default policy, overridden table by table by the TOML file at `path` (if given)."""
    tables = _read(DEFAULT_POLICY)
    name = "default"
    if path is not None:
        path = Path(path)
        for key, table in _read(path).items():
            if key != "classifier" and key not in CATEGORIES:
                raise PolicyError(f"{path}: unknown category [{key}]; known: classifier, {', '.join(CATEGORIES)}")
            if not isinstance(table, dict):
                raise PolicyError(f"{path}: [{key}] must be a table, e.g. [{key}] action = \"refuse\"")
            tables[key] = tables.get(key, {}) | table
        name = path.stem
    actions, thresholds = {}, {}
    for cat in CATEGORIES:
        table = tables.get(cat, {})
        action = table.get("action", "refuse")
        if action not in ACTIONS:
            raise PolicyError(f"policy {name}: [{cat}] action = {action!r}; use one of {', '.join(ACTIONS)}")
        actions[cat] = FIXED.get(cat, action)
        if "threshold" in table:
            thresholds[cat] = _threshold(table["threshold"], f"[{cat}]", name)
    table = tables.get("classifier", {})
    threshold = _threshold(table.get("threshold", 0.5), "[classifier]", name)
    semantic = table.get("semantic", False)
    if not isinstance(semantic, bool):
        raise PolicyError(f"policy {name}: [classifier] semantic = {semantic!r}; use true or false")
    semantic_threshold = _threshold(table.get("semantic_threshold", 0.525), "[classifier] semantic_", name)
    return Policy(actions, thresholds, threshold, semantic, semantic_threshold, name)


def _threshold(value: object, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise PolicyError(f"policy {name}: {where} threshold = {value!r}; use a number between 0 and 1")
    return float(value)
