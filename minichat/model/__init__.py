"""The transformer and its checkpoints: layers as pure functions, the forward pass, the KV cache, and the readers and
writers for safetensors, GGUF and minichat's own checkpoint format."""
