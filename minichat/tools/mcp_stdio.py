"""The stdio transport under the MCP client (minichat/tools/mcp.py): the server process and its three pipes.

The client starts the server in a session of its own (so Ctrl-C in the chat does not reach it) with a trimmed
environment (`SAFE_ENV`: no API keys or tokens from the user's), and gives each pipe a thread: stdout lines become
parsed messages in a queue, stdin is written from a queue (a server that stops reading blocks that thread, never the
caller), and stderr keeps the server's last log lines for error messages. Stopping escalates from closing stdin to
SIGTERM to SIGKILL of the server's whole process group.
"""
from __future__ import annotations

import collections
import json
import os
import queue
import signal
import subprocess

MAX_LINE = 16 * 2**20  # bytes; a longer "line" is a broken server, not a message
# The environment a server inherits unless told otherwise (as the official SDK does): enough to find programs and a
# home directory, but none of the API keys and tokens that may sit in the user's environment.
SAFE_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TMPDIR",
            "APPDATA", "LOCALAPPDATA", "PATHEXT", "SYSTEMDRIVE", "SYSTEMROOT", "TEMP", "USERNAME", "USERPROFILE")


def pump_stdout(stream, inbox: queue.Queue) -> None:
    """Reader thread: each stdout line becomes ("message", obj, raw) or ("garbage", raw); end of file -> ("eof",).
    The thread owns the stream and closes it at the end (closing it from another thread could block on its lock)."""
    with stream:
        while True:
            line = stream.readline(MAX_LINE + 1)
            if not line:
                inbox.put(("eof",))
                return
            if len(line) > MAX_LINE:
                inbox.put(("garbage", f"<a line longer than {MAX_LINE} bytes>"))
                return  # the framing is lost; nothing after this can be trusted
            raw = line.decode("utf-8", "replace").rstrip("\r\n")
            if not raw.strip():
                continue  # a blank line carries no message; tolerate it
            try:
                inbox.put(("message", json.loads(line), raw))
            except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
                inbox.put(("garbage", raw))


def pump_stdin(stream, outbox: queue.Queue) -> None:
    """Writer thread: write each queued line; None closes stdin. A server that stops reading fills the pipe and
    blocks this thread, never the caller, whose wait for the answer keeps its time limit."""
    try:
        for data in iter(outbox.get, None):
            stream.write(data)
            stream.flush()
    except (OSError, ValueError):  # BrokenPipeError: the server is gone; its stdout's end of file says so
        pass
    finally:
        try:
            stream.close()  # flushes what is left, which fails the same way when the server is gone
        except (OSError, ValueError):
            pass


def pump_stderr(stream, tail: collections.deque) -> None:
    """Reader thread: keep the server's last log lines (and keep its stderr pipe from filling up and blocking it)."""
    with stream:
        for line in iter(stream.readline, b""):
            tail.append(line.decode("utf-8", "replace").rstrip())


def exit_reason(code: int | None) -> str:
    if code is None:
        return "is still running"
    return f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"


def signal_group(proc: subprocess.Popen, sig: int) -> bool:
    if os.name != "posix":
        return False
    try:
        os.killpg(proc.pid, sig)  # the group the server leads (start_new_session): the server and its children
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate(proc: subprocess.Popen) -> None:
    if not signal_group(proc, signal.SIGTERM):
        proc.terminate()


def kill(proc: subprocess.Popen) -> None:
    if not signal_group(proc, getattr(signal, "SIGKILL", signal.SIGTERM)):
        proc.kill()
