"""Safety guardrails: policy, normalisation, rules, a small trained classifier, a streaming filter, injection scans.

    from minichat.safety import Guard
    guard = Guard()                       # default policy (default_policy.toml) and the shipped classifier
    guard.check_input("how do I kill a python process")    # Verdict(allowed=True, ...)
    f = guard.output_filter(); f.feed("mail me at ann@exa"); f.feed("mple.org. ok")   # ... '<EMAIL_1>. '

Only strings go in and out (docs/design.md §2): this package imports nothing of minichat but config and errors.
The opt-in semantic classifier (semantic.py) reads a language model's hidden states, so it is handed a `load()`
function instead of importing the model side: minichat.chat.guards.build_guard(policy, semantic=True) builds it.
See docs/safety.md for the threat model and the measured figures.
"""
from minichat.safety.classifier import load_classifier, train_classifier
from minichat.safety.cli import cli_check, cli_train
from minichat.safety.guard import Guard, Verdict, redact_pii, scan_injection
from minichat.safety.normalize import normalize
from minichat.safety.pii import iban_ok, luhn_ok
from minichat.safety.policy import CATEGORIES, LLAMA_GUARD, Policy, PolicyError, load_policy

__all__ = ["Guard", "Verdict", "scan_injection", "redact_pii", "normalize", "luhn_ok", "iban_ok", "train_classifier",
           "load_classifier", "cli_check", "cli_train", "Policy", "PolicyError", "load_policy", "CATEGORIES",
           "LLAMA_GUARD"]
