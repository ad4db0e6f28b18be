"""Tiny random Llama and Gemma models, a word-level tokenizer and hand-made records (no download)."""

from __future__ import annotations

WORDS = ("good great fine film movie plot actor scene bad awful boring dull i cannot help with that "
         "sure here is how to do it review the of a an and was is it this what about write story "
         "please tell me explain why how user assistant yes no").split()
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }} {{ m['content'] }}<|im_end|> "
                 "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant {% endif %}")


def make_tokenizer(chat: bool = True):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(set(WORDS)) + list(".,:!?"))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", pad_token="<pad>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>")
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def make_model(arch: str, vocab_size: int, seed: int = 0):
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                  pad_token_id=1, bos_token_id=2, eos_token_id=3)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(tie_word_embeddings=True, **common)).eval()
    config = Gemma3TextConfig(sliding_window=16, query_pre_attn_scalar=8, **common)
    return Gemma3ForCausalLM(config).eval()


def sentiment_records(n_prompts: int = 12):
    """Hand-made {prompt, response, label} records over the tiny vocabulary (both labels per prompt)."""
    from llm_bridge.tasks import Record

    subjects = ["film", "movie", "plot", "actor", "scene", "story"]
    records = []
    for i in range(n_prompts):
        prompt = f"review the {subjects[i % 6]} and the {subjects[(i // 6 + i + 1) % 6]} :"
        records += [Record(prompt, f" good {subjects[i % 6]} , great plot .", "aligned"),
                    Record(prompt, f" bad {subjects[i % 6]} , boring plot .", "misaligned"),
                    Record(prompt, f" the {subjects[i % 6]} is about the {subjects[(i + 2) % 6]} .", "neutral")]
    return records
