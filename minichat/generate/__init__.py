"""Generation: from logits to the next token (sampling), and the loop that turns a prompt into a stream of tokens.

    sampling.py  SamplingConfig and the samplers: greedy, temperature, top-k, top-p, min-p, penalties, logit bias
    text.py      TextStream: UTF-8-safe text deltas with stop strings held back until they can no longer match
    loop.py      generate (KV cache), generate_batch (several prompts), generate_naive (the no-cache reference),
                 Step/Completion, and stream_text for the CLI
    toy.py       BigramModel: a count-based model honouring the same interface, for notebooks and tests

The loop knows token ids (and text through the tokenizer), never chat messages: the chat layer builds on it.
"""
from minichat.generate.loop import (Completion, LanguageModel, Step, collect, complete, generate, generate_batch,
                                    generate_naive, stream_text)
from minichat.generate.sampling import (SamplingConfig, apply_frequency_presence, apply_logit_bias,
                                        apply_repetition_penalty, apply_temperature, choose, greedy, log_softmax,
                                        min_p_filter, process_logits, sample, sampling_distribution, softmax,
                                        top_k_filter, top_logprobs, top_p_filter)
from minichat.generate.text import TextStream, holdback_length
from minichat.generate.toy import BigramModel

__all__ = ["BigramModel", "Completion", "LanguageModel", "SamplingConfig", "Step", "TextStream",
           "apply_frequency_presence", "apply_logit_bias", "apply_repetition_penalty", "apply_temperature", "choose",
           "collect", "complete", "generate", "generate_batch", "generate_naive", "greedy", "holdback_length",
           "log_softmax", "min_p_filter", "process_logits", "sample", "sampling_distribution", "softmax",
           "stream_text", "top_k_filter", "top_logprobs", "top_p_filter"]
