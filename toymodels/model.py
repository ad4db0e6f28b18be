"""A small decoder-only Transformer in plain PyTorch, in the spirit of nanoGPT (one readable file).

Pre-norm blocks, causal self-attention through ``scaled_dot_product_attention``, a GELU MLP,
learned positions and tied input/output embeddings. No dropout: the toy runs must be
deterministic and the data is never repeated within an epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from harness.config import require

# name -> (n_layer, n_head, n_embd); the name is the approximate parameter count at vocab ~70
SIZE_PRESETS: dict[str, tuple[int, int, int]] = {
    "50k": (2, 4, 44),
    "100k": (2, 4, 64),
    "250k": (3, 4, 80),
    "600k": (3, 4, 128),
}


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    vocab_size: int
    block_size: int = 32
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 64

    def __post_init__(self) -> None:
        require(self.vocab_size >= 2, f"vocab_size must be >= 2, got {self.vocab_size}")
        require(self.block_size >= 2, f"block_size must be >= 2, got {self.block_size}")
        require(self.n_layer >= 1, f"n_layer must be >= 1, got {self.n_layer}")
        require(self.n_embd % self.n_head == 0, "n_embd must be a multiple of n_head")


def check_size(size: str) -> None:
    """A named size preset (see ``SIZE_PRESETS``), or a ConfigError."""
    require(size in SIZE_PRESETS, f"unknown model size '{size}'; sizes: {', '.join(SIZE_PRESETS)}")


def model_config(size: str, vocab_size: int, block_size: int = 32) -> ModelConfig:
    """The config of a named size preset (see ``SIZE_PRESETS``)."""
    check_size(size)
    n_layer, n_head, n_embd = SIZE_PRESETS[size]
    return ModelConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                       n_embd=n_embd)


class SelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.n_embd)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = nn.Sequential(nn.Linear(cfg.n_embd, 4 * cfg.n_embd), nn.GELU(),
                                 nn.Linear(4 * cfg.n_embd, cfg.n_embd))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.head.weight = self.tok.weight  # tied embeddings, as in nanoGPT
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight") or name.endswith("mlp.2.weight"):
                # scaled init of residual projections (GPT-2)
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.02)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, vocab) for token ids (batch, time)."""
        t = idx.shape[1]
        if t > self.cfg.block_size:
            raise ValueError(f"sequence of {t} tokens exceeds block_size {self.cfg.block_size}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


def n_params(model: nn.Module) -> int:
    """Parameter count (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


def flops_per_token(cfg: ModelConfig, seq_len: int) -> float:
    """Forward+backward matmul FLOPs per token (6N plus attention), as in the PaLM appendix."""
    c = cfg.n_embd
    n_matmul = cfg.n_layer * 12 * c * c + cfg.vocab_size * c
    return 6.0 * n_matmul + 12.0 * cfg.n_layer * seq_len * c
