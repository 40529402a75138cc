"""The synthetic chat corpus the built-in model is trained and evaluated on (see synthetic.py).

    synthetic.py          conversations: the mix of kinds, chains, the system prompt, seeds and splits
    synthetic_pools.py    the word pools (a training and a held-out part) and the episode/probe records
    synthetic_talk.py     small talk, how an assistant works, refusals, look-alikes, copying drills
    synthetic_tools.py    the calculator, the clock and the notes (and the built-in tools' schemas)
    synthetic_memory.py   remembering facts and answering from memory

v2 (the `builtin-v2` recipe, issue 19; see corpus_v2.py): sentence frames composed from parts, with whole frames,
topics and fact kinds held out, not only values:

    corpus_v2.py   the mix and the splits       frames_v2.py   openings x requests x shapes x clauses, noise
    vocab_v2.py    open vocabularies            tools_v2.py    calculator, clock, notes with words and signs
    memory_v2.py   remember, forget, recall     safety_v2.py   harm x target, and look-alikes in equal numbers
    talk_v2.py     small talk, out of scope, copying drills
"""
from minichat.builtin.corpus.synthetic import (BUILTIN_TOOL_SCHEMAS, MIX, Conversation, generate_corpus,
                                               heldout_corpus)

__all__ = ["BUILTIN_TOOL_SCHEMAS", "Conversation", "MIX", "generate_corpus", "heldout_corpus"]
