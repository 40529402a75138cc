"""The toolbox: the tools a chat may call, how a call is checked and run, and what comes back to the model.

A `Toolbox` implements the chat's `Tools` socket (minichat/chat/plugins.py) structurally:

    schemas()           the enabled tools' {"name", "description", "parameters"}, for the system prompt's listing
    run(name, args)     -> the result text; raises on failure, so the chat reports "error: <Type>: <message>"
    call(name, args)    -> ToolOutcome(content, ok, ...), never raises (what `run` is built on)

A call goes through these steps, and every failure becomes an error result the model reads, never a crash:

    1 the name        an unknown or disabled tool -> UnknownToolError naming the tools that exist
    2 the arguments   checked against the tool's JSON Schema (validate.py), then against the function's signature
                      -> ArgumentsError listing every problem ("$.expression: the required property ... is missing")
    3 the run         in a worker thread with a time limit -> ToolTimeoutError; any exception the tool raises is
                      captured as it is (ZeroDivisionError stays ZeroDivisionError: the model was trained on that)
    4 the result      str as is, None as "(no output)", anything else as JSON; longer than `max_chars` ->
                      cut, with "[... truncated: N more characters]" at the end, so one tool cannot flood the window

Per request (per `Chat.send`), `select(enabled=[...], tool_choice=...)` gives a toolbox restricted to some tools,
carrying `tool_choice` as data the session reads:

    "none"       no tool is listed and none may run              "auto"      the model decides (the default)
    "required"   the reply must start with a call                 "<name>"    the reply must be a call of that tool

The chat enforces "required" and a named tool by starting the assistant's turn with the call's opening,
`forced_prefix(...)` — `<tool_call>{"name": "calculator", "arguments":` — so the model writes only the arguments:
the simplest form of constrained decoding (the prefix is the constraint; everything after it is free). The prefix
stops before the space that follows "arguments":, because the built-in tokenizer writes that space as part of the
next token (' {"'); a prompt ending in a bare space would ask the model for a token split it never saw.

Results are untrusted data: a web page or a note may say "ignore your instructions". The chat template puts a result
in its own message with role "tool", opened and closed by the special tokens <|im_start|> / <|im_end|> that no text
can produce (the template encodes tool output as ordinary text), so a result can never close its message and speak
as the user or the system. `delimit=True` additionally wraps each result in <tool_result ... untrusted="true"> tags
(for a model instructed about them; the built-in model was trained on bare results, so it is off by default).

What it leaves out: killing a tool that overran its time (Python cannot stop a thread; it is abandoned, daemonic,
and its result dropped), running calls in parallel, per-tool permissions and rate limits.
"""
from __future__ import annotations

import inspect
import json
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minichat.errors import MinichatError
from minichat.tools.schema import Tool, ToolDefinitionError, tool
from minichat.tools.validate import ArgumentsError, errors

CHOICES = ("none", "auto", "required")
TRUNCATED = "\n[... truncated: {n} more characters]"
CALL_OPEN = "<tool_call>"  # as in minichat/chat/template.py (tools may not import chat)


class UnknownToolError(MinichatError, LookupError):
    """The model called a tool that does not exist or is not enabled for this request."""


class ToolTimeoutError(MinichatError, TimeoutError):
    """A tool ran longer than its time limit."""


class ToolCallError(MinichatError, ValueError):
    """The model's call could not be read at all (not JSON, no name): reported back so it can try again."""


@dataclass(frozen=True)
class ToolOutcome:
    """What one call produced. `content` is what the model sees: the result, or "error: <Type>: <message>"."""

    name: str
    content: str
    ok: bool
    error: BaseException | None = None  # the exception, when not ok
    seconds: float = 0.0
    truncated: bool = False


def error_text(e: BaseException) -> str:
    """The form a failure reaches the model in (the chat session's format, and the training corpus's)."""
    return f"error: {type(e).__name__}: {e}"


def parse_error_result(problems: Sequence[str]) -> str:
    """The tool-message text telling the model its call could not be read (from parse_assistant's `errors`), and
    how to write one. The chat sends it back and lets the model retry, up to `Toolbox.max_retries` times."""
    return error_text(ToolCallError("; ".join(problems) + '. Write the call as <tool_call>{"name": "<tool>", '
                                    '"arguments": {...}}</tool_call>'))


def cap(text: str, max_chars: int) -> tuple[str, bool]:
    """Cut `text` to `max_chars` characters plus a marker saying how much was cut: ("ab…", True)."""
    if len(text) <= max_chars:
        return text, False
    return text[:max_chars] + TRUNCATED.format(n=f"{len(text) - max_chars:,}"), True


def delimit(name: str, content: str, ok: bool = True) -> str:
    """Wrap a result as delimited untrusted data. A closing tag inside the content is defused (`</tool_result`
    -> `<\\/tool_result`), so the data cannot end its own wrapper early."""
    body = content.replace("</tool_result", "<\\/tool_result")
    status = "" if ok else ' error="true"'
    return f'<tool_result name="{name}" untrusted="true"{status}>\n{body}\n</tool_result>'


def forced_prefix(tool_choice: str, enabled: Sequence[str] = ()) -> str | None:
    """The text the assistant's turn starts with to enforce `tool_choice` (None: nothing is forced).

    >>> forced_prefix("calculator")
    '<tool_call>{"name": "calculator", "arguments":'
    >>> forced_prefix("required", ["calculator", "get_time"])
    '<tool_call>{"name": "'
    """
    if tool_choice in ("none", "auto"):
        return None
    if tool_choice == "required":
        if len(enabled) != 1:
            return CALL_OPEN + '{"name": "'  # the model picks the name, then the arguments
        tool_choice = enabled[0]
    return CALL_OPEN + json.dumps({"name": tool_choice})[:-1] + ', "arguments":'


def _normalise_choice(choice: Any) -> str:
    """Accept OpenAI's forms too: {"type": "function", "function": {"name": "x"}} -> "x"."""
    if isinstance(choice, Mapping):
        fn = choice.get("function")
        if isinstance(fn, Mapping) and isinstance(fn.get("name"), str):
            return fn["name"]
        if isinstance(choice.get("name"), str):
            return choice["name"]
        raise ValueError(f"tool_choice {choice!r} is not understood; use 'none', 'auto', 'required' or a tool name")
    if not isinstance(choice, str) or not choice:
        raise ValueError(f"tool_choice must be 'none', 'auto', 'required' or a tool name, not {choice!r}")
    return choice


def _run_with_timeout(fn: Callable[..., Any], kwargs: dict, seconds: float | None) -> Any:
    """fn(**kwargs) in a worker thread; raise ToolTimeoutError after `seconds`, or the exception fn raised."""
    if seconds is None:
        return fn(**kwargs)
    box: dict[str, Any] = {}

    def work():
        try:
            box["value"] = fn(**kwargs)
        except BaseException as e:  # noqa: BLE001 - everything is handed back to the caller's thread
            box["error"] = e

    worker = threading.Thread(target=work, name=f"tool-{getattr(fn, '__name__', 'call')}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ToolTimeoutError(f"the tool did not finish within {seconds:g} seconds and was abandoned")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return "(no output)"
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


class Toolbox:
    """A set of tools, and the rules of one request: which are enabled, and `tool_choice`."""

    def __init__(self, tools: Iterable[Tool | Callable] = (), *, timeout: float | None = 10.0,
                 max_chars: int = 2000, delimit: bool = False, max_retries: int = 2):
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout!r}")
        if not isinstance(max_chars, int) or max_chars < 1:
            raise ValueError(f"max_chars must be a positive integer, not {max_chars!r}")
        self._tools: dict[str, Tool] = {}
        self.timeout, self.max_chars, self.delimit, self.max_retries = timeout, max_chars, delimit, max_retries
        self.enabled: tuple[str, ...] | None = None  # None: every tool
        self.tool_choice = "auto"
        for t in tools:
            self.add(t)

    # -- the registry --------------------------------------------------------------------------------------------------

    def add(self, t: Tool | Callable, *, replace: bool = False) -> Tool:
        """Register a Tool (or a plain function, made one with @tool). A second tool of the same name is refused
        unless `replace`."""
        t = t if isinstance(t, Tool) else tool(t)
        if t.name in self._tools and not replace:
            raise ToolDefinitionError(f"a tool named {t.name!r} is already registered; rename one (MCP tools: "
                                      f"prefix the server's name) or pass replace=True")
        self._tools[t.name] = t
        return t

    def names(self) -> list[str]:
        """The tools callable in this request, in registration order."""
        if self.tool_choice == "none":
            return []
        names = [n for n in self._tools if self.enabled is None or n in self.enabled]
        if self.tool_choice not in CHOICES:
            return [self.tool_choice]
        return names

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def select(self, enabled: Iterable[str] | None = None, tool_choice: Any = "auto") -> "Toolbox":
        """A toolbox for one request: only `enabled` tools (None: all), and `tool_choice`. Shares the tools."""
        new = Toolbox.__new__(Toolbox)
        new.__dict__.update(self.__dict__)
        if enabled is not None:
            enabled = tuple(enabled)
            unknown = [n for n in enabled if n not in self._tools]
            if unknown:
                raise UnknownToolError(f"cannot enable {unknown}: no such tools; known: {list(self._tools)}")
        new.enabled = enabled
        choice = _normalise_choice(tool_choice)
        if choice not in CHOICES and choice not in (n for n in self._tools if enabled is None or n in enabled):
            raise ValueError(f"tool_choice {choice!r} is neither one of {CHOICES} nor an enabled tool "
                             f"({[n for n in self._tools if enabled is None or n in enabled]})")
        if choice == "required" and not [n for n in self._tools if enabled is None or n in enabled]:
            raise ValueError("tool_choice 'required' needs at least one enabled tool")
        new.tool_choice = choice
        return new

    def forced_prefix(self) -> str | None:
        """The assistant turn's forced opening for this request's tool_choice (see the module function)."""
        return forced_prefix(self.tool_choice, self.names())

    # -- the Tools socket ---------------------------------------------------------------------------------------------

    def schemas(self) -> list[dict]:
        return [self._tools[n].schema() for n in self.names()]

    def run(self, name: str, arguments: Mapping[str, Any]) -> str:
        """The result text of a successful call; a failed call raises its exception (the socket's contract)."""
        out = self.call(name, arguments)
        if not out.ok:
            raise out.error
        return out.content

    def call(self, name: str, arguments: Any) -> ToolOutcome:
        """Run one call through the four steps of the module docstring. Never raises (but KeyboardInterrupt)."""
        t0 = time.perf_counter()
        try:
            t = self._lookup(name)
            kwargs = self._check(t, arguments)
            value = _run_with_timeout(t.fn, kwargs, t.timeout if t.timeout is not None else self.timeout)
        except KeyboardInterrupt:
            raise
        except BaseException as e:  # noqa: BLE001 - a tool's failure is information for the model
            content, _ = cap(error_text(e), self.max_chars)
            if self.delimit:
                content = delimit(str(name), content, ok=False)
            return ToolOutcome(str(name), content, False, e, time.perf_counter() - t0)
        content, cut = cap(_as_text(value), self.max_chars)
        if self.delimit:
            content = delimit(t.name, content)
        return ToolOutcome(t.name, content, True, None, time.perf_counter() - t0, cut)

    def _lookup(self, name: Any) -> Tool:
        names = self.names()
        if not isinstance(name, str) or name not in names:
            if isinstance(name, str) and name in self._tools:
                raise UnknownToolError(f"the tool {name!r} is not enabled for this request; enabled: "
                                       f"{', '.join(names) or 'none'}")
            raise UnknownToolError(f"no tool named {name!r}; available: {', '.join(names) or 'none'}")
        return self._tools[name]

    @staticmethod
    def _check(t: Tool, arguments: Any) -> dict:
        if isinstance(arguments, str):  # arguments written as a JSON string (OpenAI's form)
            try:
                arguments = json.loads(arguments) if arguments.strip() else {}
            except json.JSONDecodeError as e:
                raise ArgumentsError(f"the arguments are not valid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(arguments, Mapping):
            raise ArgumentsError(f"the arguments must be a JSON object, not {type(arguments).__name__}")
        problems = errors(dict(arguments), t.parameters)
        if problems:
            raise ArgumentsError(f"invalid arguments for {t.name}: " + "; ".join(problems))
        try:
            inspect.signature(t.fn).bind(**arguments)
        except TypeError as e:
            accepted = ", ".join(t.parameters.get("properties", {})) or "no arguments"
            raise ArgumentsError(f"invalid arguments for {t.name} ({e}); it takes: {accepted}") from None
        except ValueError:
            pass  # a builtin without a readable signature: let the call itself decide
        return dict(arguments)
