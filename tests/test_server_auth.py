"""Keys, authentication, rate limits, TLS set-up and the start-up refusals, without a network (hand-worked values)."""
from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import stat
import sys

import pytest

from conftest import peers_required
from minichat.errors import MinichatError
from minichat.server import add_parser, keys
from minichat.server.auth import Authenticator, RateLimiter
from minichat.server.openai_api import ApiError


def test_keys_are_stored_only_as_sha256_and_shown_once(tmp_path, capsys):
    path = tmp_path / "keys.json"
    key, record = keys.add("alice", 30, path)
    assert key.startswith("mc-") and len(key) >= 40
    text = path.read_text()
    assert key not in text and key[3:] not in text
    assert json.loads(text)["keys"][0]["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # readable by its owner only
    assert keys.load(path) == [record] and record.user == "alice" and record.rpm == 30


def test_keys_command_line(tmp_path, capsys):
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="command"))
    path = str(tmp_path / "k.json")

    def run(*argv):
        args = ap.parse_args(list(argv))
        assert args.run(args) == 0
        return capsys.readouterr().out

    out = run("keys", "add", "--user", "bob", "--rpm", "5", "--keys", path)
    key = out.split()[0]
    listed = run("keys", "list", "--keys", path)
    assert "bob" in listed and "5/min" in listed and key not in listed
    key_id = listed.split()[0]
    assert Authenticator(keys_file=path).check(f"Bearer {key}").user == "bob"
    run("keys", "revoke", key_id, "--keys", path)
    assert "REVOKED" in run("keys", "list", "--keys", path)
    with pytest.raises(ApiError) as e:
        Authenticator(keys_file=path).check(f"Bearer {key}")
    assert e.value.status == 401
    with pytest.raises(keys.KeysError, match="no key with id"):
        keys.revoke("key_nope", path)


def test_bad_keys_files_and_hand_given_keys_are_refused_clearly(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something else"}')
    with pytest.raises(keys.KeysError, match="cannot read the keys file"):
        keys.load(bad)
    with pytest.raises(keys.KeysError, match="at least 16"):
        keys.record_for("short")
    with pytest.raises(keys.KeysError, match="user id"):
        keys.record_for("a-long-enough-key-123", user="bad user!")


def test_every_stored_key_is_compared_in_constant_time(monkeypatch):
    records = [keys.record_for(f"key-number-{i:02d}-xxxxxxxx", f"u{i}") for i in range(5)]
    auth = Authenticator(records)
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr("minichat.server.auth.hmac.compare_digest", lambda a, b: calls.append(1) or real(a, b))
    assert auth.check("Bearer key-number-00-xxxxxxxx").user == "u0"  # a match on the first record...
    assert len(calls) == 5  # ...still compares against all five: no early exit
    for header in (None, "", "Bearer", "Bearer ", "Basic key-number-00-xxxxxxxx", "key-number-00-xxxxxxxx",
                   "Bearer key-number-00-xxxxxxxY"):
        with pytest.raises(ApiError) as e:
            auth.check(header)
        assert e.value.status == 401 and e.value.body()["error"]["code"] == "invalid_api_key"


def test_token_bucket_hand_worked():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    k = keys.record_for("a-long-enough-key-123", rpm=3)  # 3 per minute: one token every 20 s
    for _ in range(3):
        limiter.take(k)
    with pytest.raises(ApiError) as e:
        limiter.take(k)
    assert e.value.status == 429 and e.value.headers["Retry-After"] == "20"
    now[0] = 15.0  # 0.75 of a token refilled: 5 s to go
    with pytest.raises(ApiError) as e:
        limiter.take(k)
    assert e.value.headers["Retry-After"] == "5"
    now[0] = 20.0
    limiter.take(k)  # one token is back


def test_dev_cert_needs_openssl(tmp_path, monkeypatch):
    from minichat.server import tls

    monkeypatch.setenv("PATH", str(tmp_path))  # nowhere to find openssl
    with pytest.raises(tls.TLSError, match="openssl"):
        tls.make_dev_cert(tmp_path / "c")


def test_dev_cert_is_for_localhost_and_reused(tmp_path):
    import ssl
    import subprocess

    from minichat.server import tls

    cert, key = tls.make_dev_cert(tmp_path)
    text = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-text"], capture_output=True,
                          text=True, check=True).stdout
    assert "DNS:localhost" in text and "IP Address:127.0.0.1" in text
    tls.check_pair(cert, key)
    first = cert.read_bytes()
    assert tls.make_dev_cert(tmp_path)[0].read_bytes() == first  # still valid: kept
    other, other_key = tls.make_dev_cert(tmp_path / "other")
    with pytest.raises(tls.TLSError, match="cannot use the certificate"):
        tls.check_pair(cert, other_key)
    assert ssl.create_default_context(cafile=str(cert))


def needs_serve():
    """Skip (fail in CI) when the serve extra is missing: these tests go as far as building the app."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        if peers_required():
            raise
        pytest.skip("the serve extra is not installed")


def serve(argv):
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["serve", *argv])
    return args.run(args)


def test_no_key_means_no_network_address():
    needs_serve()
    from minichat.server.web import build_state, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10")
    ap = argparse.ArgumentParser()
    add_parser(ap.add_subparsers(dest="command"))
    args = ap.parse_args(["serve", "--host", "0.0.0.0", "--no-safety"])
    with pytest.raises(MinichatError, match="refusing to listen on 0.0.0.0 without an API key"):
        build_state(args, model=object(), tokenizer=object())


@pytest.mark.parametrize("argv, message", [
    (["--host", "0.0.0.0", "--no-tls", "--api-key", "a-long-enough-key-123"], "loopback only"),
    ([], "HTTPS needs a certificate"),
    (["--certfile", "c.pem"], "go together"),
    (["--dev-cert", "--certfile", "c", "--keyfile", "k"], "not both"),
])
def test_serve_refuses_unsafe_setups_in_one_line(argv, message):
    needs_serve()
    with pytest.raises(MinichatError, match=message):
        serve(argv)


def test_serve_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if the serve extra were not installed
    with pytest.raises(MinichatError, match=r"pip install 'minichat\[serve\]'"):
        serve(["--dev-cert"])


def test_the_package_imports_without_the_extra(monkeypatch):
    import subprocess

    code = ("import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None; "
            "import minichat.server, minichat.server.keys, minichat.server.openai_api, minichat.server.worker; "
            "import minichat.cli; minichat.cli.build_parser(); print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


def test_the_minichat_command_has_serve_and_keys(tmp_path, capsys):
    from minichat.cli import main

    path = str(tmp_path / "keys.json")
    assert main(["keys", "add", "--user", "dana", "--keys", path]) == 0
    assert "dana" in capsys.readouterr().out
    assert main(["keys", "revoke", "key_missing", "--keys", path]) == 2  # one line, exit status 2
    assert "no key with id 'key_missing'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--dev-cert" in capsys.readouterr().out
