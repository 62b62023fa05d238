"""A tiny BERT-style masked language model in Flax Linen.

Post-LayerNorm encoder blocks as in BERT (embeddings -> LayerNorm -> blocks
of self-attention and GELU MLP, each with a residual and a LayerNorm -> an MLM
head), sized for CPU demos and tests. Module names follow HF's BERT
(``LayerNorm``, ``attention``, ``intermediate``), so the BERT weight-decay mask
and name mappings read the same as on a real BERT. The GELU is the exact (erf)
one, as ``torch.nn.GELU()``, so a torch twin of this model computes the same
function.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = ["TinyBertConfig", "TinyBertMLM", "mlm_loss"]


@dataclasses.dataclass(frozen=True)
class TinyBertConfig:
  vocab_size: int = 512
  hidden_size: int = 64
  num_layers: int = 2
  num_heads: int = 4
  intermediate_size: int = 128
  max_len: int = 64
  layer_norm_eps: float = 1e-12


class _Block(nn.Module):
  config: TinyBertConfig

  @nn.compact
  def __call__(self, x, attention_mask):
    c = self.config
    head_dim = c.hidden_size // c.num_heads
    b, t, _ = x.shape

    def heads(name):
      y = nn.Dense(c.hidden_size, name=name)(x)
      return y.reshape(b, t, c.num_heads, head_dim)

    q, k, v = heads("query"), heads("key"), heads("value")
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(head_dim)
    logits = jnp.where(attention_mask[:, None, None, :], logits, -1e9)
    weights = jax.nn.softmax(logits, axis=-1)
    attended = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, -1)
    attended = nn.Dense(c.hidden_size, name="attention_output")(attended)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attention_LayerNorm")(
        x + attended)
    h = nn.gelu(nn.Dense(c.intermediate_size, name="intermediate")(x),
                approximate=False)
    h = nn.Dense(c.hidden_size, name="output")(h)
    return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_LayerNorm")(x + h)


class TinyBertMLM(nn.Module):
  """``tokens [batch, length] int32 -> logits [batch, length, vocab]``."""

  config: TinyBertConfig = TinyBertConfig()

  @nn.compact
  def __call__(self, tokens, attention_mask=None):
    c = self.config
    if attention_mask is None:
      attention_mask = jnp.ones(tokens.shape, bool)
    positions = jnp.arange(tokens.shape[1])[None, :]
    x = (nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")(tokens)
         + nn.Embed(c.max_len, c.hidden_size,
                    name="position_embeddings")(positions))
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embeddings_LayerNorm")(x)
    for i in range(c.num_layers):
      x = _Block(c, name=f"layer_{i}")(x, attention_mask)
    h = nn.gelu(nn.Dense(c.hidden_size, name="head_transform")(x),
                approximate=False)
    h = nn.LayerNorm(epsilon=c.layer_norm_eps, name="head_LayerNorm")(h)
    return nn.Dense(c.vocab_size, name="decoder")(h)


def mlm_loss(logits, targets, weights):
  """Mean cross-entropy over the masked positions (``weights`` 1 there, else 0)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(
      logits.astype(jnp.float32), targets)
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)
