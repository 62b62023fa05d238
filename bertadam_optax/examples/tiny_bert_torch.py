"""The PyTorch twin of :mod:`bertadam_optax.examples.tiny_bert` (needs torch).

:class:`TinyBertMLMTorch` computes the same function as
:class:`~bertadam_optax.examples.tiny_bert.TinyBertMLM` for the same weights,
so the two can be trained side by side (PyTorch ``BertAdam`` against
:func:`~bertadam_optax.bertadam`) and their states moved between them with
:mod:`bertadam_optax.interop.torch`. Its parameter names are the Flax module
names with torch's conventions (``layer.0.query.weight`` for the Flax leaf
``layer_0.query.kernel``), which :func:`~bertadam_optax.interop.torch.match_by_name`
maps without a hand-written table.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bertadam_optax.examples.tiny_bert import TinyBertConfig

__all__ = ["TinyBertMLMTorch", "mlm_loss_torch"]


class _Block(nn.Module):
  def __init__(self, config: TinyBertConfig):
    super().__init__()
    c = config
    self.config = c
    self.query = nn.Linear(c.hidden_size, c.hidden_size)
    self.key = nn.Linear(c.hidden_size, c.hidden_size)
    self.value = nn.Linear(c.hidden_size, c.hidden_size)
    self.attention_output = nn.Linear(c.hidden_size, c.hidden_size)
    self.attention_LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)
    self.intermediate = nn.Linear(c.hidden_size, c.intermediate_size)
    self.output = nn.Linear(c.intermediate_size, c.hidden_size)
    self.output_LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)

  def forward(self, x, attention_mask):
    c = self.config
    head_dim = c.hidden_size // c.num_heads
    b, t, _ = x.shape

    def heads(linear):
      return linear(x).reshape(b, t, c.num_heads, head_dim)

    q, k, v = heads(self.query), heads(self.key), heads(self.value)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(head_dim)
    logits = logits.masked_fill(~attention_mask[:, None, None, :], -1e9)
    weights = torch.softmax(logits, dim=-1)
    attended = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, -1)
    x = self.attention_LayerNorm(x + self.attention_output(attended))
    h = self.output(nn.functional.gelu(self.intermediate(x)))
    return self.output_LayerNorm(x + h)


class TinyBertMLMTorch(nn.Module):
  """``tokens [batch, length] int64 -> logits [batch, length, vocab]``."""

  def __init__(self, config: TinyBertConfig = TinyBertConfig()):
    super().__init__()
    c = config
    self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
    self.position_embeddings = nn.Embedding(c.max_len, c.hidden_size)
    self.embeddings_LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)
    self.layer = nn.ModuleList(_Block(c) for _ in range(c.num_layers))
    self.head_transform = nn.Linear(c.hidden_size, c.hidden_size)
    self.head_LayerNorm = nn.LayerNorm(c.hidden_size, c.layer_norm_eps)
    self.decoder = nn.Linear(c.hidden_size, c.vocab_size)

  def forward(self, tokens, attention_mask=None):
    if attention_mask is None:
      attention_mask = torch.ones(tokens.shape, dtype=torch.bool)
    positions = torch.arange(tokens.shape[1])[None, :]
    x = self.word_embeddings(tokens) + self.position_embeddings(positions)
    x = self.embeddings_LayerNorm(x)
    for block in self.layer:
      x = block(x, attention_mask)
    h = self.head_LayerNorm(nn.functional.gelu(self.head_transform(x)))
    return self.decoder(h)


def mlm_loss_torch(logits, targets, weights):
  """Mean cross-entropy over the masked positions, as ``tiny_bert.mlm_loss``."""
  losses = nn.functional.cross_entropy(
    logits.float().reshape(-1, logits.shape[-1]),
    targets.reshape(-1),
    reduction="none",
  )
  weights = weights.reshape(-1).float()
  return torch.sum(losses * weights) / torch.clamp(torch.sum(weights), min=1.0)
