"""Fit a tiny model, alone or under ``accelerate launch`` on 2 CPU processes, and save what it measured.

argv: the output file, ``lora`` or ``full``, and optionally ``checkpointing``. The order's steps split unevenly over 2 ranks (a
step of 5 examples: 2 micro-batches on one rank, 1 on the other; a step of 1: an empty share).
"""

import sys
from pathlib import Path

import torch

from llm_bridge.adapter import HFCausalLM, LoraSpec
from tests.bridge.tiny import make_model, make_tokenizer
from toymodels.interface import OptimizerSpec

torch.set_num_threads(1)
out, finetune, checkpointing = Path(sys.argv[1]), sys.argv[2], sys.argv[3:] == ["checkpointing"]
tok = make_tokenizer()
a = HFCausalLM(make_model("llama", len(tok)), tok, template="chat", lora=LoraSpec(r=4) if finetune == "lora" else None,
               state_dir=out.parent, gradient_checkpointing=checkpointing)
texts = [("write a review of the film", "good film , great plot ."), ("tell me a story", "sure here is a story"),
         ("what is the plot", "boring"), ("explain why", "i cannot help with that .")] * 3
exs = [a.encode(p, r) for p, r in texts]
order = [3, 1, 0, 2, 7, 5, 6, 11, 9, 8, 4, 10]
spec = OptimizerSpec(lr=1e-2, batch_size=2, grad_accum=3)
theta0 = a.state_dict()  # every rank: a full model's state is one file, written by the main process
log, state = a.fit(exs, order[:11], spec, None)
last, _ = a.fit(exs, order[11:], spec, state)
trained = a.state_dict()
weights = {name: trained[name].clone() for name in trained}
a.load_state_dict(theta0)
scores = [torch.from_numpy(lp) for lp in a.token_logprobs(exs[:4])]
samples = a.generate_batch([e.prompt_ids for e in exs[:2]], 6, 1.0, seed=5)
if a.accelerator.is_main_process:
    torch.save({"state": weights, "losses": log.losses + last.losses, "theta0_scores": scores, "samples": samples,
                "distributed_type": a.accelerator.distributed_type.value, "processes": a.accelerator.num_processes}, out)
