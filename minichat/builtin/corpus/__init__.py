"""The synthetic chat corpus the built-in model is trained and evaluated on (see synthetic.py).

    synthetic.py          conversations: the mix of kinds, chains, the system prompt, seeds and splits
    synthetic_pools.py    the word pools (a training and a held-out part) and the episode/probe records
    synthetic_talk.py     small talk, how an assistant works, refusals, look-alikes, copying drills
    synthetic_tools.py    the calculator, the clock and the notes (and the built-in tools' schemas)
    synthetic_memory.py   remembering facts and answering from memory
"""
from minichat.builtin.corpus.synthetic import (BUILTIN_TOOL_SCHEMAS, MIX, Conversation, generate_corpus,
                                               heldout_corpus)

__all__ = ["BUILTIN_TOOL_SCHEMAS", "Conversation", "MIX", "generate_corpus", "heldout_corpus"]
