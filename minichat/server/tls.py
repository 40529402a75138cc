"""HTTPS: the certificate the user provides, or a self-signed development certificate for localhost.

An API key sent over plain HTTP can be read by anyone on the path, so the server speaks TLS. In production the user
brings a certificate and its key (`--certfile/--keyfile`, e.g. from Let's Encrypt). For trying things out on one
machine, `--dev-cert` makes a self-signed certificate for `localhost`, 127.0.0.1 and ::1 with the `openssl`
command-line tool (the standard library cannot make certificates), keeps it under ~/.minichat/dev-cert/ and
reuses it until a week before it expires. No client trusts it until told to: `trust_hint` says how.

What it leaves out: ACME (automatic certificates), client certificates (mutual TLS), certificate reloading.
"""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
from pathlib import Path

from minichat.errors import MinichatError

DAYS = 90


class TLSError(MinichatError, ValueError):
    """A certificate that cannot be made or used."""


def default_dir() -> Path:
    return Path(os.environ.get("MINICHAT_DEV_CERT_DIR") or Path.home() / ".minichat" / "dev-cert")


def _still_valid(cert: Path, openssl: str, seconds: int = 7 * 86400) -> bool:
    """Does the certificate stay valid for `seconds` more? (`openssl x509 -checkend`: exit status 0 if so)."""
    done = subprocess.run([openssl, "x509", "-in", str(cert), "-noout", "-checkend", str(seconds)],
                          capture_output=True)
    return done.returncode == 0


def make_dev_cert(directory: str | os.PathLike | None = None, *, force: bool = False) -> tuple[Path, Path]:
    """(cert.pem, key.pem) for localhost, made with `openssl req -x509` unless a valid one is there already."""
    d = Path(directory) if directory else default_dir()
    cert, key = d / "cert.pem", d / "key.pem"
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TLSError("--dev-cert needs the `openssl` command-line tool, which is not on PATH; install it "
                       "(apt-get install openssl / brew install openssl) or pass --certfile and --keyfile")
    if not force and cert.exists() and key.exists() and _still_valid(cert, openssl):
        return cert, key
    d.mkdir(parents=True, exist_ok=True)
    cmd = [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", str(key), "-out", str(cert), "-days", str(DAYS), "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=digitalSignature,keyCertSign",
           "-addext", "extendedKeyUsage=serverAuth"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise TLSError(f"openssl could not make the development certificate: {done.stderr.strip()[-300:]}")
    os.chmod(key, 0o600)
    return cert, key


def check_pair(certfile: str | os.PathLike, keyfile: str | os.PathLike) -> None:
    """Load the pair once, so a wrong path or a key that does not match fails at start-up in one line."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(certfile), str(keyfile))
    except (OSError, ssl.SSLError) as e:
        raise TLSError(f"cannot use the certificate {certfile} with the key {keyfile}: {e}") from None


def trust_hint(cert: Path, url: str) -> str:
    """How to make clients trust the development certificate (printed at start-up)."""
    return (f"development certificate: {cert} (self-signed, localhost only). To trust it:\n"
            f"  curl:    curl --cacert {cert} {url}/health\n"
            f"  Python:  OpenAI(base_url='{url}/v1', api_key=KEY, "
            f"http_client=openai.DefaultHttpxClient(verify='{cert}'))  or  SSL_CERT_FILE={cert}\n"
            f"  browser: import {cert} as a trusted authority (Chrome: Settings > Privacy and security > Security > "
            f"Manage certificates), or accept the warning once for {url}")
