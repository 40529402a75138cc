"""Configuration: frozen dataclasses with one comment per field, and named presets.

`ModelConfig` describes the shape of a decoder-only transformer from either family minichat runs:

    GPT-2 (Radford et al. 2019)      learned positions, LayerNorm, GELU-tanh MLP, multi-head attention, biases,
                                     output head tied to the token embedding
    Llama (Touvron et al. 2023)      rotary positions (RoPE) with a base theta, RMSNorm, SwiGLU MLP, grouped-query
                                     attention, no biases, tied or separate output head

and sinusoidal positions (Vaswani et al. 2017) as a teaching option. The two families are not two code paths: each
is a choice along a few independent axes (`positions`, `norm`, `mlp`, `n_kv_head`, `bias`, `tie_embeddings`), so
a "GPT-2 with RoPE" is one argument away. `ModelConfig.gpt2(...)` / `ModelConfig.llama(...)` fill in the family's
defaults.

The other components' configs live here too, so there is one configuration path per component: `TrainConfig`
(minichat/train), `SamplingConfig` (how each next token is picked) and `ChatConfig` (the chat loop's limits). They
share one `replace` / `to_dict` / `from_dict` and one set of range checks (`_Config`, `_integer`, `_number`).

This module imports nothing of minichat (everything else may import it), so invalid values raise plain ValueError.
What it leaves out: RoPE scaling variants (linear/NTK/YaRN), sliding-window attention, mixtures of experts.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from numbers import Integral, Real
from typing import Any, ClassVar


def _integer(owner: str, name: str, value: Any, lo: int = 1, optional: bool = False) -> int | None:
    """Check that `value` is a whole number >= lo (None allowed when optional); return it as a plain int."""
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral) or value < lo:
        what = "a positive integer" if lo == 1 else f"an integer >= {lo}"
        raise ValueError(f"{owner}.{name} must be {what}{' or None' if optional else ''}, not {value!r}")
    return int(value)


def _finite(value: Real) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _number(owner: str, name: str, value: Any, lo: float = -math.inf, hi: float = math.inf,
            lo_open: bool = False) -> float:
    """Check that `value` is a finite number in [lo, hi] (or (lo, hi]); return it as a plain Python float (a NumPy
    float64 scalar would promote float32 arrays it touches)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not _finite(value):
        raise ValueError(f"{owner}.{name} must be a finite number, not {value!r:.40}")
    if value < lo or value > hi or (lo_open and value == lo):
        raise ValueError(f"{owner}.{name}={value!r} is out of range: it must lie in "
                         f"{'(' if lo_open else '['}{lo}, {hi}]")
    return float(value)


class _Config:
    """What every config dataclass shares: copy with changes, plain JSON-ready values, and back (strictly)."""

    NESTED: ClassVar[dict[str, type]] = {}  # field name -> config class, for configs inside configs

    def _set(self, name: str, value: Any) -> None:  # frozen dataclasses: store a checked, normalised value
        object.__setattr__(self, name, value)

    def replace(self, **changes: Any):
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values, nested configs as nested dicts."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]):
        """The inverse of `to_dict`; an unknown key is an error (a typo should not silently become a default)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} field(s) {unknown}; known fields are {sorted(known)}")
        return cls(**{k: cls.NESTED[k].from_dict(v) if k in cls.NESTED and isinstance(v, Mapping) else v
                      for k, v in d.items()})

POSITIONS = ("learned", "sinusoidal", "rope")
NORMS = ("layernorm", "rmsnorm")
MLPS = ("gelu", "swiglu")


@dataclass(frozen=True)
class ModelConfig(_Config):
    """The hyper-parameters of one transformer. `None` fields are resolved from the others on construction."""

    vocab_size: int = 50257  # V: token ids the embedding table and the output head cover
    n_ctx: int = 1024  # longest sequence the model handles (rows of wpe, length of the RoPE tables)
    n_embd: int = 768  # C: width of the residual stream
    n_layer: int = 12  # L: number of transformer blocks
    n_head: int = 12  # H: query heads per attention layer
    n_kv_head: int | None = None  # H_kv: key/value heads; None = n_head (multi-head); fewer = grouped-query attention
    head_dim: int | None = None  # D: width of one head; None = n_embd // n_head
    n_inner: int | None = None  # hidden width of the MLP; None = 4 * n_embd
    positions: str = "learned"  # "learned" (a trained table, GPT-2), "sinusoidal" (fixed, Vaswani), "rope" (Llama)
    rope_theta: float = 10000.0  # RoPE base: pair i rotates at angle pos / theta^(2i/D) (Llama 2: 1e4, SmolLM2: 1e5)
    norm: str = "layernorm"  # "layernorm" (centre, scale, shift: GPT-2) or "rmsnorm" (scale only: Llama)
    norm_eps: float = 1e-5  # added to the variance inside the norm so an all-zero row does not divide by zero
    mlp: str = "gelu"  # "gelu": c_proj(gelu_tanh(c_fc x)); "swiglu": c_proj(silu(c_gate x) * c_fc x)
    bias: bool = True  # every linear layer (and LayerNorm) has a bias vector (GPT-2) or none (Llama)
    tie_embeddings: bool = True  # the output head reuses wte (logits = x @ wte.T) instead of its own lm_head
    smear_keys: bool = False  # each key also carries the key before it (Olsson et al. 2022; layers.smear_keys): an
    #                           experiment of the built-in model's recipes, in no published checkpoint

    def __post_init__(self) -> None:
        # Resolve the derived defaults first (frozen: go through object.__setattr__), then validate everything.
        if self.n_kv_head is None:
            object.__setattr__(self, "n_kv_head", self.n_head)
        if self.head_dim is None and self.n_head > 0:
            object.__setattr__(self, "head_dim", self.n_embd // self.n_head)
        if self.n_inner is None:
            object.__setattr__(self, "n_inner", 4 * self.n_embd)
        for name in ("vocab_size", "n_ctx", "n_embd", "n_layer", "n_head", "n_kv_head", "head_dim", "n_inner"):
            self._set(name, _integer("ModelConfig", name, getattr(self, name)))
        if self.n_head % self.n_kv_head:
            raise ValueError(f"n_head ({self.n_head}) must be a multiple of n_kv_head ({self.n_kv_head}): each "
                             f"key/value head serves an equal group of query heads")
        if self.positions not in POSITIONS:
            raise ValueError(f"ModelConfig.positions must be one of {POSITIONS}, not {self.positions!r}")
        if self.norm not in NORMS:
            raise ValueError(f"ModelConfig.norm must be one of {NORMS}, not {self.norm!r}")
        if self.mlp not in MLPS:
            raise ValueError(f"ModelConfig.mlp must be one of {MLPS}, not {self.mlp!r}")
        if self.positions == "rope" and self.head_dim % 2:
            raise ValueError(f"RoPE rotates pairs of dimensions, so head_dim must be even (got {self.head_dim})")
        if self.positions == "sinusoidal" and self.n_embd % 2:
            raise ValueError(f"sinusoidal positions pair sin/cos dimensions, so n_embd must be even "
                             f"(got {self.n_embd})")
        for name in ("rope_theta", "norm_eps"):
            self._set(name, _number("ModelConfig", name, getattr(self, name), lo=0.0, lo_open=True))
        if not isinstance(self.smear_keys, bool):
            raise ValueError(f"ModelConfig.smear_keys must be true or false, not {self.smear_keys!r}")

    @property
    def n_group(self) -> int:
        """Query heads sharing one key/value head (1 for multi-head attention)."""
        return self.n_head // self.n_kv_head

    @property
    def family(self) -> str:
        """"llama" for RMSNorm+SwiGLU+RoPE models, "gpt2" for LayerNorm+GELU ones, else "custom"."""
        if (self.norm, self.mlp, self.positions) == ("rmsnorm", "swiglu", "rope"):
            return "llama"
        if (self.norm, self.mlp) == ("layernorm", "gelu") and self.positions != "rope":
            return "gpt2"
        return "custom"

    @classmethod
    def gpt2(cls, **overrides: Any) -> ModelConfig:
        """A GPT-2-family config (the 124M model unless overridden)."""
        return cls(**overrides)

    @classmethod
    def llama(cls, **overrides: Any) -> ModelConfig:
        """A Llama-family config: RoPE, RMSNorm, SwiGLU, no biases (sizes must be given or are GPT-2's)."""
        base = dict(positions="rope", norm="rmsnorm", mlp="swiglu", bias=False)
        return cls(**{**base, **overrides})



PRESETS: dict[str, ModelConfig] = {
    # GPT-2 small, the 124M-parameter model of the paper and of HF's "gpt2".
    "gpt2-124m": ModelConfig.gpt2(),
    # SmolLM2-135M (HuggingFaceTB): Llama architecture, 9 query heads sharing 3 key/value heads, tied head.
    "smollm2-135m": ModelConfig.llama(vocab_size=49152, n_ctx=8192, n_embd=576, n_layer=30, n_head=9, n_kv_head=3,
                                      n_inner=1536, rope_theta=100000.0, tie_embeddings=True),
    # Tiny models for tests and notebooks: they run in milliseconds.
    "tiny-gpt2": ModelConfig.gpt2(vocab_size=128, n_ctx=64, n_embd=32, n_layer=2, n_head=4),
    "tiny-llama": ModelConfig.llama(vocab_size=128, n_ctx=64, n_embd=32, n_layer=2, n_head=4, n_kv_head=2,
                                    n_inner=64, tie_embeddings=False),
}


# -- training ----------------------------------------------------------------------------------------------------------

SCHEDULES = ("cosine", "linear", "constant")


@dataclass(frozen=True)
class TrainConfig(_Config):
    """How to train a model from scratch (minichat/train): optimiser, schedule, batch shape, logging, checkpoints.

    One optimiser *step* consumes `grad_accum` micro-batches of `batch_size` x `seq_len` tokens; the loss is the mean
    over every unmasked target of all of them. The learning rate warms up linearly for `warmup_steps` and then decays
    to `min_lr` along the chosen schedule by step `steps`.
    """

    model: ModelConfig | None = None  # the architecture to build when training from scratch (None: the caller's model)
    steps: int = 1000  # optimiser steps in the whole run (the schedule's length)
    batch_size: int = 8  # B: sequences per micro-batch (the batch source is built with it)
    seq_len: int = 256  # T: tokens per sequence; at most model.n_ctx
    grad_accum: int = 1  # micro-batches whose gradients are summed before each optimiser step
    lr: float = 3e-3  # peak learning rate, reached at the end of warmup
    min_lr: float = 3e-4  # learning rate at the last step (cosine/linear decay end point)
    warmup_steps: int = 100  # steps of linear warmup from lr / warmup_steps up to lr
    schedule: str = "cosine"  # after warmup: "cosine" (half a cosine wave), "linear", or "constant" (stays at lr)
    beta1: float = 0.9  # AdamW: decay rate of the running mean of gradients
    beta2: float = 0.95  # AdamW: decay rate of the running mean of squared gradients
    eps: float = 1e-8  # AdamW: added to sqrt(v) so a parameter with tiny gradients does not take huge steps
    weight_decay: float = 0.1  # AdamW's decoupled decay: each step p -= lr * weight_decay * p (matrices only)
    decay_embeddings: bool = False  # also decay wte / wpe / lm_head (nanoGPT: no; some recipes: yes)
    decay_norms_and_biases: bool = False  # also decay norm gains and bias vectors (almost never wanted)
    grad_clip: float = 1.0  # rescale the gradient so its global L2 norm is at most this; 0 turns clipping off
    init_std: float = 0.02  # std of the random initial weights (GPT-2's 0.02; residual projections get / sqrt(2L))
    seed: int = 0  # seeds the initial weights and the batch sampling; the same seed gives the same run
    log_every: int = 10  # print a progress line every this many steps (every step goes into the log file)
    eval_every: int = 100  # compute the eval loss every this many steps (0: never), and after the last one
    eval_batches: int = 8  # micro-batches drawn from the eval source for each eval loss
    checkpoint_every: int = 500  # save a resumable checkpoint every this many steps (0: only at the end)

    NESTED: ClassVar[dict[str, type]] = {"model": ModelConfig}

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "seq_len", "grad_accum", "log_every", "eval_batches"):
            self._set(name, _integer("TrainConfig", name, getattr(self, name)))
        for name in ("warmup_steps", "eval_every", "checkpoint_every", "seed"):
            self._set(name, _integer("TrainConfig", name, getattr(self, name), lo=0))
        if self.schedule not in SCHEDULES:
            raise ValueError(f"TrainConfig.schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if not (self.lr > 0 and 0 <= self.min_lr <= self.lr):
            raise ValueError(f"need lr > 0 and 0 <= min_lr <= lr (got lr={self.lr}, min_lr={self.min_lr})")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1 and self.eps > 0):
            raise ValueError(f"AdamW needs 0 <= beta1, beta2 < 1 and eps > 0 (got {self.beta1}, {self.beta2}, "
                             f"{self.eps})")
        if self.weight_decay < 0 or self.grad_clip < 0 or self.init_std <= 0:
            raise ValueError(f"weight_decay and grad_clip must be >= 0 and init_std > 0 (got {self.weight_decay}, "
                             f"{self.grad_clip}, {self.init_std})")
        if self.model is not None and self.seq_len > self.model.n_ctx:
            raise ValueError(f"seq_len {self.seq_len} exceeds the model's context n_ctx={self.model.n_ctx}")

    @property
    def tokens_per_step(self) -> int:
        """Tokens (masked or not) fed through the model per optimiser step."""
        return self.batch_size * self.seq_len * self.grad_accum



TRAIN_PRESETS: dict[str, TrainConfig] = {
    # The built-in chat model: 3.9M parameters, llama-style (RoPE, RMSNorm, SwiGLU, 4 query / 2 key-value heads of 64),
    # tied head. Measured one-thread CPU cost per 4096-token step (B=8, T=512): 6 layers (5.3M) 2.3 s; GPT-2-style
    # 256x6 (5.9M) 3.0 s; these 4 layers 1.9 s; 320x5 (7.0M) 2.8 s. On two cores: 6 layers ~2,850 tokens/s, 4 layers
    # ~4,500. Heads of 64 rather than 8 of 32 (same cost): a head that copies a word from the context passes it through
    # its value/output product, of rank head_dim; at 32 the model wrote a word of the same kind instead (July ->
    # August, coral -> amber).
    # The recipe (minichat/builtin/recipe.py) sets the number of steps.
    "builtin": TrainConfig(
        model=ModelConfig.llama(vocab_size=4096, n_ctx=512, n_embd=256, n_layer=4, n_head=4, n_kv_head=2,
                                n_inner=672, tie_embeddings=True),
        steps=2000, batch_size=8, seq_len=512, lr=3e-3, min_lr=3e-4, warmup_steps=100, eval_every=200,
        checkpoint_every=200),
    # A few seconds on a laptop: tests, notebooks, smoke runs.
    "tiny": TrainConfig(model=PRESETS["tiny-llama"], steps=100, batch_size=8, seq_len=32, lr=1e-2, min_lr=1e-3,
                        warmup_steps=10, eval_every=50, eval_batches=2, checkpoint_every=50),
}


# -- sampling and the chat loop ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SamplingConfig(_Config):
    """How to pick each next token (minichat/generate/sampling.py). The defaults sample from the model's own
    distribution, unchanged."""

    temperature: float = 1.0  # 0 = greedy (argmax); < 1 sharper, > 1 flatter
    top_k: int = 0  # keep the k most likely tokens; 0 = off
    top_p: float = 1.0  # keep the smallest set with mass >= top_p; 1.0 = off
    min_p: float = 0.0  # keep tokens with prob >= min_p * max prob; 0.0 = off
    repetition_penalty: float = 1.0  # > 1 discourages tokens seen in prompt or output (HF convention); 1.0 = off
    frequency_penalty: float = 0.0  # subtracted once per earlier occurrence in the output (OpenAI); 0.0 = off
    presence_penalty: float = 0.0  # subtracted once if the token occurred in the output at all (OpenAI); 0.0 = off
    logit_bias: Mapping[int, float] = field(default_factory=dict, hash=False)  # token id -> added to its logit;
    #                                                                          -inf bans it (copied; read-only)
    logprobs: int | None = None  # None: no log-probs; n >= 0: the chosen token's log-prob and the n most likely
    seed: int | None = None  # seeds the random generator (the one place randomness is seeded); None = fresh entropy

    def __post_init__(self) -> None:
        own = "SamplingConfig"
        self._set("temperature", _number(own, "temperature", self.temperature, 0.0))
        self._set("top_p", _number(own, "top_p", self.top_p, 0.0, 1.0, lo_open=True))
        self._set("min_p", _number(own, "min_p", self.min_p, 0.0, 1.0))
        self._set("repetition_penalty", _number(own, "repetition_penalty", self.repetition_penalty, 0.0,
                                                lo_open=True))
        self._set("frequency_penalty", _number(own, "frequency_penalty", self.frequency_penalty))
        self._set("presence_penalty", _number(own, "presence_penalty", self.presence_penalty))
        self._set("top_k", _integer(own, "top_k", self.top_k, lo=0))
        self._set("logprobs", _integer(own, "logprobs", self.logprobs, lo=0, optional=True))
        self._set("seed", _integer(own, "seed", self.seed, lo=0, optional=True))
        if not isinstance(self.logit_bias, Mapping):
            raise ValueError(f"logit_bias must be a mapping token id -> bias, not {type(self.logit_bias).__name__}")
        bias = {}
        for k, v in self.logit_bias.items():
            if isinstance(k, bool) or not isinstance(k, Integral) or k < 0:
                raise ValueError(f"logit_bias keys must be token ids (integers >= 0), not {k!r}")
            if isinstance(v, bool) or not isinstance(v, Real) or not (math.isfinite(v) or v == -math.inf):
                raise ValueError(f"logit_bias[{k}] must be a finite number or -inf (to ban the token), not {v!r}")
            bias[int(k)] = float(v)
        self._set("logit_bias", bias)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def uses_penalties(self) -> bool:
        return self.repetition_penalty != 1.0 or self.frequency_penalty != 0.0 or self.presence_penalty != 0.0


@dataclass(frozen=True)
class ChatConfig(_Config):
    """The chat loop's limits (minichat/chat/session.py): how much it may read, write and call per turn."""

    context_window: int | None = None  # tokens the chat may use; None = the model's n_ctx (never more than it)
    max_new_tokens: int = 256  # longest reply
    min_new_tokens: int | None = 64  # room always kept free for the reply when the context is trimmed; the prompt
    #                                  may use the rest of max_new_tokens' room (small windows); None = all of it
    max_tool_rounds: int = 4  # tool call -> result -> continue cycles per turn before ending with "tool_limit"
    memory_k: int = 3  # memory snippets retrieved per message
    summarize: bool = False  # stand a one-line summary in for dropped old turns (extractive: see chat/context.py)
    guard_instructions: bool = False  # add the guard's policy text to the system prompt (the alignment layer). Off
    #   by default: small models answer worse with it (SmolLM2-135M turns "hi" into repeated talk of safety; the
    #   built-in model's alignment is trained in and the text would take 120 tokens of its window)
    sampling: SamplingConfig = field(default_factory=lambda: SamplingConfig(temperature=0.0))  # greedy by default

    NESTED: ClassVar[dict[str, type]] = {"sampling": SamplingConfig}

    def __post_init__(self) -> None:
        self._set("context_window", _integer("ChatConfig", "context_window", self.context_window, optional=True))
        self._set("max_new_tokens", _integer("ChatConfig", "max_new_tokens", self.max_new_tokens))
        self._set("min_new_tokens", _integer("ChatConfig", "min_new_tokens", self.min_new_tokens, optional=True))
        self._set("max_tool_rounds", _integer("ChatConfig", "max_tool_rounds", self.max_tool_rounds, lo=0))
        self._set("memory_k", _integer("ChatConfig", "memory_k", self.memory_k, lo=0))
        for name in ("summarize", "guard_instructions"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ChatConfig.{name} must be True or False, not {getattr(self, name)!r}")
        if not isinstance(self.sampling, SamplingConfig):
            raise ValueError(f"ChatConfig.sampling must be a SamplingConfig, not {type(self.sampling).__name__}")
