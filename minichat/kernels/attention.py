"""The old name of minichat/kernels/causal_softmax.py (the softmax kernels, not an attention), kept only until
minichat/train/attention.py and tests/test_grads.py import the new name; then delete this file."""
from minichat.kernels.causal_softmax import (causal_softmax, causal_softmax_backward,
                                             causal_softmax_backward_reference, causal_softmax_reference)

__all__ = ["causal_softmax", "causal_softmax_backward", "causal_softmax_backward_reference",
           "causal_softmax_reference"]
