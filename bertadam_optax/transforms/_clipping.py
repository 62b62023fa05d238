r"""Gradient clipping by torch's ``clip_grad_norm_`` rule.

* :func:`clip_by_norm_per_tensor`: the rule applied to each tensor on its own,
  as the original BertAdam does.
* :func:`clip_by_global_norm_torch`: the same rule over the whole tree
  (``clip_grad_norm_(model.parameters())``, DeepSpeed's ``gradient_clipping``).
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import float32_or_wider

__all__ = ["clip_by_global_norm_torch", "clip_by_norm_per_tensor"]

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
_TORCH_CLIP_EPS = 1e-6


def _sum_of_squares(g: chex.Array) -> chex.Array:
  g = g.astype(float32_or_wider(g.dtype))
  return jnp.sum(g * g)


def _torch_clip_coef(norm: chex.Array, max_norm: Any,
                     eps: float = _TORCH_CLIP_EPS) -> chex.Array:
  # Always multiply (by exactly 1 when not clipping), as torch does: a NaN or
  # Inf norm propagates into the gradient instead of being silently dropped.
  coef = jnp.minimum(max_norm / (norm + eps), 1.0)
  if _validation.is_number(max_norm):
    return coef
  # A traced max_norm (e.g. injected by ``optax.inject_hyperparams``) cannot
  # pick ``optax.identity()`` at construction; ``<= 0`` still disables.
  return jnp.where(max_norm > 0, coef, 1.0)


def clip_by_norm_per_tensor(max_norm: float) -> optax.GradientTransformation:
  r"""Clips each gradient tensor to an L2 norm of at most ``max_norm``.

  For every leaf ``g`` separately (not the global norm):

  .. math::
    g \leftarrow g \cdot \min\left(1, \frac{c}{\lVert g \rVert_2 + 10^{-6}}\right)

  which is ``torch.nn.utils.clip_grad_norm_(p, c)`` on one parameter, the
  first thing the original ``BertAdam.step`` does to each tensor. The norm is
  of the whole logical tensor, also when the tensor is sharded across devices
  (XLA inserts the cross-device reduction).

  Args:
    max_norm: the largest norm kept; ``max_norm <= 0`` disables clipping (the
      transformation is then ``optax.identity()``), as in the original. A
      traced value (``optax.inject_hyperparams``) is allowed.

  Returns:
    An ``optax.GradientTransformation`` with an empty state.

  References:
    pytorch-pretrained-bert 0.6.2 ``BertAdam.step``; DeepSpeedExamples
    bing_bert ``optimization.py``.
  """
  if _validation.is_number(max_norm) and max_norm <= 0:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params

    def clip(g):
      coef = _torch_clip_coef(jnp.sqrt(_sum_of_squares(g)), max_norm)
      return (g * coef).astype(g.dtype)

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update_fn)


def clip_by_global_norm_torch(max_norm: float, *,
                              eps: float = _TORCH_CLIP_EPS
                              ) -> optax.GradientTransformation:
  r"""Clips the whole gradient tree by its global norm, torch's way.

  .. math::
    g \leftarrow g \cdot \min\left(1, \frac{c}{\lVert g \rVert_2 + 10^{-6}}\right),
    \quad \lVert g \rVert_2 = \sqrt{\textstyle\sum_{\text{leaves}} \lVert g_i \rVert_2^2}

  This is ``torch.nn.utils.clip_grad_norm_(model.parameters(), c)`` and
  DeepSpeed's ``gradient_clipping``. It differs from
  ``optax.clip_by_global_norm`` only by the ``1e-6`` in the denominator (optax
  clips when the norm exceeds ``c`` and scales by exactly ``c / norm``).
  With ``eps=0`` it is ``optax.clip_by_global_norm`` up to rounding, in one
  pass: optax's per-element ``t / norm * c`` makes XLA:CPU write the scaled
  gradient to a buffer of its own, here one scalar factor fuses into the
  update.

  Args:
    max_norm: the largest global norm kept; ``max_norm <= 0`` disables it.
    eps: added to the norm before dividing, >= 0 (torch's ``1e-6``).

  Returns:
    An ``optax.GradientTransformation`` with an empty state.
  """
  if _validation.is_number(max_norm) and max_norm <= 0:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params
    leaves = jax.tree.leaves(updates)
    total = sum((_sum_of_squares(g) for g in leaves), jnp.float32(0))
    coef = _torch_clip_coef(jnp.sqrt(total), max_norm, eps)
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update_fn)


