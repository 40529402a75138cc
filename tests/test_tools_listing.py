"""The compact tool listing: hand-worked lines, and its token cost against the full (trained) listing, measured with
the built-in model's tokenizer in its 512-token window."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

import minichat
from minichat.chat.context import DEFAULT_INSTRUCTIONS, ContextTooLong, assemble, system_text
from minichat.chat.template import ChatTemplate, Message, tools_prompt, user
from minichat.tools import BUILTIN_TOOL_SCHEMAS, tool
from minichat.tools.listing import compact_listing, signature, type_text

ASSETS = Path(minichat.__file__).resolve().parent / "assets" / "model"


def test_compact_lines_hand_worked():
    assert compact_listing(BUILTIN_TOOL_SCHEMAS).splitlines()[3:7] == [
        "- calculator(expression: string): Evaluate an arithmetic expression (+ - * / ** and parentheses).",
        "- get_time(): The current local date and time.",
        "- search_notes(query: string): Search the user's notes.",
        "- remember(fact: string): Save a fact about the user to long-term memory."]

    @tool
    def book(city: str, nights: int = 1, kind: Literal["hotel", "hostel"] = "hotel", tags: list[str] = (),
             note: str | None = None):
        """Book a room.

        Args:
            city: where
        """

    assert signature(book.schema(), details=True) == (
        '- book(city: string, nights?: integer=1, kind?: "hotel"|"hostel"="hotel", tags?: string[]=[], '
        'note?: string): Book a room. — city: where')
    assert type_text({"type": ["integer", "null"]}) == "integer|null" and type_text({}) == "any"


FIRST_WINDOW = 512  # the first built-in model's window, the problem docs/tools.md describes; the current one has 1,024


def test_token_cost_in_the_builtin_window():
    model, tok = minichat.load_model(ASSETS)
    template = ChatTemplate(tok)
    full = len(tok.encode_ordinary(tools_prompt(BUILTIN_TOOL_SCHEMAS)))
    compact = len(tok.encode_ordinary(compact_listing(BUILTIN_TOOL_SCHEMAS)))
    assert compact < full / 2  # docs/tools.md: 234 -> 108 tokens with the shipped tokenizer
    assert full > FIRST_WINDOW * 0.4  # "about half of the window", the problem this listing answers
    history = [user("What is 3847 * 29?")]
    with pytest.raises(ContextTooLong):  # full listing + a 256-token reply budget: not even this question fits
        assemble(template, history, instructions=DEFAULT_INSTRUCTIONS, tools=BUILTIN_TOOL_SCHEMAS,
                 context_window=FIRST_WINDOW, max_new_tokens=256)
    sys_compact = Message("system", system_text(DEFAULT_INSTRUCTIONS) + "\n\n" + compact_listing(BUILTIN_TOOL_SCHEMAS))
    used = template.count(sys_compact) + template.count(history[0]) + len(template.generation_prompt())
    assert used <= FIRST_WINDOW - 256  # the compact listing leaves room for the question and the reply
    # the current model's window holds the full listing, the question and a whole 256-token reply
    assert model.config.n_ctx == 1024
    ctx = assemble(template, history, instructions=DEFAULT_INSTRUCTIONS, tools=BUILTIN_TOOL_SCHEMAS,
                   context_window=model.config.n_ctx, max_new_tokens=256)
    assert ctx.messages[-1] == history[0]
