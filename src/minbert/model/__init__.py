"""The encoder, its checkpoints and tokenizer, and the task models built on it."""
