"""Toy models: synthetic corpora with exact attributes, a small Transformer, and the protocols.

The protocols (resistance, rebound, scale, compression, lifecycle) are written once against the
model protocol in :mod:`toymodels.interface`; :mod:`llm_bridge` plugs Hugging Face models into it.
"""
