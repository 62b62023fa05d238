r"""Gradient clipping by torch's ``clip_grad_norm_`` rule.

* :func:`clip_by_norm_per_tensor`: the rule applied to each tensor on its own,
  as the original BertAdam does.
* :func:`clip_by_global_norm_torch`: the same rule over the whole tree
  (``clip_grad_norm_(model.parameters())``, DeepSpeed's ``gradient_clipping``).
* :func:`torch_clip_coefficient`: the factor both multiply by, also used by
  the packed clip of :mod:`bertadam_optax.flatten`.
"""

from __future__ import annotations

from typing import Any

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import float32_or_wider

__all__ = [
  "TORCH_CLIP_EPS",
  "clip_by_global_norm_torch",
  "clip_by_norm_per_tensor",
  "torch_clip_coefficient",
]

TORCH_CLIP_EPS = 1e-6
"""What ``torch.nn.utils.clip_grad_norm_`` adds to the norm before dividing."""


def _sum_of_squares(g: chex.Array) -> chex.Array:
  g = g.astype(float32_or_wider(g.dtype))
  return jnp.sum(g * g)


def torch_clip_coefficient(
  norm: chex.Array, max_norm: Any, eps: float = TORCH_CLIP_EPS
) -> chex.Array:
  r"""The factor torch's ``clip_grad_norm_`` multiplies the gradient by.

  .. math::
    \mathrm{coef} = \begin{cases}
      \min\left(1, \frac{c}{\lVert g \rVert_2 + \epsilon}\right) & c > 0 \\
      1 & c \le 0 \text{ (clipping disabled)}
    \end{cases}

  It always multiplies (by exactly 1 when not clipping), as torch does, so a
  NaN or Inf norm propagates into the gradient instead of being dropped. A
  static ``max_norm <= 0`` is turned into ``optax.identity()`` by the clipping
  factories before this is reached; a traced one (injected by
  ``optax.inject_hyperparams``) is handled here with ``jnp.where``.

  Args:
    norm: the L2 norm(s), any shape (one per tensor for the packed clip).
    max_norm: ``c``, a number or a traced scalar.
    eps: added to the norm (torch's ``1e-6``).

  Returns:
    The coefficient(s), shaped like ``norm``.

  Examples:
    >>> import jax.numpy as jnp
    >>> float(torch_clip_coefficient(jnp.float32(4.0), 2.0, eps=0.0))
    0.5
    >>> import jax
    >>> coef = jax.jit(lambda c: torch_clip_coefficient(jnp.float32(4.0), c))
    >>> float(coef(0.0))  # a traced max_norm of 0 disables clipping
    1.0

  References:
    PyTorch, ``torch/nn/utils/clip_grad.py``: ``clip_grad_norm_``.
  """
  coef = jnp.minimum(max_norm / (norm + eps), 1.0)
  if _validation.is_number(max_norm):
    return coef
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

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = clip_by_norm_per_tensor(1.0)
    >>> g = {'a': jnp.array([3.0, 4.0]), 'b': jnp.array([0.3, 0.4])}
    >>> clipped, _ = tx.update(g, tx.init(g))
    >>> [round(float(x), 4) for x in clipped['a']], clipped['b'].tolist()
    ([0.6, 0.8], [0.30000001192092896, 0.4000000059604645])

  References:
    pytorch-pretrained-bert 0.6.2 ``BertAdam.step``; DeepSpeedExamples
    bing_bert ``optimization.py``.
  """
  _validation.check_number("max_norm", max_norm, finite=False)
  if _validation.is_number(max_norm) and max_norm <= 0:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params

    def clip(g):
      coef = torch_clip_coefficient(jnp.sqrt(_sum_of_squares(g)), max_norm)
      return (g * coef).astype(g.dtype)

    return jax.tree.map(clip, updates), state

  return optax.GradientTransformation(
    lambda params: optax.EmptyState(), update_fn
  )


def clip_by_global_norm_torch(
  max_norm: float, *, eps: float = TORCH_CLIP_EPS
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

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = clip_by_global_norm_torch(1.0, eps=0.0)
    >>> g = {'a': jnp.array([3.0]), 'b': jnp.array([4.0])}
    >>> clipped, _ = tx.update(g, tx.init(g))
    >>> round(float(clipped['a'][0]), 4), round(float(clipped['b'][0]), 4)
    (0.6, 0.8)

  References:
    PyTorch ``torch.nn.utils.clip_grad_norm_``; DeepSpeed
    ``deepspeed/runtime/engine.py`` (``gradient_clipping``).
  """
  _validation.check_number("max_norm", max_norm, finite=False)
  _validation.check_number("eps", eps, 0.0)
  if _validation.is_number(max_norm) and max_norm <= 0:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params
    leaves = jax.tree.leaves(updates)
    total = sum((_sum_of_squares(g) for g in leaves), jnp.float32(0))
    coef = torch_clip_coefficient(jnp.sqrt(total), max_norm, eps)
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates), state

  return optax.GradientTransformation(
    lambda params: optax.EmptyState(), update_fn
  )
