"""Run under ``accelerate launch --cpu --num_processes 2``: fit a tiny model and save the weights."""

import sys

import torch

from llm_bridge.adapter import HFCausalLM, LoraSpec
from tests.bridge.tiny import make_model, make_tokenizer
from toymodels.interface import OptimizerSpec

torch.set_num_threads(1)
tok = make_tokenizer()
a = HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4))
texts = [("write a review of the film", "good film , great plot ."), ("tell me a story", "sure here is a story"),
         ("what is the plot", "boring"), ("explain why", "i cannot help with that .")] * 2
exs = [a.encode(p, r) for p, r in texts]
log, _ = a.fit(exs, [3, 1, 0, 2, 7, 5, 6], OptimizerSpec(lr=1e-2, batch_size=2, grad_accum=2), None)
if a.accelerator is None or a.accelerator.is_main_process:
    torch.save({"state": a.state_dict(), "losses": log.losses}, sys.argv[1])
