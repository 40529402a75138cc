"""minichat's server: the chat pipeline over HTTPS, with OpenAI's API (`minichat serve`, the `serve` extra).

    app.py         routes and the order of the checks (Starlette)
    openai_api.py  request checking and prompt building (OpenAI's Chat Completions)
    reply.py       the model's Steps -> text, tool-call pieces, the completion object (streamed or not)
    sse.py         server-sent events and the streamed chunks
    auth.py        Bearer keys in constant time, per-key rate limits
    keys.py        the keys file and `minichat keys add|list|revoke`
    tls.py         the user's certificate or a self-signed development one
    worker.py      the simple engine: one request at a time (scheduler.py / engine.py: continuous batching)
    web.py         the static web page's routes and the `minichat serve` process (Uvicorn)
    static/        the web chat with its pipeline inspector

Importing this package imports neither Starlette nor Uvicorn: `add_parser` registers the commands, and
`minichat serve` without the extra says in one line how to install it. docs/serving.md and docs/security.md tell
what exists and what the server promises.
"""
from __future__ import annotations


def add_parser(subparsers) -> None:
    """Register `minichat serve` and `minichat keys ...` (the convention of minichat/cli.py)."""
    from minichat.server.keys import add_keys_parser
    from minichat.server.web import add_serve_arguments

    p = subparsers.add_parser("serve", help="serve the chat over HTTPS: OpenAI's API, a web chat, the events")
    add_serve_arguments(p)
    add_keys_parser(subparsers)
