r"""Adam's moments as PyTorch-era optimizers compute them, one transform.

:func:`scale_by_adam_torch` covers the Adam family this package reproduces:
torch's ``Adam``/``AdamW`` and DeepSpeed's ``FusedAdam`` (bias-corrected,
epsilon outside the square root), BertAdam (no bias correction, see
:func:`~bertadam_optax.transforms.scale_by_bertadam`) and the moments of
DeepSpeed's ``FusedLamb`` (uncorrected, epsilon inside or outside the root).
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._numerics import float32_or_wider
from bertadam_optax.transforms._numerics import one_minus_power

__all__ = ["ScaleByAdamTorchState", "scale_by_adam_torch"]


class ScaleByAdamTorchState(NamedTuple):
  """State of :func:`scale_by_adam_torch`: optax's Adam field names."""

  count: chex.Array  # int32 number of updates applied so far
  mu: optax.Updates  # first moment (torch's ``exp_avg``, BertAdam's ``next_m``)
  nu: optax.Updates  # second moment (``exp_avg_sq``, BertAdam's ``next_v``)


def scale_by_adam_torch(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  *,
  bias_correction: bool = True,
  eps_inside_sqrt: bool = False,
  mu_dtype: Any | None = None,
) -> optax.GradientTransformation:
  r"""Rescales updates by Adam's moments, the way PyTorch optimizers do.

  .. math::
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    u_t &= \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}
      \quad\left(\frac{\hat m_t}{\sqrt{\hat v_t + \epsilon}}
      \text{ with eps\_inside\_sqrt}\right)

  with ``m_hat = m / (1 - b1^t)`` and ``v_hat = v / (1 - b2^t)`` when
  ``bias_correction`` (torch's ``Adam``, DeepSpeed's ``FusedAdam``), else
  ``m_hat = m``, ``v_hat = v`` (BertAdam, the moments of ``FusedLamb``).
  The corrections are computed as ``-expm1(t log beta)``, which keeps float32
  accuracy where ``beta`` is close to 1 (a float32 ``1 - beta ** t`` is off by
  ~1e-5 relative for ``beta2 = 0.999``).

  Moments are kept in float32 for bfloat16/float16 parameters (float64 ones
  stay float64); ``mu_dtype`` overrides the first moment's storage dtype, e.g.
  ``jnp.bfloat16``. The first moment is computed in the second's (wide) dtype
  and only rounded for storage, so the update itself is not rounded. The
  updates come out in the moments' dtype; ``optax.apply_updates`` casts back.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)`` (to ``v`` with ``eps_inside_sqrt``), >= 0.
    bias_correction: divide the moments by ``1 - beta^t``.
    eps_inside_sqrt: put ``eps`` under the square root (FusedLamb's
      ``eps_inside_sqrt``).
    mu_dtype: optional floating dtype of the first moment.

  Returns:
    An ``optax.GradientTransformation`` with a :class:`ScaleByAdamTorchState`.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_adam_torch(0.9, 0.999, 1e-8)
    >>> g = {'w': jnp.array([0.5, -2.0])}
    >>> u, state = tx.update(g, tx.init(g))
    >>> [round(float(x), 5) for x in u['w']]  # the first step is sign(g)
    [1.0, -1.0]
    >>> int(state.count)
    1

  References:
    Kingma & Ba, 2015, Adam; PyTorch ``torch/optim/adam.py``; DeepSpeed
    ``deepspeed/ops/adam/fused_adam.py``.
  """
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  _validation.check_non_negative("eps", eps)
  bias_correction = _validation.check_bool("bias_correction", bias_correction)
  eps_inside_sqrt = _validation.check_bool("eps_inside_sqrt", eps_inside_sqrt)
  mu_dtype = _validation.check_dtype("mu_dtype", mu_dtype)

  def init_fn(params):
    # zeros_like, not zeros(shape): the moments of a sharded parameter are
    # created with its sharding instead of whole on the default device.
    def zeros(p, dtype=None):
      return jnp.zeros_like(p, dtype or float32_or_wider(p.dtype))

    return ScaleByAdamTorchState(
      count=jnp.zeros([], jnp.int32),
      mu=jax.tree.map(lambda p: zeros(p, mu_dtype), params),
      nu=jax.tree.map(zeros, params),
    )

  def update_fn(updates, state, params=None):
    del params
    count = optax.safe_increment(state.count)
    nu = jax.tree.map(
      lambda g, v: b2 * v + (1.0 - b2) * jnp.square(g.astype(v.dtype)),
      updates,
      state.nu,
    )
    mu = jax.tree.map(
      lambda g, m, v: b1 * m.astype(v.dtype) + (1.0 - b1) * g.astype(v.dtype),
      updates,
      state.mu,
      nu,
    )
    if bias_correction:
      t = count.astype(jnp.float32)
      correction1 = one_minus_power(b1, t)
      correction2 = one_minus_power(b2, t)
      m_hat = jax.tree.map(lambda m: m / correction1, mu)
      v_hat = jax.tree.map(lambda v: v / correction2, nu)
    else:
      m_hat, v_hat = mu, nu
    if eps_inside_sqrt:
      u = jax.tree.map(lambda m, v: m / jnp.sqrt(v + eps), m_hat, v_hat)
    else:
      u = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + eps), m_hat, v_hat)
    if mu_dtype is not None:
      mu = jax.tree.map(lambda m: m.astype(mu_dtype), mu)
    return u, ScaleByAdamTorchState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init_fn, update_fn)
