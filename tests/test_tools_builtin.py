"""The four built-in tools against what the built-in model was trained on (the corpus's schemas and tool messages),
get_time's time zones against zoneinfo by hand-worked offsets, and search_notes' ranking against rank_bm25."""
from __future__ import annotations

import datetime as dt
import importlib
import random
import re

import pytest
from conftest import require_peer
from hypothesis import given
from hypothesis import strategies as st

from minichat.tools import BUILTIN_TOOL_SCHEMAS, Toolbox, builtin_tools
from minichat.tools.builtin import clean_fact, make_get_time, make_remember, make_search_notes, time_result
from minichat.tools.notes import NotesIndex, split_notes


def corpus_module():
    """The training corpus's tool module, wherever the builtin split has put it."""
    for name in ("minichat.builtin.corpus.synthetic_tools", "minichat.builtin.synthetic_tools",
                 "minichat.train.synthetic_tools"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("the training corpus's tool module was not found")


def corpus(kinds, n=120):
    synthetic = importlib.import_module(corpus_module().__name__.rsplit(".", 1)[0] + ".synthetic")
    return synthetic.generate_corpus(n, kinds=kinds)


FIXED = dt.datetime(2031, 4, 17, 12, 5, tzinfo=dt.timezone.utc)


def test_schemas_are_exactly_the_trained_ones():
    tb = Toolbox(builtin_tools())
    assert tb.schemas() == list(corpus_module().BUILTIN_TOOL_SCHEMAS) == list(BUILTIN_TOOL_SCHEMAS)
    assert tb.names() == ["calculator", "get_time", "search_notes", "remember"]


def _tool_pairs(conversations):
    """(call, the tool message that answered it) for every call in the conversations."""
    for conv in conversations:
        msgs = conv.messages
        for i, m in enumerate(msgs):
            for call in m.tool_calls:
                result = next(r for r in msgs[i + 1:] if r.role == "tool" and r.tool_call_id == call.id)
                yield call, result.content


def test_calculator_and_remember_reproduce_the_corpus_tool_messages():
    saved = []
    tb = Toolbox(builtin_tools(save_fact=saved.append))
    pairs = list(_tool_pairs(corpus(["calculator", "calculator_followup", "remember"], 300)))
    assert sum(c.name == "calculator" for c, _ in pairs) > 150 and any(c.name == "remember" for c, _ in pairs)
    for call, content in pairs:
        assert tb.call(call.name, call.arguments).content == content, call
    assert saved and all(f.startswith("The user") for f in saved)


def test_search_notes_reproduces_the_corpus_tool_messages(tmp_path):
    """Each notes episode's note in a file named after its topic: the tool's answer is the corpus's message."""
    n = 0
    for k, (call, content) in enumerate(_tool_pairs(corpus(["notes"], 80))):
        folder = tmp_path / str(k)
        folder.mkdir()
        if content.startswith("1 note found:\n- "):
            (folder / (call.arguments["query"] + ".txt")).write_text(content.split("- ", 1)[1] + "\n")
        else:
            (folder / "other.txt").write_text("Nothing relevant in here at all.\n")
        tool = make_search_notes(folder)
        assert tool.fn(**call.arguments) == content
        n += 1
    assert n > 50


def test_time_result_is_the_corpus_format():
    mod = corpus_module()
    rng = random.Random(0)
    for _ in range(200):
        when = dt.datetime(2000, 1, 1) + dt.timedelta(minutes=rng.randrange(60 * 24 * 365 * 40))
        assert time_result(when) == mod.time_result(when)
    assert time_result(dt.datetime(2031, 4, 17, 14, 5)) == "Thursday, 17 April 2031, 14:05"


def test_get_time_time_zones():
    t = make_get_time(lambda: FIXED)
    assert t.fn(timezone="UTC") == "Thursday, 17 April 2031, 12:05"
    assert t.fn(timezone="Europe/Berlin") == "Thursday, 17 April 2031, 14:05"  # summer time: UTC+2
    assert t.fn(timezone="Asia/Kolkata") == "Thursday, 17 April 2031, 17:35"  # UTC+5:30
    assert t.fn(timezone="America/Los_Angeles") == "Thursday, 17 April 2031, 05:05"  # PDT: UTC-7
    assert t.fn(timezone="Pacific/Kiritimati") == "Friday, 18 April 2031, 02:05"  # UTC+14: already tomorrow
    winter = make_get_time(lambda: dt.datetime(2031, 1, 9, 23, 30, tzinfo=dt.timezone.utc), "Europe/Berlin")
    assert winter.fn() == "Friday, 10 January 2031, 00:30"  # UTC+1 in winter, the default zone applies
    assert t.fn() == time_result(FIXED.astimezone())  # no zone given: the machine's local zone
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        t.fn(timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        make_get_time(default_zone="Nowhere/Else")
    real = make_get_time()  # the real clock, read through zoneinfo
    before = dt.datetime.now(dt.timezone.utc)
    got = real.fn(timezone="UTC")
    assert got in {time_result(before), time_result(before + dt.timedelta(minutes=1))}


def test_remember_hands_the_fact_on():
    tool, saved = make_remember()
    assert tool.fn(fact="  The user's dog is called  Rex. ") == "Saved to memory: The user's dog is called Rex."
    assert saved == ["The user's dog is called Rex."]
    with pytest.raises(ValueError, match="empty"):
        tool.fn(fact="   ")
    store = []
    tool, _ = make_remember(store.append)
    tool.fn(fact="The user lives in Oslo.")
    assert store == ["The user lives in Oslo."]
    tool, _ = make_remember(lambda fact: "Not saved: this is a temporary chat, memory is off.")
    assert tool.fn(fact="The user likes tea.") == "Not saved: this is a temporary chat, memory is off."


WORDS = "tea coffee dentist flight lisbon passport rent gym monday tuesday bring photos office gate seat".split()


def test_search_notes_ranking_equals_rank_bm25(tmp_path):
    rank_bm25 = require_peer("rank_bm25")
    rng = random.Random(1)
    for trial in range(20):
        folder = tmp_path / f"t{trial}"
        (folder / "sub").mkdir(parents=True)
        for f in range(rng.randrange(2, 6)):
            paras = [" ".join(rng.choices(WORDS, k=rng.randrange(1, 9))) for _ in range(rng.randrange(1, 4))]
            name = ("sub/" if f % 2 else "") + rng.choice(WORDS) + f"{f}.md"
            (folder / name).write_text("\n\n".join(paras), encoding="utf-8")
        index = NotesIndex(folder)
        index.refresh()
        docs = [NotesIndex.document(file, text) for file, text in index._notes]
        if len(docs) < 3:
            continue  # minichat.bm25 departs from BM25Okapi below three documents, on purpose (its docstring)
        query = " ".join(rng.choices(WORDS, k=rng.randrange(1, 4)))
        terms = query.split()
        scores = rank_bm25.BM25Okapi(docs).get_scores(terms)
        matching = [i for i, d in enumerate(docs) if set(terms) & set(d)]
        want = sorted(matching, key=lambda i: (-scores[i], i))[:3]
        got = index.search(query, k=3)
        assert [(n.file, n.text) for n in got] == [index._notes[i] for i in want]
        assert [n.score for n in got] == pytest.approx([scores[i] for i in want], abs=1e-9)


def test_notes_folder_handling(tmp_path):
    (tmp_path / "health.txt").write_text("Dentist on\nTuesday at 09:30.\n\n\nBring the card.\n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe dentist")
    (tmp_path / "image.png").write_text("dentist")
    index = NotesIndex(tmp_path)
    assert [(n.file, n.text) for n in index.search("dentist tuesday")] == [("health.txt", "Dentist on Tuesday at "
                                                                                          "09:30.")]
    assert index.search("") == [] and index.search("zebra") == []
    (tmp_path / "zoo.md").write_text("Zebra feeding at noon.")  # a note written during the chat is found
    assert [n.file for n in index.search("zebra")] == ["zoo.md"]
    shown = make_search_notes(tmp_path, show_files=True)
    assert shown.fn(query="zebra") == "1 note found:\n- Zebra feeding at noon. (zoo.md)"
    assert make_search_notes(tmp_path).fn(query="health") == (  # the file name matches both its notes; shorter first
        "2 notes found:\n- Bring the card.\n- Dentist on Tuesday at 09:30.")
    assert split_notes("a\nb\n\n c ") == ["a b", "c"]
    (tmp_path / "long.txt").write_text("Yak " * 200)
    assert make_search_notes(tmp_path, max_note_chars=20).fn(query="yak") == "1 note found:\n- Yak Yak Yak Yak..."
    out = Toolbox([make_search_notes(None)]).call("search_notes", {"query": "x"})
    assert not out.ok and "--notes DIR" in out.content
    with pytest.raises(FileNotFoundError, match="does not exist"):
        builtin_tools(notes=tmp_path / "missing")


def test_remember_into_the_memory_store(tmp_path):
    """The remember tool handed to minichat.memory's store: the fact is retrievable afterwards (the tool runs in the
    toolbox's worker thread, so this also checks the store can be written from there)."""
    from minichat.memory.recall import StoreMemory
    from minichat.memory.store import MemoryStore

    memory = StoreMemory(MemoryStore(tmp_path / "memory.db"), "alice")
    tb = Toolbox(builtin_tools(save_fact=memory.remember_tool))
    out = tb.call("remember", {"fact": "The user's dog is called Biscuit."})
    assert out.ok and out.content == "Saved to memory: The user's dog is called Biscuit."
    assert list(memory.retrieve("what is my dog called?", 3)) == ["The user's dog is called Biscuit."]
    temporary = Toolbox(builtin_tools(save_fact=StoreMemory(None, temporary=True).remember_tool))
    assert temporary.run("remember", {"fact": "The user likes tea."}).startswith("Not saved")


@pytest.mark.parametrize("said, saved", [
    ("The user's favourite tea is sencha;", "The user's favourite tea is sencha"),  # the built-in model's call
    ("The user's favourite tea is sencha;.", "The user's favourite tea is sencha."),
    ("The user's dog is called Rex .", "The user's dog is called Rex."),
    ("  The user lives in Oslo, Norway:\n", "The user lives in Oslo, Norway"),  # the comma inside stays
    ("The user's motto is: carpe diem, ", "The user's motto is: carpe diem"),
    ("The user asked: is it Friday?! ;", "The user asked: is it Friday?!"),
    ("The user likes ellipses... , ", "The user likes ellipses..."),
    ("The user's code is 4;2", "The user's code is 4;2"),
])
def test_remember_drops_stray_punctuation_at_the_end(said, saved):
    tool, kept = make_remember()
    assert tool.fn(fact=said) == f"Saved to memory: {saved}" and kept == [saved]


@pytest.mark.parametrize("fact", [";", " , : ", "...", "\t;\n"])
def test_remember_refuses_a_fact_of_punctuation_only(fact):
    with pytest.raises(ValueError, match="empty"):
        make_remember()[0].fn(fact=fact)


@given(st.text(st.sampled_from("ab Z9é;,:.!? \t\n-'")) | st.text())
def test_clean_fact_property(text):
    once = clean_fact(text)
    assert clean_fact(once) == once  # cleaning twice is cleaning once
    assert not once or once[-1] not in ";,:" and not once[-1].isspace()
    assert re.findall(r"\w+", once) == re.findall(r"\w+", text)  # the words are the same, in the same order
    assert once.rstrip(".!?") == " ".join(text.split()).rstrip(" ;,:.!?")  # only the end changed


def test_the_fact_is_saved_and_confirmed_as_cleaned(tmp_path):
    """Through the toolbox into minichat.memory's store, as the chat runs it: the stored memory and the result the
    model reads (and copies into its reply) both end in "sencha", not "sencha;"."""
    from minichat.memory.recall import StoreMemory
    from minichat.memory.store import MemoryStore

    memory = StoreMemory(MemoryStore(tmp_path / "memory.db"), "alice")
    out = Toolbox(builtin_tools(save_fact=memory.remember_tool)).call(
        "remember", {"fact": "The user's favourite tea is sencha;"})
    assert out.ok and out.content == "Saved to memory: The user's favourite tea is sencha"
    assert memory.everything() == ["The user's favourite tea is sencha"]
