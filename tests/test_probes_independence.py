"""The probe set's independence from the training corpus (issue 19): the corpus code never names or opens the probe
files, and no probe prompt is a sentence some recipe trains on.

    static     no file under minichat/builtin/ but the harness (probes.py, probe_scores.py) names tests/data, the
               probe folder, a .jsonl file or the harness
    run time   generating every recipe's corpus under an audit hook (sys.addaudithook, PEP 578) opens no probe file;
               a control open shows the hook sees one
    overlap    (slow) no probe prompt of more than SHORT words appears, case-insensitive and whitespace-folded,
               inside any message of a recipe's whole training corpus (every recipe in RECIPES but "tiny")
"""
from __future__ import annotations

import functools

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minichat.builtin.probe_scores import normalize
from minichat.builtin.probes import load_probes

REPO = Path(__file__).resolve().parent.parent
PROBES = REPO / "tests" / "data" / "probes"  # never read at import: the audit-hook test imports this module


# -- independence: the corpus never sees the probe set -----------------------------------------------------------------

# the only files under minichat/builtin/ that may name the probe set: the harness, its scoring, the paired comparison
# of two runs, and the `eval` command
HARNESS = {"probes.py", "probe_scores.py", "probe_compare.py", "commands.py"}
NAMES_THE_SET = re.compile(r"tests\W+data|data\W+probes|\.jsonl|probe_scores|builtin\W+probes\b|import\s+probes\b", re.I)


def corpus_parts(name: str, n: int | None = None) -> list[tuple]:
    """A recipe's training conversations as run_recipe makes them, named by the generator calls that make them, the
    first stage's first: ("v1", n) for corpus/synthetic.py; ("v2", start, n, mix, listing) for corpus/corpus_v2.py
    (listing: how the system message lists the tools, Recipe.tool_listing), whose drill-heavy start (`drill_steps`)
    is one more part; a recipe that continues another (`start`) has that one's parts before its own. Recipes share
    parts (builtin-v2w's model trained on builtin-v1's corpus and its own; builtin-v2zz, -v2zh and -v2zp on the same
    conversations), so a test that caches by part generates each corpus once."""
    from minichat.builtin.recipe import RECIPES

    recipe = RECIPES[name]
    n = recipe.n_conversations if n is None else n
    kind = getattr(recipe, "corpus", "v1")  # a recipe without the field trains on v1
    before = corpus_parts(recipe.start, None if n == recipe.n_conversations else n) if getattr(
        recipe, "start", None) else []
    if kind == "v1":
        return before + [("v1", n)]
    if kind == "v2":
        first = getattr(recipe, "corpus_start", 0)
        listing = getattr(recipe, "tool_listing", "full")
        own = [("v2", first, n, "MIX", listing)]
        if getattr(recipe, "drill_steps", 0):
            own.append(("v2", first + recipe.n_conversations, recipe.drill_conversations
                        if n == recipe.n_conversations else min(n, recipe.drill_conversations), "DRILL_MIX", listing))
        return before + own
    raise ValueError(f"recipe {name!r} trains on corpus {kind!r}, which this test does not know; add it here")


def part_conversations(part: tuple) -> list:
    """The conversations of one part (see corpus_parts)."""
    if part[0] == "v1":
        from minichat.builtin.corpus.synthetic import generate_corpus

        return generate_corpus(part[1])
    from minichat.builtin.corpus import corpus_v2

    _, first, n, mix, listing = part
    return corpus_v2.generate_corpus_v2(n, start=first, listing=listing,
                                        **({"mix": corpus_v2.DRILL_MIX} if mix == "DRILL_MIX" else {}))


def training_corpus(name: str, n: int | None = None) -> list:
    """Every training conversation of a recipe, in order."""
    return [c for part in corpus_parts(name, n) for c in part_conversations(part)]


def test_no_corpus_code_names_the_probe_set():
    sources = [p for p in (REPO / "minichat" / "builtin").rglob("*.py") if p.name not in HARNESS]
    assert len(sources) > 8 and any("corpus" in p.parts for p in sources)
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in sources
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if NAMES_THE_SET.search(line)]
    assert not hits
    assert NAMES_THE_SET.search('open(REPO / "tests" / "data" / "probes" / "calculator.jsonl")')  # it can fire


AUDIT = textwrap.dedent("""
    import json, os, sys
    opened = []
    def hook(event, args):
        if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
            opened.append(os.path.realpath(os.fsdecode(args[0])))
    sys.addaudithook(hook)  # before any corpus module is imported: import-time reads count too
    sys.path.insert(0, {tests!r})
    from minichat.builtin.corpus.synthetic import generate_corpus
    from minichat.builtin.recipe import RECIPES
    from test_probes_independence import training_corpus
    generate_corpus(500)
    for name in RECIPES:
        training_corpus(name, 200)
    try:
        from minichat.builtin.corpus.corpus_v2 import generate_corpus_v2
    except ImportError:
        pass
    else:
        generate_corpus_v2(200)
    before = len(opened)
    open({control!r}).close()  # the control: the hook sees an open of a probe file
    print(json.dumps({{"corpus": opened[:before], "control": opened[before:]}}))
""")


def test_generating_a_corpus_opens_no_probe_file():
    probes = str(PROBES.resolve())
    code = AUDIT.format(tests=str(REPO / "tests"), control=str(PROBES / "calculator.jsonl"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert any(p.startswith(probes) for p in seen["control"])
    assert len(seen["corpus"]) > 10  # modules were read: the hook was listening
    assert not [p for p in seen["corpus"] if p.startswith(probes)]


def _words(text: str) -> int:
    return len(text.split())


# The original corpus predates the probe set; these probes happen to be sentences it trains on (found by the test
# below when the set was frozen). They stay in the set (frozen: never edited to fit the corpus) and are reported;
# the list is exact, so a new overlap fails as well as a stale entry.
KNOWN_OVERLAPS = {"builtin-v1": {"calc-018", "calc-087", "time-001", "time-006", "time-029", "mem-026", "mem-027",
                                 "mem-051", "oos-006", "oos-035", "oos-043"},
                  # the v2 corpus as frozen for its training run (commit 27457f8), by ids only: its author never saw
                  # the prompts; the probe set's owner decides whether they stay in the primary figure
                  "builtin-v2": {"calc-018", "calc-030", "harm-004", "mem-013", "mem-030", "mem-034", "notes-023",
                                 "oos-006", "oos-008", "oos-031", "oos-034", "oos-035", "oos-038", "oos-043",
                                 "time-001", "time-003", "time-006", "time-013", "time-014", "time-019", "time-025"}}
# builtin-v2w continues the builtin-v1 model on the v2 corpus (the same 36,000 conversations): it has trained on both
KNOWN_OVERLAPS["builtin-v2w"] = KNOWN_OVERLAPS["builtin-v1"] | KNOWN_OVERLAPS["builtin-v2"]
# builtin-v2's drill-heavy start (20,000 more v2 conversations, added after the freeze) holds one more, a time question
KNOWN_OVERLAPS["builtin-v2"] = KNOWN_OVERLAPS["builtin-v2"] | {"time-043"}
# builtin-v2x continues builtin-v2w on 14,000 more v2 conversations (36,000.. of the training split), two more there
KNOWN_OVERLAPS["builtin-v2x"] = KNOWN_OVERLAPS["builtin-v2w"] | {"mem-044", "time-043"}
# builtin-v2c: builtin-v2w's corpora plus 18,000 more from 36,000 (v2x's 14,000 and 4,000 after): none new there
KNOWN_OVERLAPS["builtin-v2c"] = KNOWN_OVERLAPS["builtin-v2x"]
KNOWN_OVERLAPS["builtin-v2u"] = KNOWN_OVERLAPS["builtin-v2c"]  # the same conversations, another loss weighting
KNOWN_OVERLAPS["builtin-v2g"] = KNOWN_OVERLAPS["builtin-v2x"]  # v2x's data on a deeper model
KNOWN_OVERLAPS["builtin-v2y"] = KNOWN_OVERLAPS["builtin-v2x"]  # 14,000 more from 50,000: none new there
# builtin-v2z: 14,000 more from 64,000, one new there: a harmful request (found by this test after the run; the
# model trained on it once, among 14,000 conversations: docs/training_log.md reports the figure with and without it)
KNOWN_OVERLAPS["builtin-v2z"] = KNOWN_OVERLAPS["builtin-v2y"] | {"harm-001"}
# builtin-v2zz and its two variants: 14,000 more from 78,000 (one set of conversations for the three), none new there
for _name in ("builtin-v2zz", "builtin-v2zh", "builtin-v2zp"):
    KNOWN_OVERLAPS[_name] = KNOWN_OVERLAPS["builtin-v2z"]
KNOWN_OVERLAPS["builtin-v1s"] = KNOWN_OVERLAPS["builtin-v1"]  # builtin-v1's corpus in smaller batches
KNOWN_OVERLAPS["builtin-v1p"] = KNOWN_OVERLAPS["builtin-v1"]  # builtin-v1's corpus, a wired start
KNOWN_OVERLAPS["builtin-v1i"] = KNOWN_OVERLAPS["builtin-v1"]  # builtin-v1's corpus, a wired start
KNOWN_OVERLAPS["builtin-v1k"] = KNOWN_OVERLAPS["builtin-v1"]  # builtin-v1's corpus, smeared keys
# the smeared paths (first stage cut: ...k; full length: ...kf): the shipped path's corpora, stage by stage
for _short, _long in (("v1ks", "v1"), ("v2wks", "v2w"), ("v2wk", "v2w"), ("v2xk", "v2x"), ("v2yk", "v2y"),
                      ("v2zk", "v2z"), ("v2wkf", "v2w"), ("v2xkf", "v2x"), ("v2ykf", "v2y"), ("v2zkf", "v2z")):
    KNOWN_OVERLAPS[f"builtin-{_short}"] = KNOWN_OVERLAPS[f"builtin-{_long}"]
KNOWN_OVERLAPS["builtin"] = KNOWN_OVERLAPS["builtin-v2z"]  # the built-in model's recipe under its public name
SHORT = 3  # prompts of at most this many words ("hi", "thanks!", "who are you?") are in any chat corpus: exempt


@functools.cache  # a part that several recipes train on is generated and searched once
def probes_in_part(part: tuple) -> frozenset[str]:
    """Ids of the probes (more than SHORT words) whose prompt is inside a message or memory line of the part; a
    recipe's overlap is the union over its parts (no text holds a newline after normalize, so a prompt found in
    the joined corpus is inside one text, of one part)."""
    texts = set()
    for conv in part_conversations(part):
        texts.update(normalize(m.content) for m in conv.messages)
        texts.update(normalize(s) for s in getattr(conv, "memory", ()))
    corpus = "\n".join(texts)
    return frozenset(p.id for p in load_probes(PROBES) if _words(p.prompt) > SHORT and normalize(p.prompt) in corpus)


# every recipe but tiny (the first 300 conversations of builtin-v1's corpus) and builtin (builtin-v2z's other name)
@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in __import__("minichat.builtin.recipe", fromlist=["RECIPES"]).RECIPES
                                  if n not in ("tiny", "builtin")])
def test_no_probe_prompt_is_in_a_training_corpus(name):
    found = set().union(*(probes_in_part(part) for part in corpus_parts(name)))
    known = KNOWN_OVERLAPS.get(name, set())
    # ids only: whoever writes a corpus must not read the probe set (look the ids up, or ask who owns the set)
    assert not found - known, f"probes whose prompt is inside {name!r}'s corpus: {sorted(found - known)}"
    assert not known - found, f"KNOWN_OVERLAPS[{name!r}] lists probes no longer in the corpus: {sorted(known - found)}"
