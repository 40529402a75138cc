"""The chat layer: messages <-> ids (template), what the model sees (context), and the loop of one turn (session).

    template.py  ChatML rendering, tool-call parsing, injection-safe encoding
    context.py   assembly of system + memory + tools + history + latest, trimmed by token budget
    guards.py    the guard with its opt-in semantic classifier: the safety side handed a language model
"""
from minichat.chat.context import Context, ContextTooLong, assemble
from minichat.chat.template import ChatTemplate, Message, ToolCall, parse_assistant, render_text

__all__ = ["ChatTemplate", "Context", "ContextTooLong", "Message", "ToolCall", "assemble", "parse_assistant",
           "render_text"]
