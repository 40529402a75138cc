"""A small MCP server in plain Python (no SDK) that speaks only the 2025-11-25 era, with switches for misbehaviour.

    python stdlib_server.py                      a legacy server: `initialize`, then tools; server/discover -> -32601
    --silent-discover                            unknown methods get no answer at all (the probe must time out)
    --advertise --versions 2025-06-18            answers server/discover with -32022 naming only these versions
    --discover-error -32602                      answers server/discover with this JSON-RPC error code
    --discover-result --versions 2025-06-18      answers server/discover with a result listing only these versions
    --banner                                     prints a line of text on stdout before any message (garbage)
    --json-log                                   prints a JSON log record on stdout before any message (garbage)
    --garbage-on-call                            answers tools/call of `shout` with a line that is not JSON
    --ping                                       sends the client a `ping` request and a log notification per call
    --hang                                       reads but never answers, ignores SIGTERM and stdin closing
"""
import argparse
import json
import signal
import sys
import time

TOOLS = [
    {"name": "add", "description": "Add two integers.",
     "inputSchema": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                     "required": ["a", "b"]}},
    {"name": "shout", "description": "Upper-case the text.",
     "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}},
]


def send(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def error(rid, code, message, data=None):
    send({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message,
                                                  **({"data": data} if data is not None else {})}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--silent-discover", action="store_true")
    ap.add_argument("--versions", default="2025-11-25,2025-06-18")
    ap.add_argument("--advertise", action="store_true", help="answer server/discover with -32022")
    ap.add_argument("--discover-error", type=int)
    ap.add_argument("--discover-result", action="store_true")
    ap.add_argument("--banner", action="store_true")
    ap.add_argument("--json-log", action="store_true")
    ap.add_argument("--garbage-on-call", action="store_true")
    ap.add_argument("--ping", action="store_true")
    ap.add_argument("--hang", action="store_true")
    args = ap.parse_args()
    versions = args.versions.split(",")
    if args.hang:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sys.stdin.read()  # swallow everything until stdin closes, answer nothing
        while True:
            time.sleep(1)
    if args.banner:
        print("Starting the weather server on stdio...", flush=True)
    if args.json_log:
        print(json.dumps({"level": "info", "msg": "listening on stdio"}), flush=True)
    initialized = False
    for line in sys.stdin:
        msg = json.loads(line)
        print(f"got {msg.get('method', 'a response')}", file=sys.stderr, flush=True)
        method, rid = msg.get("method"), msg.get("id")
        if rid is None or method is None:  # a notification, or the client's answer to our ping
            initialized = initialized or method == "notifications/initialized"
            continue
        if method == "initialize":
            asked = msg["params"]["protocolVersion"]
            send({"jsonrpc": "2.0", "id": rid, "result": {
                "protocolVersion": asked if asked in versions else versions[0],
                "capabilities": {"tools": {}}, "serverInfo": {"name": "stdlib legacy", "version": "1.0"}}})
        elif method == "server/discover" and args.discover_error is not None:
            error(rid, args.discover_error, "no discover here")
        elif method == "server/discover" and args.discover_result:
            send({"jsonrpc": "2.0", "id": rid, "result": {"supportedVersions": versions, "capabilities": {}}})
        elif method == "server/discover" and args.advertise:
            asked = msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
            error(rid, -32022, "Unsupported protocol version", {"supported": versions, "requested": asked})
        elif not initialized:
            if not args.silent_discover:
                error(rid, -32601, f"Method not found: {method} (send initialize first)")
        elif "_meta" in msg.get("params", {}) and "io.modelcontextprotocol/protocolVersion" in msg["params"]["_meta"]:
            error(rid, -32600, "a 2026 envelope on a 2025 connection")
        elif method == "tools/list":
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
        elif method == "tools/call":
            name, arguments = msg["params"]["name"], msg["params"].get("arguments", {})
            if args.ping:
                send({"jsonrpc": "2.0", "id": "srv-ping", "method": "ping"})
                send({"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "hi"}})
            if name == "deafen":  # answer, then never read stdin again
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "deaf"}]}})
                while True:
                    time.sleep(1)
            elif name == "grow":  # a new tool appears, and the server says so before it answers
                TOOLS.append({"name": f"tool{len(TOOLS)}", "description": "grown", "inputSchema": {"type": "object"}})
                send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "grown"}]}})
            elif name == "shout" and args.garbage_on_call:
                sys.stdout.write("SHOUTING: " + arguments["text"].upper() + "\n")
                sys.stdout.flush()
            elif name == "shout":
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [
                    {"type": "text", "text": arguments["text"].upper()}]}})
            elif name in ("ask", "weird"):  # results of kinds the client does not handle
                send({"jsonrpc": "2.0", "id": rid, "result": {
                    "resultType": "input_required" if name == "ask" else "partial", "content": []}})
            elif name == "add":
                send({"jsonrpc": "2.0", "id": rid, "result": {"content": [
                    {"type": "text", "text": str(arguments["a"] + arguments["b"])}], "isError": False}})
            else:
                error(rid, -32602, f"Unknown tool: {name}")
        else:
            if not args.silent_discover:
                error(rid, -32601, f"Method not found: {method}")


if __name__ == "__main__":
    main()
