"""A tiny BERT-style masked language model, in Flax Linen and in Flax NNX.

Post-LayerNorm encoder blocks as in BERT (embeddings -> LayerNorm -> blocks
of self-attention and GELU MLP, each with a residual and a LayerNorm -> an MLM
head), sized for CPU demos and tests. Module names follow HF's BERT
(``LayerNorm``, ``attention``, ``intermediate``), so the BERT weight-decay mask
and name mappings read the same as on a real BERT. The GELU is the exact (erf)
one, as ``torch.nn.GELU()``, so a torch twin of this model computes the same
function.

:class:`TinyBertMLMNNX` is the same model in NNX, with the same parameter tree
(:func:`tiny_bert_nnx_from_linen` loads Linen parameters into it), so the two
APIs can be checked against each other.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = [
  "TinyBertConfig",
  "TinyBertMLM",
  "TinyBertMLMNNX",
  "mlm_loss",
  "tiny_bert_nnx_from_linen",
]


@dataclasses.dataclass(frozen=True)
class TinyBertConfig:
  vocab_size: int = 512
  hidden_size: int = 64
  num_layers: int = 2
  num_heads: int = 4
  intermediate_size: int = 128
  max_len: int = 64
  layer_norm_eps: float = 1e-12


def _attend(q, k, v, attention_mask, num_heads):
  """Multi-head scaled dot-product attention over projected ``[b, t, hidden]``."""
  b, t, hidden = q.shape
  head_dim = hidden // num_heads
  q, k, v = (y.reshape(b, t, num_heads, head_dim) for y in (q, k, v))
  logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(head_dim)
  logits = jnp.where(attention_mask[:, None, None, :], logits, -1e9)
  weights = jax.nn.softmax(logits, axis=-1)
  return jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(b, t, -1)


class _Block(nn.Module):
  config: TinyBertConfig

  @nn.compact
  def __call__(self, x, attention_mask):
    c = self.config
    q, k, v = (
      nn.Dense(c.hidden_size, name=name)(x)
      for name in ("query", "key", "value")
    )
    attended = _attend(q, k, v, attention_mask, c.num_heads)
    attended = nn.Dense(c.hidden_size, name="attention_output")(attended)
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="attention_LayerNorm")(
      x + attended
    )
    h = nn.gelu(
      nn.Dense(c.intermediate_size, name="intermediate")(x), approximate=False
    )
    h = nn.Dense(c.hidden_size, name="output")(h)
    return nn.LayerNorm(epsilon=c.layer_norm_eps, name="output_LayerNorm")(
      x + h
    )


class TinyBertMLM(nn.Module):
  """``tokens [batch, length] int32 -> logits [batch, length, vocab]``."""

  config: TinyBertConfig = TinyBertConfig()

  @nn.compact
  def __call__(self, tokens, attention_mask=None):
    c = self.config
    if attention_mask is None:
      attention_mask = jnp.ones(tokens.shape, bool)
    positions = jnp.arange(tokens.shape[1])[None, :]
    x = nn.Embed(c.vocab_size, c.hidden_size, name="word_embeddings")(
      tokens
    ) + nn.Embed(c.max_len, c.hidden_size, name="position_embeddings")(
      positions
    )
    x = nn.LayerNorm(epsilon=c.layer_norm_eps, name="embeddings_LayerNorm")(x)
    for i in range(c.num_layers):
      x = _Block(c, name=f"layer_{i}")(x, attention_mask)
    h = nn.gelu(
      nn.Dense(c.hidden_size, name="head_transform")(x), approximate=False
    )
    h = nn.LayerNorm(epsilon=c.layer_norm_eps, name="head_LayerNorm")(h)
    return nn.Dense(c.vocab_size, name="decoder")(h)


def mlm_loss(logits, targets, weights):
  """Mean cross-entropy over the masked positions (``weights`` 1 there, else 0)."""
  losses = optax.softmax_cross_entropy_with_integer_labels(
    logits.astype(jnp.float32), targets
  )
  return jnp.sum(losses * weights) / jnp.maximum(jnp.sum(weights), 1.0)


class _BlockNNX(nnx.Module):
  """:class:`_Block` in NNX, attribute for attribute."""

  def __init__(self, config: TinyBertConfig, *, rngs: nnx.Rngs):
    c = self.config = config

    def dense(features_in, features_out):
      return nnx.Linear(features_in, features_out, rngs=rngs)

    def layer_norm():
      return nnx.LayerNorm(c.hidden_size, epsilon=c.layer_norm_eps, rngs=rngs)

    self.query = dense(c.hidden_size, c.hidden_size)
    self.key = dense(c.hidden_size, c.hidden_size)
    self.value = dense(c.hidden_size, c.hidden_size)
    self.attention_output = dense(c.hidden_size, c.hidden_size)
    self.attention_LayerNorm = layer_norm()
    self.intermediate = dense(c.hidden_size, c.intermediate_size)
    self.output = dense(c.intermediate_size, c.hidden_size)
    self.output_LayerNorm = layer_norm()

  def __call__(self, x, attention_mask):
    attended = _attend(
      self.query(x),
      self.key(x),
      self.value(x),
      attention_mask,
      self.config.num_heads,
    )
    x = self.attention_LayerNorm(x + self.attention_output(attended))
    h = nnx.gelu(self.intermediate(x), approximate=False)
    return self.output_LayerNorm(x + self.output(h))


class TinyBertMLMNNX(nnx.Module):
  """:class:`TinyBertMLM` in Flax NNX, with the same parameter tree.

  ``nnx.state(model, nnx.Param)`` has the paths of the Linen model's
  ``params`` (``layer_0.query.kernel``, ...), and the forward pass runs the
  same operations, so the two compute the same function from the same weights.
  """

  def __init__(
    self, config: TinyBertConfig = TinyBertConfig(), *, rngs: nnx.Rngs
  ):
    c = self.config = config
    self.word_embeddings = nnx.Embed(c.vocab_size, c.hidden_size, rngs=rngs)
    self.position_embeddings = nnx.Embed(c.max_len, c.hidden_size, rngs=rngs)
    self.embeddings_LayerNorm = nnx.LayerNorm(
      c.hidden_size, epsilon=c.layer_norm_eps, rngs=rngs
    )
    # One attribute per layer (not a list) keeps Linen's ``layer_{i}`` names.
    for i in range(c.num_layers):
      setattr(self, f"layer_{i}", _BlockNNX(c, rngs=rngs))
    self.head_transform = nnx.Linear(c.hidden_size, c.hidden_size, rngs=rngs)
    self.head_LayerNorm = nnx.LayerNorm(
      c.hidden_size, epsilon=c.layer_norm_eps, rngs=rngs
    )
    self.decoder = nnx.Linear(c.hidden_size, c.vocab_size, rngs=rngs)

  def __call__(self, tokens, attention_mask=None):
    if attention_mask is None:
      attention_mask = jnp.ones(tokens.shape, bool)
    positions = jnp.arange(tokens.shape[1])[None, :]
    x = self.word_embeddings(tokens) + self.position_embeddings(positions)
    x = self.embeddings_LayerNorm(x)
    for i in range(self.config.num_layers):
      x = getattr(self, f"layer_{i}")(x, attention_mask)
    h = nnx.gelu(self.head_transform(x), approximate=False)
    return self.decoder(self.head_LayerNorm(h))


def tiny_bert_nnx_from_linen(
  params, config: TinyBertConfig = TinyBertConfig()
) -> TinyBertMLMNNX:
  """A :class:`TinyBertMLMNNX` holding the parameters of a :class:`TinyBertMLM`.

  Args:
    params: the Linen model's ``variables['params']``.
    config: the configuration both models were built with.

  Returns:
    The NNX model; its parameters are ``params`` (no random initialisation
    is run).
  """
  abstract = nnx.eval_shape(lambda: TinyBertMLMNNX(config, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  nnx.replace_by_pure_dict(state, params)
  return nnx.merge(graphdef, state)
