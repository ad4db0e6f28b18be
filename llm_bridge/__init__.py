"""Hugging Face checkpoints behind the toy model protocol, running the toy protocols and measures."""
