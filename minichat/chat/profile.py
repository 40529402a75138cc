"""What a checkpoint says about chatting with it: is it chat-tuned, which template, which default system prompt.

Every chat model is trained with its own instructions in front of the conversation. SmolLM2-135M-Instruct, for
example, was tuned with "You are a helpful AI assistant named SmolLM, trained by Hugging Face" and answers
"Capital of France?" in broken French when it is given minichat's own instructions instead. So the chat starts from
the checkpoint's own default, found where the checkpoint keeps it:

    minichat checkpoint   config.json metadata "recipe" (written by `minichat train`) -> minichat's instructions;
                          "tool_listing" -> how its tools are listed ("full" JSON schemas unless "compact")
    GGUF file             metadata `tokenizer.chat_template` (a Jinja template)
    HF folder             tokenizer_config.json `chat_template` (a Jinja template, or a list of named templates)

A Jinja template is not executed (minichat renders ChatML itself, see template.py); the default system prompt is the
literal text it writes between `<|im_start|>system` and `<|im_end|>` when the conversation has no system message.

    >>> default_system_from_template("{{ '<|im_start|>system\\nYou are Smol.<|im_end|>\\n' }}")
    'You are Smol.'

What it leaves out: templates that compute the system prompt (dates, tool lists); those give no default.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from minichat.chat.context import DEFAULT_INSTRUCTIONS, LISTINGS
from minichat.chat.template import IM_END, IM_START, template_kind


@dataclass(frozen=True)
class ChatProfile:
    """How to chat with one checkpoint (`model_profile` reads it)."""

    template: str  # "chatml" (rendered by minichat), "other" (a non-ChatML template: ChatML used anyway), "none"
    instructions: str  # the default system prompt ("" = none)
    chat_tuned: bool  # trained to answer in turns (False: a plain text continuer such as GPT-2)
    origin: str  # where the instructions came from, for the trace and the CLI ("minichat built-in", "GGUF", ...)
    tool_listing: str = "full"  # the tools paragraph the model was trained on (chat.context.LISTINGS)

    def note(self) -> str:
        """One line for the terminal: which template and instructions this chat uses."""
        if self.template == "none":
            tpl = "the model has no chat template; using ChatML (<|im_start|>role ... <|im_end|>), replies may suffer"
        elif self.template == "other":
            tpl = "the model's chat template is not ChatML; using ChatML anyway, replies may suffer"
        else:
            tpl = "chat template ChatML"
        system = f"system prompt from {self.origin}" if self.instructions else "no default system prompt"
        return f"{tpl}; {system}"


def default_system_from_template(jinja: str | None) -> str:
    """The literal system prompt a ChatML Jinja template writes when the conversation has none ("" if none)."""
    if not jinja:
        return ""
    # The text sits inside a Jinja string literal; HF's JSON files may keep the newline as the two characters "\n".
    pattern = re.escape(IM_START) + r"system(?:\n|\\n)(?P<text>[^'\"{}]*?)" + re.escape(IM_END)
    m = re.search(pattern, jinja)
    return m.group("text").replace("\\n", "\n").strip() if m else ""


def _hf_template(folder: Path) -> str | None:
    try:
        doc = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    tpl = doc.get("chat_template") if isinstance(doc, dict) else None
    if isinstance(tpl, list):  # [{"name": "default", "template": "..."}, ...]
        named = {t.get("name"): t.get("template") for t in tpl if isinstance(t, dict)}
        tpl = named.get("default") or next(iter(named.values()), None)
    return tpl if isinstance(tpl, str) else None


def _minichat_metadata(folder: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("metadata", {}) if isinstance(doc, dict) and doc.get("format") == "minichat" else None


def profile_from_path(path: str | os.PathLike | None) -> ChatProfile:
    """Read the chat profile of the checkpoint at `path` (a .gguf file or a folder); None: an unknown model."""
    if path is None:
        return ChatProfile("none", "", False, "nowhere")
    p = Path(path)
    if p.is_file() and p.suffix != ".gguf" and p.name in ("config.json", "model.safetensors"):
        p = p.parent
    meta = _minichat_metadata(p) if p.is_dir() else None
    if meta is not None:  # minichat's own checkpoints: chat models carry the recipe that trained them
        chat = "recipe" in meta
        listing = meta.get("tool_listing", "full")
        if listing not in LISTINGS:
            raise ValueError(f"{p / 'config.json'}: metadata tool_listing must be one of {LISTINGS}, not {listing!r}")
        return ChatProfile("chatml" if chat else "none", DEFAULT_INSTRUCTIONS if chat else "", chat,
                           "minichat built-in" if chat else "nowhere", listing)
    if p.is_dir():
        jinja, origin = _hf_template(p), "tokenizer_config.json"
    else:
        from minichat.model.gguf_tokenizer import chat_template_from_gguf

        jinja, origin = chat_template_from_gguf(p), "the GGUF chat template"
    system = default_system_from_template(jinja)
    return ChatProfile(template_kind(jinja), system, jinja is not None, origin if system else "nowhere")


def model_profile(model: Any) -> ChatProfile:
    """The profile of a model returned by `load_model` (it remembers its `source`); unknown models get none."""
    return profile_from_path(getattr(model, "source", None))
