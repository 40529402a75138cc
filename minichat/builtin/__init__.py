"""The built-in chat model: the data it learns from, how it is trained, and how it is scored.

    corpus/       the synthetic conversations (talk, tools, memory, refusals) with disjoint held-out pools
    data.py       its vocabulary (BPE learned from the corpus) and its batches (conversations with the chat
                  template's assistant-only loss mask, packed into rows)
    recipe.py     `run_recipe`: `minichat train --preset NAME`, from nothing to a model folder
    evaluate.py   `evaluate`: held-out conversations of the generator: tool calls, answers, refusals, loss
    probes.py     the hand-written evaluation set, read through the public `Chat`: `minichat eval`'s primary
                  figure (its scoring module says what counts as right)
    commands.py   the `minichat train` and `minichat eval` subcommands

It sits above both `chat` (the template renders the conversations; the evaluation assembles prompts as the session
does) and `train` (the learning algorithm it runs), and below the CLI. Nothing is imported here, so that importing
one corpus module (notebook 00 reads the tool schemas) does not load the trainer.
"""
