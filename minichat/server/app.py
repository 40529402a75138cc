"""The HTTP application: routes, the order of the checks, and the streams (Starlette; Uvicorn runs it: web.py).

    GET  /                         the web chat (static, public: it holds no data and asks for the key)
    GET  /health                   liveness and queue figures (public)
    GET  /v1/models                the one model served
    POST /v1/chat/completions      OpenAI's Chat Completions, streamed (SSE) or not (openai_api.py, sse.py)
    POST /v1/minichat/events       minichat's extension: one chat turn through the whole pipeline (safety, memory,
                                   context, tools), streaming each `Event.to_json()` as an SSE data line

Each API request passes these checks in this order, cheapest and least trusting first; the first failure answers in
OpenAI's error shape and nothing after it runs:

    1 the key          Authorization: Bearer KEY -> 401 (before a single body byte is read)
    2 the rate         the key's token bucket -> 429 + Retry-After
    3 the body         Content-Type application/json -> 415; over the size limit -> 413 (Content-Length, or counted
                       while reading a chunked body); not UTF-8 JSON -> 400
    4 the fields       openai_api.parse_request -> 400 naming the field in `param`; an unknown model -> 404
    5 the window       the prompt must fit the model's context -> 400 context_length_exceeded; max_tokens clamped
    6 the queue        the engine's queue is full -> 503 + Retry-After

A stream waits for its first item before answering, so an error found then still gets its status code; later
errors go into the stream as `data: {"error": ...}`. A client that goes away is noticed at once (a task listens for
`http.disconnect`, while it waits in the queue, while a non-streaming answer is made, while a stream is sent) and
its generation is cancelled. Any unexpected exception becomes a 500 without a traceback, and
the server goes on serving.
"""
from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from minichat.server import sse
from minichat.server.auth import Authenticator, RateLimiter
from minichat.server.keys import KeyRecord
from minichat.server.openai_api import ApiError, Limits, bad, build_prompt, parse_request
from minichat.server.reply import ReplyAssembler, completion, new_completion_id, usage
from minichat.server.worker import EngineBusy, GenerationRequest

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
CONVERSATION = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass
class ServerState:
    """Everything the routes share. `make_chat(user, conversation)` builds a Chat for the events route (it runs in
    the engine's worker, where the model and each user's memory store are used)."""

    engine: Any
    template: Any  # minichat.chat.template.ChatTemplate of the served model
    model_id: str
    n_ctx: int
    instructions: str  # the model's own system prompt, used when a request brings none
    auth: Authenticator
    limiter: RateLimiter = field(default_factory=RateLimiter)
    limits: Limits = field(default_factory=Limits)
    guard: Any = None  # minichat.safety.Guard or None: input check and output filter on the OpenAI route
    make_chat: Callable[[str, str], Any] | None = None
    max_sessions: int = 256  # chats kept in memory for the events route (least recently used dropped)
    max_sessions_per_user: int = 8  # a user's new conversation first pushes out that user's own oldest one
    sessions: OrderedDict = field(default_factory=OrderedDict)
    tool_listing: str = "full"  # how the served model was trained to see tools (ChatProfile.tool_listing)


class AsciiJSON(JSONResponse):
    """JSON with every non-ASCII character escaped: an error message quoting any input can always be encoded."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


def error_response(e: ApiError) -> JSONResponse:
    return AsciiJSON(e.body(), status_code=e.status, headers=e.headers)


class CancellingStream(StreamingResponse):
    """A StreamingResponse that always listens for `http.disconnect` while it streams (Starlette only does so for
    ASGI < 2.4; otherwise a gone client is noticed at the next write, which may be a whole prefill away)."""

    async def __call__(self, scope, receive, send) -> None:
        async with anyio.create_task_group() as tg:
            async def stream() -> None:
                try:
                    await self.stream_response(send)
                except OSError:
                    pass  # the client went away mid-write
                tg.cancel_scope.cancel()

            async def listen() -> None:
                await self.listen_for_disconnect(receive)
                tg.cancel_scope.cancel()

            tg.start_soon(stream)
            tg.start_soon(listen)


# -- the checks ------------------------------------------------------------------------------------------------------

def authorize(request: Request) -> KeyRecord:
    state: ServerState = request.app.state.minichat
    key = state.auth.check(request.headers.get("authorization"))
    state.limiter.take(key)
    return key


async def read_json(request: Request, limit: int) -> Any:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        raise ApiError(415, f"Content-Type must be application/json, not {ctype or 'missing'!r}",
                       code="unsupported_media_type")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413, f"the request body is larger than the limit of {limit} bytes", code="request_too_large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is larger than the limit of {limit} bytes",
                           code="request_too_large")
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise bad(None, f"the request body is not valid JSON: {e}", "invalid_json") from None
    try:  # JSON may escape a lone UTF-16 surrogate ("\ud800"): valid JSON, but no text can hold it
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise bad(None, "the request body holds a lone surrogate escape (\\ud800-\\udfff), which is not a "
                        "character; send valid Unicode", "invalid_json") from None
    return value


def busy(e: EngineBusy) -> ApiError:
    return ApiError(503, str(e), type="server_error", code="server_overloaded", headers={"Retry-After": "2"})


class ClientGone(Exception):
    """The client disconnected before the answer was sent."""


async def unless_gone(request: Request, gen, work):
    """Run `work()` while listening for the client to disconnect (the body has been read, so the only message left
    is http.disconnect); if it does, cancel the generation and raise ClientGone. Covers the wait in the queue and
    the whole of a non-streaming answer; streams have CancellingStream."""
    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    working, watching = asyncio.ensure_future(work()), asyncio.ensure_future(watch())
    try:
        await asyncio.wait({working, watching}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, watching):
            if not task.done():
                task.cancel()
    if working.done() and not working.cancelled():
        return working.result()  # its own exception (an ApiError, say) is raised as it is
    gen.cancel()
    raise ClientGone()


async def first_item(request: Request, gen) -> Any:
    """Wait for a generation's first item; turn an early failure into an HTTP error (the status is not sent yet)."""
    async def first():
        try:
            return await gen.__anext__()
        except StopAsyncIteration:
            return None
        except ValueError as e:
            raise bad(None, str(e)) from None

    try:
        return await unless_gone(request, gen, first)
    except BaseException:
        gen.cancel()
        raise


# -- routes ------------------------------------------------------------------------------------------------------------

async def health(request: Request) -> Response:
    state: ServerState = request.app.state.minichat
    return JSONResponse({"status": "ok", "model": state.model_id, **state.engine.stats()})


async def models(request: Request) -> Response:
    authorize(request)
    state: ServerState = request.app.state.minichat
    return JSONResponse({"object": "list", "data": [{"id": state.model_id, "object": "model", "created": 0,
                                                     "owned_by": "minichat"}]})


async def chat_completions(request: Request) -> Response:
    key = authorize(request)
    state: ServerState = request.app.state.minichat
    req = parse_request(await read_json(request, state.limits.max_body_bytes), state.limits)
    if req.model != state.model_id:
        raise ApiError(404, f"The model {req.model!r} does not exist; this server serves {state.model_id!r}",
                       param="model", code="model_not_found")
    prompt = build_prompt(req, state.template, state.n_ctx, state.instructions, state.limits, state.tool_listing)
    cid, created = new_completion_id()
    refusal = _refused(state, req)
    out_filter = state.guard.output_filter() if state.guard is not None else None
    reply = ReplyAssembler(prompt.forced, parse_tools=bool(prompt.tools), out_filter=out_filter)
    tok = state.template.tokenizer
    try:
        gen = None if refusal is not None else state.engine.submit(GenerationRequest(
            prompt.ids, req.sampling, prompt.max_tokens, tuple(state.template.stop_ids), req.stop, key.id, tok))
    except EngineBusy as e:
        raise busy(e) from None
    if gen is None:  # the input guard refused: answer with its refusal, no model run
        reply.text, reply.finish_reason = [refusal], "content_filter"
        use = usage(len(prompt.ids), 0, 0)
        first = None
    else:
        first = await first_item(request, gen)
    if not req.stream:
        async def collect() -> None:
            step = first
            while step is not None and reply.finish_reason is None:
                reply.feed(step)
                step = None if reply.finish_reason else await anext(gen, None)

        try:
            if gen is not None:
                await unless_gone(request, gen, collect)
        finally:
            if gen is not None:
                gen.cancel()
        if gen is not None:
            use = usage(len(prompt.ids), reply.completion_tokens, gen.cached_tokens)
        return JSONResponse(completion(cid, req.model, created, reply, use))

    async def chunks():
        w = sse.ChunkWriter(cid, req.model, created, req.include_usage)
        try:
            yield w.role()
            if gen is None:
                yield w.text(refusal)
            step = first
            while step is not None:
                for piece in reply.feed(step):
                    if piece[0] == "text":
                        yield w.text(piece[1])
                    elif piece[0] == "call":
                        yield w.tool_call(piece[1], piece[2])
                    else:
                        yield w.tool_args(piece[1], piece[2])
                if reply.finish_reason is not None:
                    break
                step = await anext(gen, None)
            yield w.finish(reply.finish_reason or "stop")
            if req.include_usage:
                yield w.usage(usage(len(prompt.ids), reply.completion_tokens, gen.cached_tokens if gen else 0))
            yield sse.DONE
        except Exception as e:  # noqa: BLE001 - the status line is sent: report in the stream, keep serving
            yield sse.error_event(ApiError(500, f"generation failed: {type(e).__name__}: {e}",
                                           type="server_error").body())
        finally:
            if gen is not None:
                gen.cancel()

    return CancellingStream(chunks(), media_type="text/event-stream", headers=SSE_HEADERS)


def _refused(state: ServerState, req) -> str | None:
    """The guard's refusal text when the last user message is refused, else None."""
    if state.guard is None:
        return None
    last = next((m.content for m in reversed(req.messages) if m.role == "user"), "")
    if not last.strip():
        return None
    verdict = state.guard.check_input(last)
    return None if verdict.allowed else (getattr(verdict, "reply", "") or "I can't help with that.")


async def events(request: Request) -> Response:
    """One turn of a server-side conversation, streamed as the pipeline's own events."""
    key = authorize(request)
    state: ServerState = request.app.state.minichat
    body = await read_json(request, state.limits.max_body_bytes)
    if not isinstance(body, dict):
        raise bad(None, "the body must be a JSON object {\"message\": ..., \"conversation\": ...}")
    unknown = sorted(set(body) - {"message", "conversation", "reset"})
    if unknown:
        raise bad(unknown[0], f"Unrecognized request argument supplied: {unknown[0]}")
    message, conv = body.get("message"), body.get("conversation", "default")
    if not isinstance(message, str) or not message.strip() or len(message) > state.limits.max_message_chars:
        raise bad("message", f"message must be a non-empty string of at most {state.limits.max_message_chars} "
                             f"characters")
    if not isinstance(conv, str) or not CONVERSATION.fullmatch(conv):
        raise bad("conversation", "conversation must be 1-64 letters, digits, _ or -")
    if not isinstance(body.get("reset", False), bool):
        raise bad("reset", "reset must be true or false")
    if state.make_chat is None:
        raise ApiError(404, "this server has no chat pipeline", code="not_found")
    slot = (key.user, conv)  # conversations are per user: another user's key never reaches them

    def turn():
        chat = state.sessions.get(slot)
        if chat is None or body.get("reset"):
            mine = [s for s in state.sessions if s[0] == key.user and s != slot]  # oldest first (LRU order)
            for old in mine[: max(0, len(mine) - state.max_sessions_per_user + 1)]:
                del state.sessions[old]
            chat = state.sessions[slot] = state.make_chat(key.user, conv)
        state.sessions.move_to_end(slot)
        while len(state.sessions) > state.max_sessions:
            state.sessions.popitem(last=False)
        return chat.send(message)

    try:
        gen = state.engine.run_exclusive(turn)
    except EngineBusy as e:
        raise busy(e) from None
    first = await first_item(request, gen)

    async def stream():
        try:
            item = first
            while item is not None:
                yield sse.event(item.to_json())
                item = await anext(gen, None)
            yield sse.DONE
        except Exception as e:  # noqa: BLE001
            yield sse.error_event(ApiError(500, f"the turn failed: {type(e).__name__}: {e}",
                                           type="server_error").body())
        finally:
            gen.cancel()

    return CancellingStream(stream(), media_type="text/event-stream", headers=SSE_HEADERS)


# -- the application ---------------------------------------------------------------------------------------------------

async def _api_error(request: Request, exc: ApiError) -> Response:
    return error_response(exc)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
    return error_response(ApiError(exc.status_code, str(exc.detail), code=code))


async def _gone(request: Request, exc: ClientGone) -> Response:
    return Response(status_code=499)  # nginx's "client closed request": nobody reads it; logs do


async def _crash(request: Request, exc: Exception) -> Response:
    return error_response(ApiError(500, f"internal error ({type(exc).__name__}); the server goes on",
                                   type="server_error"))


SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"x-frame-options", b"DENY"),
                    (b"content-security-policy", b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'")]


class SecurityHeaders:
    """Adds the headers that keep the page from being framed, sniffed or leaking its URL (pure ASGI)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + SECURITY_HEADERS}
            await send(message)

        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def create_app(state: ServerState, extra_routes: list | None = None) -> Starlette:
    from starlette.middleware import Middleware

    from minichat.server.web import page_routes

    routes = [Route("/health", health), Route("/v1/models", models),
              Route("/v1/chat/completions", chat_completions, methods=["POST"]),
              Route("/v1/minichat/events", events, methods=["POST"]), *page_routes(), *(extra_routes or [])]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)],
                    exception_handlers={ApiError: _api_error, ClientGone: _gone, HTTPException: _http_error,
                                        Exception: _crash})
    app.state.minichat = state
    return app
