"""Training data: the assistant-only loss mask (hand-checked by decoding), parity with what the chat session renders,
packing, batch shapes/dtypes, exact resume, plain-text windows, the corpus tokenizer."""
from __future__ import annotations

import numpy as np
import pytest

from minichat.builtin.corpus.synthetic import generate_corpus
from minichat.builtin.corpus.synthetic_pools import LISTED_WORDS
from minichat.builtin.data import (CHAT_PATTERN, SPECIAL_TOKENS, Curriculum, chat_batches, masked_text,
                                   repeat_batches, train_chat_tokenizer)
from minichat.chat.template import ChatTemplate, ToolCall, assistant, message_body, system, tool_result, user
from minichat.config import ModelConfig
from minichat.model.transformer import Transformer, init_params
from minichat.tokenizer import train
from minichat.train.data import Batch, Batches, pack, text_batches, token_stream


@pytest.fixture(scope="module")
def corpus():
    return generate_corpus(240, seed=3)


@pytest.fixture(scope="module")
def tok(corpus):
    return train_chat_tokenizer(corpus[:150], 700)


CALL = ToolCall("calculator", {"expression": "2 + 3"}, "call_0")
SMALL = [system("Be brief."), user("What is 2 + 3?"), assistant("", [CALL]), tool_result(CALL, "5"),
         assistant("2 + 3 = 5."), user("Thanks!"), assistant("You're welcome!")]


# -- the loss mask -----------------------------------------------------------------------------------------------------

def test_mask_covers_exactly_the_assistant_spans(tok):
    ids, mask = ChatTemplate(tok).render_with_mask(SMALL)
    assert len(ids) == len(mask) and ids == ChatTemplate(tok).render(SMALL, add_generation_prompt=False)
    assert masked_text(tok, ids, mask) == [
        '<tool_call>{"name": "calculator", "arguments": {"expression": "2 + 3"}}</tool_call><|im_end|>',
        "2 + 3 = 5.<|im_end|>", "You're welcome!<|im_end|>"]
    # and what is not trained on: everything else, the assistant headers included
    unmasked = tok.decode([i for i, m in zip(ids, mask) if not m])
    assert unmasked == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nWhat is 2 + 3?<|im_end|>\n"
                        "<|im_start|>assistant\n\n<|im_start|>tool\n5<|im_end|>\n<|im_start|>assistant\n\n"
                        "<|im_start|>user\nThanks!<|im_end|>\n<|im_start|>assistant\n\n")


def test_read_marks_the_user_and_tool_text_only(tok):
    """render_with_mask(read=2): the assistant's spans keep 1; the text of user and tool messages (their role line,
    encoded with the body, and the <|im_end|> that closes each) gets 2; the system prompt and <|im_start|> stay 0."""
    template = ChatTemplate(tok)
    ids, mask = template.render_with_mask(SMALL, read=2)
    assert (ids, [min(m, 1) if m == 1 else 0 for m in mask]) == template.render_with_mask(SMALL)
    read = [i if m == 2 else None for i, m in zip(ids, mask)]
    runs, cur = [], []
    for i in read + [None]:
        if i is None and cur:
            runs.append(tok.decode(cur))
            cur = []
        elif i is not None:
            cur.append(i)
    assert runs == ["user\nWhat is 2 + 3?<|im_end|>", "tool\n5<|im_end|>", "user\nThanks!<|im_end|>"]


def test_prompt_weight_weighs_what_the_assistant_reads(corpus, tok):
    """chat_batches(prompt_weight=w): targets weigh 1 on the assistant's tokens, w on the user's and tools' text, 0
    elsewhere; the rows and the order are those of the assistant-only batches."""
    plain = chat_batches(tok, corpus[:60], batch_size=3, seq_len=1024, seed=4)
    both = chat_batches(tok, corpus[:60], batch_size=3, seq_len=1024, seed=4, prompt_weight=0.25)
    assert (plain.rows == both.rows).all() and plain.trained_tokens == both.trained_tokens and both.cut == 0
    for _ in range(3):
        (i1, t1, m1), (i2, t2, m2) = next(plain), next(both)
        assert (i1 == i2).all() and (t1 == t2).all() and m2.dtype == np.float32
        assert set(np.unique(m2)) == {0.0, 0.25, 1.0} and ((m2 == 1.0) == (m1 == 1.0)).all()
    weights = np.where(both.masks[:, 1:] == 2, 0.25, 0.0)  # what the user and tools wrote, from the levels
    reads = sum(sum(m == 2 for m in ChatTemplate(tok).render_with_mask(c.messages, 2)[1]) for c in corpus[:60])
    assert int((weights > 0).sum()) == reads  # nothing the assistant reads is lost in packing
    with pytest.raises(ValueError, match="prompt_weight"):
        chat_batches(tok, corpus[:5], batch_size=1, seq_len=512, prompt_weight=1.5)


def test_mask_never_touches_other_roles(corpus, tok):
    template = ChatTemplate(tok)
    im_start, im_end = tok.special_tokens["<|im_start|>"], tok.special_tokens["<|im_end|>"]
    for conv in corpus:
        ids, mask = map(np.asarray, template.render_with_mask(conv.messages))
        runs = masked_text(tok, ids, mask)
        assert runs == [message_body(m) + "<|im_end|>" for m in conv.messages if m.role == "assistant"]
        assert int(mask[ids == im_start].sum()) == 0
        assert int(mask[ids == im_end].sum()) == len(runs)


def test_training_ids_equal_what_the_chat_session_feeds_the_model(corpus, tok):
    """Run a real Chat turn with the conversation's tool schemas and memory snippets plugged in, record the prompt
    the model receives, and compare it with the training rendering of the same conversation.

    One departure, on purpose: the session carries memory snippets in a note just before the user message (so the
    system prompt, the start of the KV cache, stays the same across turns), where the corpus has them in the system
    prompt. The rest, the system prompt's instructions and tool schemas included, is the same ids."""
    from minichat.chat.context import memory_note, system_text
    from minichat.chat.session import Chat

    conv = next(c for c in generate_corpus(40, seed=9, kinds=["memory"]) if c.tools)
    cfg = ModelConfig.llama(vocab_size=tok.n_vocab, n_ctx=2048, n_embd=16, n_layer=1, n_head=2, n_kv_head=1,
                            n_inner=32)
    model = Transformer(cfg, init_params(cfg, np.random.default_rng(0)), use_numba=False)
    seen = []
    real = model.forward
    model.forward = lambda ids, cache=None, lengths=None, **kw: (seen.append(np.asarray(ids).copy()),
                                                                 real(ids, cache, lengths, **kw))[1]

    class Tools:
        def schemas(self):
            return conv.tools

        def run(self, name, arguments):
            return "unused"

    class Memory:
        def retrieve(self, query, k):
            return conv.memory

    # a model built here has no profile, so the session would default to no instructions: give the corpus's
    chat = Chat(model, tok, instructions=conv.instructions, tools=Tools(), memory=Memory(), max_new_tokens=1)
    list(chat.send(conv.history[0].content))
    prompt = seen[0][0].tolist()
    template = ChatTemplate(tok)
    assert conv.memory and conv.messages[0].content == system_text(conv.instructions, conv.memory, conv.tools)
    as_session = [system(system_text(conv.instructions, (), conv.tools)), memory_note(conv.memory), *conv.messages[1:3]]
    ids, mask = map(np.asarray, template.render_with_mask(as_session))
    assert prompt == ids[: len(prompt)].tolist()  # system (tools), memory note and user, then the reply's header
    assert prompt[-len(template.generation_prompt()):] == template.generation_prompt()
    assert not mask[: len(prompt)].any()
    assert masked_text(tok, ids[len(prompt):], mask[len(prompt):]) == [conv.messages[2].content + "<|im_end|>"]


# -- packing and batches -----------------------------------------------------------------------------------------------

def _seq(n: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(start, start + n), np.ones(n, dtype=np.uint8)


def test_pack_first_fit_by_hand():
    seqs = [_seq(5, 10), _seq(4, 20), _seq(3, 30), _seq(2, 40), _seq(11, 50)]
    rows, masks, cut = pack(seqs, seq_len=7, pad_id=0, open_rows=2)  # rows of 8 tokens
    assert cut == 1  # the 11-token sequence is cut to 8
    got = sorted(tuple(r) for r in rows.tolist())
    assert got == sorted([(10, 11, 12, 13, 14, 30, 31, 32), (20, 21, 22, 23, 40, 41, 0, 0),
                          (50, 51, 52, 53, 54, 55, 56, 57)])
    for r, m in zip(rows, masks):
        assert ((r == 0) == (m == 0)).all()
    assert rows.dtype == np.int32 and masks.dtype == np.uint8


def test_chat_batches_shapes_dtypes_and_targets(corpus, tok):
    b = chat_batches(tok, corpus, batch_size=4, seq_len=1024, seed=1)
    batch = next(b)
    assert isinstance(batch, Batch)
    ids, targets, mask = batch
    assert ids.shape == targets.shape == mask.shape == (4, 1024)
    assert ids.dtype == np.int64 and targets.dtype == np.int64 and mask.dtype == np.float32
    assert (ids[:, 1:] == targets[:, :-1]).all()
    assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0
    # a target counts exactly when it is an assistant token: check against the per-conversation masks
    encoded = [ChatTemplate(tok).render_with_mask(c.messages) for c in corpus]
    assert b.cut == 0 and b.rows.shape[1] == 1025
    assert b.trained_tokens == sum(sum(m) for _, m in encoded)  # no assistant token lost in packing
    assert (b.rows != tok.special_tokens["<|endoftext|>"]).sum() == sum(len(i) for i, _ in encoded)
    assert not b.masks[:, 0].any()  # a row starts with a conversation's <|im_start|>system


def test_batches_resume_exactly_across_epochs(corpus, tok):
    a = chat_batches(tok, corpus[:30], batch_size=3, seq_len=512, seed=7)
    assert a.steps_per_epoch < 12  # so the run below wraps into later epochs
    first = [next(a) for _ in range(7)]
    state = a.state()
    rest = [next(a) for _ in range(25)]
    b = chat_batches(tok, corpus[:30], batch_size=3, seq_len=512, seed=7)
    b.restore(state)
    for x, y in zip(rest, (next(b) for _ in range(25))):
        for u, v in zip(x, y):
            assert np.array_equal(u, v)
    for i, x in enumerate(first):
        assert all(np.array_equal(u, v) for u, v in zip(x, b.batch(i)))
    # every row is visited once per epoch
    n = a.n_rows
    seen = np.concatenate([a._perm(0), a._perm(1)])
    assert sorted(seen[:n]) == list(range(n)) and sorted(seen[n:]) == list(range(n))
    with pytest.raises(ValueError, match="batch_size"):
        chat_batches(tok, corpus[:30], batch_size=4, seq_len=512, seed=7).restore(state)
    other = chat_batches(tok, corpus[:30], batch_size=3, seq_len=512, seed=8)
    assert not np.array_equal(other.batch(0).ids, a.batch(0).ids)


def test_curriculum_switches_data_at_its_step_and_resumes_exactly(corpus, tok):
    def phases():
        first = chat_batches(tok, corpus[:30], batch_size=3, seq_len=512, seed=7)
        then = chat_batches(tok, corpus[30:80], batch_size=3, seq_len=512, seed=9)
        return first, Curriculum(first, 5, then), then

    first, c, then = phases()
    got = [next(c) for _ in range(12)]
    for i in range(5):  # steps 0-4: the first data's own steps 0-4
        assert all(np.array_equal(u, v) for u, v in zip(got[i], first.batch(i)))
    for i in range(5, 12):  # then the second's steps 0.., not its 5..
        assert all(np.array_equal(u, v) for u, v in zip(got[i], then.batch(i - 5)))
    _, c2, _ = phases()
    c2.restore(c.state())
    for x in (next(c) for _ in range(4)):
        assert all(np.array_equal(u, v) for u, v in zip(x, next(c2)))
    _, _, other_then = phases()
    with pytest.raises(ValueError, match="first data"):
        Curriculum(first, 4, other_then).restore(c.state())
    short = chat_batches(tok, corpus[:30], batch_size=6, seq_len=256, seed=7)  # another shape: shorter rows first
    mixed = Curriculum(short, 2, then)
    assert [next(mixed).ids.shape for _ in range(3)] == [(6, 256), (6, 256), (3, 512)]
    with pytest.raises(ValueError, match="non-negative"):
        Curriculum(first, -1, then)


def test_repeat_batches_train_only_on_the_second_copy(tok):
    b = repeat_batches(tok, 12, 200, 4, seed=5, lengths=(3, 9))
    sep = tok.encode_special("<|endoftext|>")
    specials = {tok.encode_special(t) for t in SPECIAL_TOKENS}
    for row, mask in zip(b.rows, b.masks):
        pieces, marks, cur, cm = [], [], [], []
        for i, m in zip(row.tolist(), mask.tolist()):
            cur.append(i)
            cm.append(m)
            if i == sep:
                pieces.append(cur[:-1])
                marks.append(cm)
                cur, cm = [], []
        for k in range(0, len(pieces) - 1, 2):  # whole pairs: the string, then the same string again
            assert pieces[k] == pieces[k + 1] and 3 <= len(pieces[k]) <= 9
            assert not specials & set(pieces[k])
            assert set(marks[k]) == {0} and set(marks[k + 1]) == {1}  # loss on the copy and its closing sep only
        assert len(row) == 201
    assert not np.array_equal(b.rows, repeat_batches(tok, 12, 200, 4, seed=6, lengths=(3, 9)).rows)


def test_one_pass_visits_every_row_once(corpus, tok):
    b = chat_batches(tok, corpus[:40], batch_size=4, seq_len=512, seed=2)
    got = list(b.one_pass())
    assert b.step == 0 and sum(len(x.ids) for x in got) == b.n_rows
    assert np.array_equal(np.concatenate([x.ids for x in got]), b.rows[:, :-1])
    assert sum(float(x.mask.sum()) for x in got) == b.trained_tokens


def test_text_batches_are_windows_of_the_stream(tok, tmp_path):
    (tmp_path / "a.txt").write_text("The cat sat on the mat. " * 40, encoding="utf-8")
    (tmp_path / "b.md").write_text("Numbers 12345 and 678 go digit by digit. " * 30, encoding="utf-8")
    b = text_batches(tok, [tmp_path], batch_size=2, seq_len=16, seed=0, paths=True)
    stream = token_stream(tok, [(tmp_path / "a.txt").read_text(), (tmp_path / "b.md").read_text()])
    eot = tok.special_tokens["<|endoftext|>"]
    assert (stream == eot).sum() == 2
    for k in range(b.n_rows):
        assert b.rows[k].tolist() == stream[16 * k: 16 * k + 17].tolist()
    ids, targets, mask = b.batch(3)
    assert ids.shape == (2, 16) and mask.dtype == np.float32 and mask.all()
    with pytest.raises(ValueError, match="fewer than one window"):
        text_batches(tok, ["hi"], batch_size=1, seq_len=64)
    with pytest.raises(ValueError, match="UTF-8"):
        (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
        text_batches(tok, [tmp_path / "bad.txt"], batch_size=1, seq_len=4, paths=True)


def test_batches_validate_their_input():
    with pytest.raises(ValueError):
        Batches(np.zeros((0, 5), np.int32), np.zeros((0, 5), np.uint8), 2)
    with pytest.raises(ValueError):
        Batches(np.zeros((3, 5), np.int32), np.zeros((3, 4), np.uint8), 2)
    with pytest.raises(ValueError):
        Batches(np.zeros((3, 5), np.int32), np.zeros((3, 5), np.uint8), 0)
    with pytest.raises(ValueError, match="every mask level"):  # a level without a weight
        Batches(np.zeros((3, 5), np.int32), np.full((3, 5), 2, np.uint8), 1, weights=(0.0, 1.0))
    with pytest.raises(ValueError, match="every mask level"):
        Batches(np.zeros((3, 5), np.int32), np.zeros((3, 5), np.uint8), 1, weights=(0.0, -1.0))


# -- the tokenizer -----------------------------------------------------------------------------------------------------

def test_chat_tokenizer_special_tokens_size_and_digits(corpus, tok):
    assert tok.n_vocab == 700
    assert list(tok.special_tokens) == list(SPECIAL_TOKENS)
    assert set(tok.special_tokens.values()) == {697, 698, 699}
    ids = tok.encode_ordinary("Flight 4417 at 19:05 costs 2310 euros")
    digits = [tok.decode([i]) for i in ids if any(ch.isdigit() for ch in tok.decode([i]))]
    assert digits == list("441719052310")  # one digit per token: unseen numbers tokenize like seen ones
    assert tok.pattern == CHAT_PATTERN
    assert tok.decode(tok.encode("<|im_start|>user\nhi<|im_end|>", allowed_special="all")) == \
        "<|im_start|>user\nhi<|im_end|>"
    # the corpus's frequent words became single tokens
    assert len(tok.encode_ordinary("assistant")) == 1


def test_chat_tokenizer_accepts_plain_strings():
    tok = train_chat_tokenizer(["hello world " * 20, "goodbye world " * 20], 270)
    assert tok.n_vocab <= 270 and "<|im_end|>" in tok.special_tokens
    with pytest.raises(ValueError):
        ChatTemplate(train("abc abc", 260))  # no ChatML tokens: the template refuses it


def test_heldout_answers_only_need_tokens_the_training_targets_use():
    """A token that is never a training target cannot be written by the trained model (its tied output row is only
    ever pushed down), so held-out names must break into pieces the training replies use. Invented training names
    and scrambled copying drills see to it (without them ~2 % of held-out reply tokens were never targets)."""
    train_convs = generate_corpus(2000, seed=5)
    tok = train_chat_tokenizer(train_convs[:1000], 1000)
    template = ChatTemplate(tok)
    seen = np.zeros(tok.n_vocab, bool)
    for c in train_convs:
        ids, mask = map(np.asarray, template.render_with_mask(c.messages))
        seen[ids[mask > 0]] = True
    unseen = total = 0
    for c in generate_corpus(300, split="heldout"):
        ids, mask = map(np.asarray, template.render_with_mask(c.messages))
        t = ids[mask > 0]
        unseen += int((~seen[t]).sum())
        total += len(t)
    assert unseen / total < 0.005, (unseen, total)


def test_excluded_words_get_no_token_of_their_own_but_still_round_trip():
    text = "Priya met Priya and Priyanka. " * 40 + "the cat sat on the mat. " * 40
    plain = train_chat_tokenizer([text], 300)
    cut = train_chat_tokenizer([text], 300, exclude=["Priya"])
    assert len(plain.encode_ordinary(" Priya")) == 1  # frequent enough to become one token
    assert len(cut.encode_ordinary(" Priya")) > 1  # cut out of the merge text: pieces only
    assert len(cut.encode_ordinary(" Priyanka")) < len(" Priyanka")  # whole words only: "Priyanka" still merged
    assert cut.decode(cut.encode_ordinary("Priya met Priyanka.")) == "Priya met Priyanka."


def test_recipe_vocabulary_has_no_listed_name_as_one_token():
    corpus = generate_corpus(400, seed=6)
    plain = train_chat_tokenizer(corpus, 2000)
    assert sum(len(plain.encode_ordinary(" " + w)) == 1 for w in LISTED_WORDS) > 20  # without exclusion: many
    tok = train_chat_tokenizer(corpus, 2000, exclude=LISTED_WORDS)
    assert all(len(tok.encode_ordinary(" " + w)) > 1 for w in LISTED_WORDS if len(w) > 3)
