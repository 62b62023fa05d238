r"""torch's Adagrad: the gradient over the root of its running sum of squares."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import float32_or_wider

__all__ = ["scale_by_adagrad_torch"]


def scale_by_adagrad_torch(
  initial_accumulator_value: float = 0.0,
  eps: float = 1e-10,
) -> optax.GradientTransformation:
  r"""Rescales updates as ``torch.optim.Adagrad`` does.

  .. math::
    s_t = s_{t-1} + g_t^2, \quad s_0 = \text{initial\_accumulator\_value},
    \qquad u_t = \frac{g_t}{\sqrt{s_t} + \epsilon}

  ``optax.scale_by_rss`` puts ``eps`` inside the square root instead, which
  differs while the sums are small. The state is optax's
  ``ScaleByRssState``. torch's ``lr_decay`` belongs to the learning rate
  (``lr / (1 + k lr_decay)``), its weight decay is an L2 term added to the
  gradient before this (``optax.add_decayed_weights`` first in the chain).

  Args:
    initial_accumulator_value: the sums' starting value, >= 0.
    eps: added to the root, >= 0.

  Returns:
    An ``optax.GradientTransformation`` with an ``optax.ScaleByRssState``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_adagrad_torch()
    >>> g = {'w': jnp.array([2.0, -0.5])}
    >>> u, state = tx.update(g, tx.init(g))
    >>> u['w'].tolist(), state.sum_of_squares['w'].tolist()
    ([1.0, -1.0], [4.0, 0.25])

  References:
    Duchi et al., 2011, Adagrad; PyTorch ``torch/optim/adagrad.py``.
  """
  _validation.check_number(
    "initial_accumulator_value", initial_accumulator_value, 0.0
  )
  _validation.check_non_negative("eps", eps)

  def init_fn(params):
    return optax.ScaleByRssState(
      sum_of_squares=jax.tree.map(
        lambda p: jnp.full(
          jnp.shape(p), initial_accumulator_value, float32_or_wider(p.dtype)
        ),
        params,
      )
    )

  def update_fn(updates, state, params=None):
    del params
    sums = jax.tree.map(
      lambda g, s: s + jnp.square(g.astype(s.dtype)),
      updates,
      state.sum_of_squares,
    )
    updates = jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, sums)
    return updates, optax.ScaleByRssState(sum_of_squares=sums)

  return optax.GradientTransformation(init_fn, update_fn)
