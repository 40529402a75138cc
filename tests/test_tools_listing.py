"""The compact tool listing: hand-worked lines, and its token cost against the full (trained) listing, measured with
the built-in model's tokenizer in its 512-token window."""
from __future__ import annotations

import json
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


# -- a model trained on the compact listing gets it: corpus, checkpoint metadata, chat session, server -----------------

def _compact_folder(tmp_path, listing="compact"):
    """A minichat checkpoint folder's config.json that says its model was trained on `listing` (the profile reads
    only this file)."""
    (tmp_path / "config.json").write_text(json.dumps({"format": "minichat", "version": 1, "metadata": {
        "recipe": "builtin-v2c", "tool_listing": listing}}), encoding="utf-8")
    return tmp_path


def test_system_text_lists_tools_in_the_form_asked_for():
    compact = system_text("Be brief.", ["likes tea"], BUILTIN_TOOL_SCHEMAS, "compact")
    assert compact == ("Be brief.\n\n# What you remember about the user\n- likes tea\n\n"
                       + compact_listing(BUILTIN_TOOL_SCHEMAS))
    assert system_text("Be brief.", (), BUILTIN_TOOL_SCHEMAS) == "Be brief.\n\n" + tools_prompt(BUILTIN_TOOL_SCHEMAS)
    assert system_text("Be brief.", (), (), "compact") == "Be brief."  # no tools: no paragraph in either form
    with pytest.raises(ValueError, match="listing must be one of"):
        system_text("Be brief.", (), BUILTIN_TOOL_SCHEMAS, "short")
    _, tok = minichat.load_model(ASSETS)
    template, history = ChatTemplate(tok), [user("What is 3847 * 29?")]
    full, small = (assemble(template, history, instructions=DEFAULT_INSTRUCTIONS, tools=BUILTIN_TOOL_SCHEMAS,
                            context_window=1024, max_new_tokens=256, listing=f) for f in ("full", "compact"))
    assert small.messages[0].content == system_text(DEFAULT_INSTRUCTIONS, (), BUILTIN_TOOL_SCHEMAS, "compact")
    assert small.system_tokens == template.count(small.messages[0]) < full.system_tokens / 1.8


def test_the_chat_and_the_server_list_tools_as_the_checkpoint_says(tmp_path):
    from minichat.chat.profile import profile_from_path
    from minichat.chat.session import Chat
    from minichat.server.openai_api import build_prompt, parse_request
    from minichat.tools import Toolbox, builtin_tools
    from test_chat_session import TOK, ScriptedModel

    assert profile_from_path(ASSETS).tool_listing == "full"  # the shipped model's config.json says nothing: full
    assert profile_from_path(_compact_folder(tmp_path)).tool_listing == "compact"
    seen = []
    model = ScriptedModel(lambda prompt: seen.append(prompt) or "ok")
    model.source = str(tmp_path)  # what load_model sets: the profile is read from there
    chat = Chat(model, TOK, tools=Toolbox(builtin_tools()))
    assert chat.instructions == DEFAULT_INSTRUCTIONS and chat.profile.tool_listing == "compact"
    list(chat.send("hello"))
    assert "- calculator(expression: string)" in seen[0] and "<tools>" not in seen[0]
    req = parse_request({"model": "m", "messages": [{"role": "user", "content": "hi"}],
                         "tools": [{"type": "function", "function": BUILTIN_TOOL_SCHEMAS[0]}]})
    texts = {f: TOK.decode(list(build_prompt(req, ChatTemplate(TOK), 10_000, "be brief", listing=f).ids))
             for f in ("full", "compact")}
    assert "- calculator(expression: string)" in texts["compact"] and "<tools>" not in texts["compact"]
    assert "<tools>" in texts["full"]
    with pytest.raises(ValueError, match="tool_listing must be one of"):
        profile_from_path(_compact_folder(tmp_path, "tiny"))
