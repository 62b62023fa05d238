r"""Adam's moments as BertAdam computes them (no bias correction by default)."""

from __future__ import annotations

from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import float32_or_wider
from bertadam_optax.transforms._numerics import one_minus_power

__all__ = ["ScaleByBertAdamState", "scale_by_bertadam"]

class ScaleByBertAdamState(NamedTuple):
  """State of :func:`scale_by_bertadam`: optax's Adam field names."""

  count: chex.Array  # int32 number of updates applied so far
  mu: optax.Updates  # first moment, BertAdam's ``next_m``
  nu: optax.Updates  # second moment, BertAdam's ``next_v``


def scale_by_bertadam(
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-6,
    *,
    bias_correction: bool = False,
    mu_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""Rescales updates by BertAdam's moments, without bias correction.

  .. math::
    m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \qquad
    u_t = \frac{m_t}{\sqrt{v_t} + \epsilon}

  With ``bias_correction=True``, ``m_t`` and ``v_t`` are divided by
  ``1 - beta1^t`` and ``1 - beta2^t`` first (standard Adam, epsilon outside
  the square root, as ``optax.scale_by_adam``). The corrections are computed
  as ``-expm1(t log beta)``, so they keep float32 accuracy where ``beta`` is
  close to 1 (``optax`` and a float32 ``1 - beta ** t`` are off by ~1e-5
  relative for ``beta2 = 0.999``).

  Moments are kept in float32 for bfloat16/float16 parameters (float64 ones
  stay float64); ``mu_dtype`` overrides the first moment's dtype, e.g.
  ``jnp.bfloat16`` to halve its memory. The returned updates are in the
  moments' dtype; ``optax.apply_updates`` casts back to each parameter's.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)``, >= 0.
    bias_correction: apply Adam's bias correction (the original does not).
    mu_dtype: optional dtype of the first moment.

  Returns:
    An ``optax.GradientTransformation`` with a :class:`ScaleByBertAdamState`.

  References:
    Devlin et al., 2019, BERT (``optimization.py`` of google-research/bert);
    pytorch-pretrained-bert 0.6.2 ``BertAdam``.
  """
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  _validation.check_non_negative("eps", eps)
  if mu_dtype is not None:
    mu_dtype = jnp.dtype(mu_dtype)

  def init_fn(params):
    # zeros_like, not zeros(shape): the moments of a sharded parameter are
    # created with its sharding instead of whole on the default device.
    def zeros(p, dtype=None):
      return jnp.zeros_like(p, dtype or float32_or_wider(p.dtype))

    return ScaleByBertAdamState(
        count=jnp.zeros([], jnp.int32),
        mu=jax.tree.map(lambda p: zeros(p, mu_dtype), params),
        nu=jax.tree.map(zeros, params),
    )

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    if bias_correction:
      t = count.astype(jnp.float32)
      correction1 = one_minus_power(b1, t)
      correction2 = one_minus_power(b2, t)

    nu = jax.tree.map(
        lambda g, v: b2 * v + (1.0 - b2) * jnp.square(g.astype(v.dtype)),
        updates, state.nu)
    # The first moment is computed in the second's (wide) dtype and rounded to
    # ``mu_dtype`` only for storage, so the update itself is not rounded.
    mu = jax.tree.map(
        lambda g, m, v: b1 * m.astype(v.dtype) + (1.0 - b1) * g.astype(v.dtype),
        updates, state.mu, nu)
    if bias_correction:
      u = jax.tree.map(
          lambda m, v: (m / correction1) / (jnp.sqrt(v / correction2) + eps),
          mu, nu)
    else:
      u = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), mu, nu)
    if mu_dtype is not None:
      mu = jax.tree.map(lambda m: m.astype(mu_dtype), mu)
    return u, ScaleByBertAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)


