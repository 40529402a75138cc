"""`minichat serve`: the web page's routes, and the process that puts model, keys, TLS and Uvicorn together.

    minichat serve --dev-cert                           https://127.0.0.1:8443, a fresh key printed (like Jupyter's)
    minichat serve --certfile C --keyfile K --keys F    the keys of `minichat keys add`, the user's certificate
    minichat serve --api-key KEY --host 0.0.0.0 ...     one key given by hand

Start-up refusals, each one line: a non-loopback --host when no key was configured (a random key printed on the
console is fine for one machine, not for a network); no TLS (`--no-tls` is allowed on loopback only, for local
experiments); a certificate/key pair that does not load; `openssl` missing for --dev-cert.

The page (minichat/server/static/) is three files, no build step: index.html, app.css, app.js. It is public: it holds
no data and asks for the key, which it keeps in the tab's sessionStorage and sends as a Bearer token.

What it leaves out: several worker processes (one process owns the model), graceful drain on shutdown.
"""
from __future__ import annotations

import argparse
import ipaddress
import secrets
import sys
from pathlib import Path

from minichat.errors import MinichatError

STATIC = Path(__file__).resolve().parent / "static"


def page_routes() -> list:
    from starlette.responses import FileResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    return [Route("/", index), Mount("/static", StaticFiles(directory=STATIC), name="static")]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def build_state(args: argparse.Namespace, model=None, tokenizer=None, log=print):
    """A ServerState from the command line's flags (model/tokenizer may be given, for tests)."""
    from minichat.chat.profile import model_profile
    from minichat.chat.session import Chat
    from minichat.chat.template import ChatTemplate
    from minichat.config import ChatConfig, SamplingConfig
    from minichat.server.app import ServerState
    from minichat.server.auth import Authenticator
    from minichat.server.keys import load, record_for
    from minichat.server.openai_api import Limits
    from minichat.server.worker import SerialEngine

    records, printed = [], None
    if args.api_key:
        records.append(record_for(args.api_key, args.user, args.rpm, key_id="key_cli"))
    if args.keys:
        load(args.keys)  # a malformed file fails at start-up, not at the first request
    auth = Authenticator(records, args.keys)
    if not auth.has_keys():
        if not is_loopback(args.host):
            raise MinichatError(f"refusing to listen on {args.host} without an API key: pass --api-key KEY or --keys "
                                f"FILE (`minichat keys add --user NAME`), or listen on 127.0.0.1")
        printed = "mc-" + secrets.token_urlsafe(32)
        auth.fixed.append(record_for(printed, args.user, args.rpm, key_id="key_console"))
        log(f"no API key configured: this run's key is {printed}")
    if model is None:
        from minichat.model.checkpoint import load_model

        model, tokenizer = load_model(args.model)
        if tokenizer is None:
            raise MinichatError(f"{args.model} has no tokenizer; minichat needs one beside the weights")
    template = ChatTemplate(tokenizer)
    guard = None
    if not args.no_safety:
        from minichat.safety import Guard

        guard = Guard()
    limits = Limits(max_body_bytes=args.max_body_bytes, default_max_tokens=args.max_tokens)
    profile = model_profile(model)
    model_id = args.model_id or (Path(args.model).stem if args.model else "minichat-builtin")

    def make_chat(user: str, conversation: str):  # runs in the engine's worker thread (SQLite stays in it)
        from minichat.memory import open_memory
        from minichat.tools import Toolbox, builtin_tools

        memory = open_memory(args.memory, user, temporary=args.memory is None)
        tools = Toolbox(builtin_tools(save_fact=memory.remember_tool)) if args.model is None else None
        # as `minichat chat` does: the built-in model's alignment is trained in, and the guard's policy text would
        # take a quarter of its 512-token window; other models get it in their system prompt
        config = ChatConfig(max_new_tokens=min(args.max_tokens, model.config.n_ctx - 1),
                            sampling=SamplingConfig(temperature=0.0), guard_instructions=args.model is not None)
        return Chat(model, tokenizer, config, tools=tools, safety=guard, memory=memory)

    if args.engine == "batching":  # continuous batching and the block prefix cache (scheduler.py, engine.py)
        from minichat.server.engine import BatchingEngine, EngineConfig

        engine = BatchingEngine(model, tokenizer, EngineConfig(max_slots=args.slots, max_queue=args.max_queue))
    else:  # one request at a time (worker.py)
        engine = SerialEngine(model, tokenizer, max_queue=args.max_queue)
    return ServerState(engine, template, model_id, int(model.config.n_ctx), profile.instructions, auth,
                       limits=limits, guard=guard, make_chat=make_chat, tool_listing=profile.tool_listing), printed


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from minichat.server.app import create_app
    except ImportError as e:
        raise MinichatError(f"`minichat serve` needs the serve extra ({e.name} is missing): "
                            f"pip install 'minichat[serve]'") from None
    from minichat.server import tls

    if args.dev_cert and (args.certfile or args.keyfile):
        raise MinichatError("give --dev-cert or --certfile/--keyfile, not both")
    if bool(args.certfile) != bool(args.keyfile):
        raise MinichatError("--certfile and --keyfile go together")
    if args.no_tls and not is_loopback(args.host):
        raise MinichatError(f"--no-tls sends keys in clear text: allowed on loopback only, not {args.host}")
    if not (args.dev_cert or args.certfile or args.no_tls):
        raise MinichatError("HTTPS needs a certificate: --certfile C --keyfile K, or --dev-cert for localhost "
                            "(or --no-tls on loopback)")
    cert = key = None
    if args.dev_cert:
        cert, key = tls.make_dev_cert(args.dev_cert_dir)
    elif args.certfile:
        cert, key = Path(args.certfile), Path(args.keyfile)
    if cert is not None:
        tls.check_pair(cert, key)
    state, _ = build_state(args)
    scheme = "http" if cert is None else "https"
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"{scheme}://{'localhost' if args.dev_cert else host}:{args.port}"
    print(f"minichat: serving {state.model_id} at {url} (web chat at {url}/, OpenAI API at {url}/v1)",
          file=sys.stderr)
    if args.dev_cert:
        print(tls.trust_hint(cert, url), file=sys.stderr)
    uvicorn.run(create_app(state), host=args.host, port=args.port, ssl_certfile=str(cert) if cert else None,
                ssl_keyfile=str(key) if key else None, log_level=args.log_level, timeout_graceful_shutdown=2,
                limit_concurrency=args.max_connections)
    state.engine.close()
    return 0


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a minichat checkpoint folder, a HF folder or a .gguf file (default: built-in)")
    p.add_argument("--model-id", help="the model's name in the API (default: minichat-builtin or the file's stem)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8443)
    p.add_argument("--certfile", help="TLS certificate (PEM)")
    p.add_argument("--keyfile", help="TLS private key (PEM)")
    p.add_argument("--dev-cert", action="store_true", help="make/reuse a self-signed localhost certificate (openssl)")
    p.add_argument("--dev-cert-dir", help="where --dev-cert keeps it (default ~/.minichat/dev-cert)")
    p.add_argument("--no-tls", action="store_true", help="plain HTTP (loopback only)")
    p.add_argument("--api-key", help="accept this key (>= 16 characters); see also --keys")
    p.add_argument("--keys", metavar="PATH", help="a keys file from `minichat keys add` (re-read when it changes)")
    p.add_argument("--user", default="default", help="the user id of --api-key (default 'default')")
    p.add_argument("--rpm", type=int, default=60, help="requests per minute for --api-key (default 60)")
    p.add_argument("--memory", metavar="PATH", help="memory database for the web chat (default: no memory)")
    p.add_argument("--no-safety", action="store_true", help="no input check or output filter (minichat.safety)")
    p.add_argument("--max-tokens", type=int, default=256, help="default reply length, clamped to the window")
    p.add_argument("--engine", choices=["batching", "serial"], default="batching",
                   help="batching: continuous batching with a prefix cache (default); serial: one request at a time")
    p.add_argument("--slots", type=int, default=8, help="requests decoded together by the batching engine")
    p.add_argument("--max-queue", type=int, default=16, help="requests waiting for the model before 503")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="larger bodies get 413")
    p.add_argument("--max-connections", type=int, default=256, help="concurrent connections before 503")
    p.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(run=cmd_serve)
