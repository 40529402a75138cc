"""The terminal chat: read a line, stream the reply, show the pipeline's events when asked (`--trace`).

It only consumes `Chat.send`'s event stream, like every other front end. Ctrl-C while a reply streams closes that
generator (the session keeps the partial reply, marked interrupted) and the chat goes on; Ctrl-C or Ctrl-D at the
prompt leaves. Slash commands manage the conversation:

    /reset  forget the conversation      /history  show it        /trace  toggle the event trace
    /save PATH  write it as JSON         /load PATH  read it back  /help  this list       /quit  leave

Piped input (standard input is not a terminal) is a conversation too: one turn per non-empty line, printing just
the replies (`run_lines`); `minichat chat --one-message` sends the whole input as one message instead (`run_once`).
"""
from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable
from typing import TextIO

from minichat.chat import events as ev
from minichat.chat.context import ContextTooLong
from minichat.chat.session import Chat
from minichat.errors import MinichatError

HELP = """commands: /reset  /history  /trace  /save PATH  /load PATH  /help  /quit
memory:   /memory (list)  /remember TEXT  /forget ID | /forget TEXT (every memory containing it) | /forget --all
Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt leaves."""


def memory_command(chat: Chat, cmd: str, arg: str) -> str:
    """/memory, /remember, /forget through the chat's memory (minichat.memory.StoreMemory); one line of answer."""
    memory = chat.memory
    if not hasattr(memory, "forget"):
        return "(no memory store in this chat)"
    if cmd == "/memory":
        if memory.store is None:
            return "(memory is off: this is a temporary chat)"
        return "\n".join(f"{e.id:>5}  {e.text}" for e in memory.store.list(memory.user)) or "(nothing remembered yet)"
    if not arg:
        return f"(usage: {cmd} TEXT)" if cmd == "/remember" else "(usage: /forget ID, /forget TEXT or /forget --all)"
    if cmd == "/remember":
        return f"(remembered #{memory.remember(arg).id}: {arg})"
    gone = memory.forget(arg)
    return f"(forgot {len(gone.ids)} memor{'y' if len(gone.ids) == 1 else 'ies'})"


def format_event(e: ev.Event) -> str | None:
    """One compact line per pipeline stage (None for the reply's own tokens)."""
    if isinstance(e, ev.SafetyVerdict):
        if e.policy == "none":
            return f"[safety {e.stage}] no guard configured: nothing checked"
        what = f" {e.category}" if e.category else ""
        return (f"[safety {e.stage}] {e.action}{what} (policy: {e.policy or '-'}"
                f"{f', score {e.score:.2f}' if e.score else ''}){' ' + e.reason if e.reason else ''}")
    if isinstance(e, ev.MemoryHits):
        if not e.configured:
            return "[memory] no memory configured: nothing retrieved"
        scores = e.scores if len(e.scores) == len(e.snippets) else (None,) * len(e.snippets)
        return (f"[memory] {len(e.snippets)} snippet(s){f' ({e.reason})' if e.reason else ''}"
                + "".join(f"\n           - {s}{f'  [score {x:.2f}]' if x is not None else ''}"
                          for s, x in zip(e.snippets, scores)))
    if isinstance(e, ev.ContextBuilt):
        window = (f" (window {e.window} − {e.window - e.budget} kept for the reply"
                  f"{f'; this reply may use {e.reply_room}' if e.reply_room > e.window - e.budget else ''})"
                  if e.window else "")
        line = (f"[context] {e.used}/{e.budget} tokens{window}: system {e.system_tokens}"
                f"{f' with {e.tools} tool schema(s)' if e.tools else ', no tools'}, kept {len(e.kept)} "
                f"message(s), dropped {len(e.dropped)}")
        return line + (f" ({e.dropped[0]['reason']})" if e.dropped else "")
    if isinstance(e, ev.Tokenized):
        return f"[tokens] prompt {e.prompt_tokens} = {e.cached_tokens} from the KV cache + {e.prefill_tokens} prefilled"
    if isinstance(e, ev.ToolCalled):
        return f"[tool call] {e.name}({json.dumps(e.arguments, ensure_ascii=False)})"
    if isinstance(e, ev.MemoryUpdated):
        return f"[memory updated] {e.text}" if e.ok else f"[memory not updated] {e.text}"
    if isinstance(e, ev.ToolResult):
        return f"[tool result] {e.name} {'->' if e.ok else 'failed:'} {e.content[:200]}"
    if isinstance(e, ev.Done):
        t = e.timings
        return (f"[done] {e.finish_reason}, {e.usage.get('completion_tokens', 0)} tokens, first token "
                f"{t.get('first_token', 0.0):.2f}s, generation {t.get('generate', 0.0):.2f}s")
    return None


def stream_reply(chat: Chat, text: str, out: TextIO, trace: bool,
                 extra: Callable[[ev.Event], str | None] | None = None) -> bool:
    """Send one message and print the reply as it streams (trace lines on their own lines). A message the chat
    cannot take (too long for the window) prints one line and leaves the conversation as it was; returns False."""
    events = chat.send(text)
    mid_line = False
    try:
        for e in events:
            if isinstance(e, ev.Token):
                out.write(e.text)
                mid_line = mid_line or bool(e.text)
                out.flush()
                continue
            line = format_event(e) if trace else None
            more = extra(e) if trace and extra is not None else None
            line = f"{line}\n{more}" if line and more else line
            if line:
                out.write(("\n" if mid_line else "") + f"\x1b[2m{line}\x1b[0m\n" if out.isatty() else
                          ("\n" if mid_line else "") + line + "\n")
                mid_line = False
    except KeyboardInterrupt:
        events.close()  # the session records the partial reply; the chat goes on
        out.write(" [interrupted]")
    except ContextTooLong as e:
        out.write(("\n" if mid_line else "") + f"(message not sent: {e}; the conversation is unchanged)\n")
        out.flush()
        return False
    out.write("\n")
    out.flush()
    return True


def run_once(chat: Chat, text: str, trace: bool = False, out: TextIO = sys.stdout,
             extra: Callable[[ev.Event], str | None] | None = None) -> int:
    """Non-interactive use with --one-message: the whole input is one message; print just the reply (and the trace
    if asked)."""
    if not text.strip():
        print("minichat: empty input", file=sys.stderr)
        return 2
    return 0 if stream_reply(chat, text.strip(), out, trace, extra) else 2


def run_lines(chat: Chat, lines: Iterable[str], trace: bool = False, out: TextIO = sys.stdout,
              extra: Callable[[ev.Event], str | None] | None = None) -> int:
    """Non-interactive use (piped input): each non-empty line is one turn, as if typed at the prompt, the history
    carrying over; print just the replies, one after another (and the trace if asked). Lines are read as they are
    answered, so a long file never sits in memory whole. A line the chat cannot take (too long for the window) prints
    the interactive loop's one-line message and the next line still runs. Slash commands are not read here: a line
    is always a message. Returns 0, or 2 when a line was refused or there was no message at all."""
    sent = refused = 0
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if stream_reply(chat, text, out, trace, extra):
            sent += 1
        else:
            refused += 1
    if not sent + refused:
        print("minichat: empty input: pipe one message per line", file=sys.stderr)
        return 2
    return 2 if refused else 0


def repl(chat: Chat, trace: bool = False, out: TextIO = sys.stdout,
         extra: Callable[[ev.Event], str | None] | None = None, intro: str = "") -> int:
    out.write(f"minichat — {intro + '. ' if intro else ''}Type a message, /help for commands.\n")
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line.strip():
            continue
        if line.startswith("/"):
            cmd, _, arg = line.strip().partition(" ")
            if cmd == "/quit":
                return 0
            elif cmd == "/reset":
                chat.reset()
                out.write("(conversation forgotten)\n")
            elif cmd == "/history":
                for m in chat.history:
                    calls = "".join(f" [calls {c.name}]" for c in m.tool_calls)
                    out.write(f"{m.role:>9}: {m.content}{calls}\n")
            elif cmd == "/trace":
                trace = not trace
                out.write(f"(trace {'on' if trace else 'off'})\n")
            elif cmd in ("/memory", "/remember", "/forget"):
                try:
                    out.write(memory_command(chat, cmd, arg.strip()) + "\n")
                except (MinichatError, ValueError, LookupError) as e:  # refused, not found, temporary chat
                    out.write(f"(could not {cmd[1:]}: {e})\n")
            elif cmd in ("/save", "/load") and arg:
                try:
                    chat.save(arg) if cmd == "/save" else chat.load(arg)
                    out.write(f"({'saved to' if cmd == '/save' else 'loaded'} {arg})\n")
                except (OSError, ValueError) as e:
                    out.write(f"(could not {cmd[1:]}: {e})\n")
            else:
                out.write(HELP + "\n")
            continue
        out.write("minichat> ")
        stream_reply(chat, line, out, trace, extra)
