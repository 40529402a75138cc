"""The chat exercises' checkers: right answers pass, typical mistakes fail, stubs are 'not done yet'."""
from minichat.chat.context import turns
from minichat.exercises.chat import check_common_prefix, check_fit_newest, check_turns


def test_correct_answers_pass():
    assert check_turns(turns).passed

    def fit(costs, room):
        n = 0
        for c in reversed(costs):
            if c > room:
                break
            room, n = room - c, n + 1
        return n
    assert check_fit_newest(fit).passed

    def lcp(a, b):
        n = 0
        while n < min(len(a), len(b)) and a[n] == b[n]:
            n += 1
        return n
    assert check_common_prefix(lcp).passed


def test_typical_mistakes_fail():
    def split_at_assistant(history):  # a turn per assistant message: separates a call from its result
        out = []
        for i, m in enumerate(history):
            if m.role == "assistant" or not out:
                out.append([])
            out[-1].append(i)
        return out
    assert not check_turns(split_at_assistant).passed

    def greedy_skip(costs, room):  # skips a big turn and keeps older ones: a hole in the conversation
        n = 0
        for c in reversed(costs):
            if c <= room:
                room, n = room - c, n + 1
        return n
    assert not check_fit_newest(greedy_skip).passed

    def oldest_first(costs, room):
        n = 0
        for c in costs:
            if c > room:
                break
            room, n = room - c, n + 1
        return n
    assert not check_fit_newest(oldest_first).passed

    def common_items(a, b):  # counts equal items anywhere, not a prefix
        return sum(x == y for x, y in zip(a, b))
    assert not check_common_prefix(common_items).passed


def test_stubs_are_not_done():
    def stub(*args):
        raise NotImplementedError
    for check in (check_turns, check_fit_newest, check_common_prefix):
        fb = check(stub)
        assert fb.not_done and not fb.passed and "not done yet" in str(fb)
