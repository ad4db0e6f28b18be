"""Hugging Face models behind the toy model protocol, and the ``elasticity`` dispatcher."""
