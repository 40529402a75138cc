"""API keys: made at random, shown once, stored only as hashes, each mapped to a user id and a rate limit.

    minichat keys add --user alice [--rpm 60]    prints the new key once ("mc-..."); the file keeps its hash
    minichat keys list                           id, user, rate, created, revoked; never a key
    minichat keys revoke KEY_ID                  a running server stops accepting it on its next request

The keys file (`--keys PATH`, else $MINICHAT_KEYS, else ~/.minichat/keys.json) is JSON written with mode 0600:

    {"format": "minichat-keys", "version": 1,
     "keys": [{"id": "key_3f9a1c2b", "user": "alice", "sha256": "<hex>", "rpm": 60, "created": "...",
               "revoked": false}]}

Why SHA-256 and not a slow password hash (scrypt): a generated key carries 256 random bits, so nobody can guess it
from its hash however fast the hash is (the reasoning of GitHub's and Stripe's token stores); a slow hash would only
add ~50 ms to every request. A key given by hand (`minichat serve --api-key KEY`) must be at least 16 characters for
the same reason. The key's `id` is the tenant's salt for the prefix cache: one tenant never reuses another's cache.

What it leaves out: key expiry and scopes, a database for thousands of keys (the file is read whole).
"""
from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from minichat.errors import MinichatError

FORMAT, VERSION = "minichat-keys", 1
PREFIX = "mc-"
MIN_KEY_CHARS = 16
DEFAULT_RPM = 60


class KeysError(MinichatError, ValueError):
    """A keys file that cannot be read, or a bad key/user/rate given on the command line."""


@dataclass(frozen=True)
class KeyRecord:
    id: str  # public name of the key ("key_3f9a1c2b"): logs, `keys revoke`, the prefix cache's salt
    user: str  # whose memories and conversations (memory isolation)
    sha256: str  # hex digest of the key; the key itself is never stored
    rpm: int = DEFAULT_RPM  # requests per minute (token bucket, burst = rpm)
    created: str = ""
    revoked: bool = False


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_user(user: str) -> str:
    ok = isinstance(user, str) and 0 < len(user) <= 64 and all(c.isalnum() or c in "._@+-" for c in user)
    if not ok or not user.isascii():
        raise KeysError(f"user id must be 1-64 ASCII letters, digits or . _ @ + - (got {user!r})")
    return user


def record_for(key: str, user: str = "default", rpm: int = DEFAULT_RPM, key_id: str | None = None) -> KeyRecord:
    """The record of a key given by hand (`--api-key`); too short a key is refused."""
    if not isinstance(key, str) or len(key) < MIN_KEY_CHARS or not key.isprintable() or " " in key:
        raise KeysError(f"an API key must be at least {MIN_KEY_CHARS} printable characters without spaces; make one "
                        f"with `minichat keys add` or `python -c 'import secrets; print(secrets.token_urlsafe(32))'`")
    if isinstance(rpm, bool) or not isinstance(rpm, int) or rpm < 1:
        raise KeysError(f"the rate limit must be a whole number of requests per minute >= 1, not {rpm!r}")
    h = digest(key)
    return KeyRecord(key_id or "key_" + h[:8], check_user(user), h, rpm, time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                         time.gmtime()))


def default_path() -> Path:
    return Path(os.environ.get("MINICHAT_KEYS") or Path.home() / ".minichat" / "keys.json")


def load(path: str | os.PathLike | None = None) -> list[KeyRecord]:
    """Every record in the file ([] when it does not exist)."""
    p = Path(path) if path else default_path()
    if not p.exists():
        return []
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise ValueError(f"not a {FORMAT} file of version {VERSION}")
        records = [KeyRecord(**r) for r in data["keys"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as e:
        raise KeysError(f"cannot read the keys file {p}: {e}") from None
    for r in records:
        if len(r.sha256) != 64 or not isinstance(r.rpm, int) or isinstance(r.rpm, bool) or r.rpm < 1:
            raise KeysError(f"the keys file {p} has a malformed record {r.id!r}")
    return records


def save(records: list[KeyRecord], path: str | os.PathLike | None = None) -> Path:
    """Write atomically (a temporary file renamed over the old one), readable by its owner only."""
    p = Path(path) if path else default_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"format": FORMAT, "version": VERSION, "keys": [asdict(r) for r in records]}, f, indent=1)
    os.replace(tmp, p)
    return p


def add(user: str, rpm: int = DEFAULT_RPM, path: str | os.PathLike | None = None) -> tuple[str, KeyRecord]:
    """A new random key for `user`: returns (the key, shown once; its record, saved)."""
    records = load(path)
    key = PREFIX + secrets.token_urlsafe(32)
    record = record_for(key, user, rpm)
    save(records + [record], path)
    return key, record


def revoke(key_id: str, path: str | os.PathLike | None = None) -> KeyRecord:
    records = load(path)
    for i, r in enumerate(records):
        if r.id == key_id:
            records[i] = KeyRecord(**{**asdict(r), "revoked": True})
            save(records, path)
            return records[i]
    raise KeysError(f"no key with id {key_id!r}; `minichat keys list` shows the ids")


# -- the command line --------------------------------------------------------------------------------------------------

def cmd_keys(args) -> int:
    if args.action == "add":
        key, r = add(args.user, args.rpm, args.keys)
        print(f"{key}\n(id {r.id}, user {r.user}, {r.rpm} requests/minute; the key is shown only now: the file "
              f"{args.keys or default_path()} keeps its SHA-256)")
    elif args.action == "list":
        records = load(args.keys)
        if not records:
            print(f"no keys in {args.keys or default_path()}")
        for r in records:
            print(f"{r.id}  {r.user:<16} {r.rpm:>5}/min  {r.created}{'  REVOKED' if r.revoked else ''}")
    else:
        r = revoke(args.key_id, args.keys)
        print(f"revoked {r.id} (user {r.user})")
    return 0


def add_keys_parser(sub) -> None:
    def positive(text: str) -> int:
        if not text.isdigit() or int(text) < 1:
            raise ValueError(f"expected a whole number >= 1, got {text!r}")
        return int(text)

    actions = sub.add_parser("keys", help="API keys for `minichat serve`").add_subparsers(dest="action", required=True)
    for name, helptext in (("add", "make a key for a user (shown once)"), ("list", "list the keys (never the keys "
                                                                                   "themselves)"),
                           ("revoke", "stop accepting a key")):
        p = actions.add_parser(name, help=helptext)
        p.add_argument("--keys", metavar="PATH", help="the keys file (default $MINICHAT_KEYS or ~/.minichat/keys.json)")
        if name == "add":
            p.add_argument("--user", required=True, help="the user id the key acts for (memories are per user)")
            p.add_argument("--rpm", type=positive, default=DEFAULT_RPM, help="requests per minute (default 60)")
        if name == "revoke":
            p.add_argument("key_id", help="the key's id, as `minichat keys list` shows it")
        p.set_defaults(run=cmd_keys)
