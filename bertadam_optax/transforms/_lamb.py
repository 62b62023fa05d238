r"""DeepSpeed's ``FusedLamb``: Adam moments, a clamped per-tensor trust ratio."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._adam import scale_by_adam_torch
from bertadam_optax.transforms._masking import checked_mask
from bertadam_optax.transforms._numerics import float32_or_wider
from bertadam_optax.transforms._numerics import one_minus_power

__all__ = [
  "FUSED_LAMB_STATIC_ARGS",
  "scale_by_clamped_trust_ratio",
  "scale_by_fused_lamb",
]

FUSED_LAMB_STATIC_ARGS = (
  "b2",
  "eps",
  "weight_decay",
  "max_coeff",
  "min_coeff",
  "weight_decay_mask",
)
"""``static_args`` of ``optax.inject_hyperparams(scale_by_fused_lamb)`` when
only ``b1`` moves (DeepSpeed's OneCycle momentum cycle)."""


def scale_by_clamped_trust_ratio(
  min_coeff: float = 0.01,
  max_coeff: float = 10.0,
) -> optax.GradientTransformation:
  r"""Scales each leaf by its LAMB trust ratio, clamped as FusedLamb does.

  .. math::
    r = \begin{cases}
      \max\left(\min\left(\frac{\lVert w \rVert_2}{\lVert u \rVert_2},
        c_{\max}\right), c_{\min}\right)
        & \lVert w \rVert_2 \ne 0 \text{ and } \lVert u \rVert_2 \ne 0 \\
      1 & \text{otherwise}
    \end{cases}, \qquad u \leftarrow r u

  The upper bound applies first, so ``min_coeff`` wins when the bounds cross
  (as in the kernel). ``optax.scale_by_trust_ratio`` neither clamps nor
  treats a zero update the same way.

  Args:
    min_coeff: lower bound ``c_min``, >= 0.
    max_coeff: upper bound ``c_max``, >= 0.

  Returns:
    An ``optax.GradientTransformation`` that needs ``params`` in ``update``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_clamped_trust_ratio(0.01, 10.0)
    >>> w = {'w': jnp.array([3.0, 4.0])}
    >>> u, _ = tx.update({'w': jnp.array([0.0, 0.5])}, tx.init(w), w)
    >>> u['w'].tolist()  # ||w|| / ||u|| = 10, the upper bound
    [0.0, 5.0]

  References:
    DeepSpeed ``deepspeed/ops/csrc/lamb/fused_lamb_cuda_kernel.cu``.
  """
  _validation.check_non_negative("min_coeff", min_coeff)
  _validation.check_non_negative("max_coeff", max_coeff)

  def norm(x):
    x = x.astype(float32_or_wider(x.dtype))
    return jnp.sqrt(jnp.sum(x * x))

  def update_fn(updates, state, params=None):
    if params is None:
      raise ValueError(
        "scale_by_clamped_trust_ratio needs the params: call "
        "update(updates, state, params)."
      )

    def scale(u, w):
      w_norm, u_norm = norm(w), norm(u)
      one = jnp.ones_like(u_norm)
      ratio = w_norm / jnp.where(u_norm == 0, one, u_norm)
      ratio = jnp.maximum(jnp.minimum(ratio, max_coeff), min_coeff)
      coeff = jnp.where((w_norm != 0) & (u_norm != 0), ratio, one)
      return (coeff * u).astype(u.dtype)

    return jax.tree.map(scale, updates, params), state

  return optax.GradientTransformation(
    lambda params: optax.EmptyState(), update_fn
  )


def _lamb_step_size(b1: Any, b2: Any) -> optax.GradientTransformation:
  """Multiplies by ``sqrt(1 - b2^t) / (1 - b1^t)`` at step ``t = count + 1``."""

  def step_size(count):
    t = jnp.asarray(count, jnp.float32) + 1.0
    return jnp.sqrt(one_minus_power(b2, t)) / one_minus_power(b1, t)

  return optax.scale_by_schedule(step_size)


def _kernel_float(name: str, value: Any) -> Any:
  """A static beta rounded to float32, as the CUDA kernel receives it."""
  if _validation.is_number(value):
    return float(np.float32(_validation.to_float(name, value)))
  return value


def scale_by_fused_lamb(
  b1: float = 0.9,
  b2: float = 0.999,
  eps: float = 1e-8,
  *,
  eps_inside_sqrt: bool = False,
  bias_correction: bool = True,
  weight_decay: float = 0.0,
  max_coeff: float = 10.0,
  min_coeff: float = 0.01,
  weight_decay_mask: Any = None,
) -> optax.GradientTransformation:
  r"""Rescales updates as DeepSpeed's ``FusedLamb`` CUDA kernel does.

  For each parameter tensor ``w`` separately, at step ``t``:

  .. math::
    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    u_t &= \frac{m_t}{\sqrt{v_t} + \epsilon} + \lambda w
      \quad\left(\frac{m_t}{\sqrt{v_t + \epsilon}} + \lambda w
      \text{ with eps\_inside\_sqrt}\right) \\
    \text{out} &= s_t \, r_t \, u_t, \qquad
    s_t = \frac{\sqrt{1 - \beta_2^t}}{1 - \beta_1^t}
      \ (1 \text{ without bias\_correction})

  with ``r_t`` the clamped trust ratio of
  :func:`scale_by_clamped_trust_ratio`. Followed by ``-lr``
  (:func:`~bertadam_optax.transforms.scale_by_learning_rate`) it is the
  kernel's ``p -= step_size * lamb_coeff * update``. DeepSpeed's quirks,
  reproduced: the bias correction scales the step, not the moments (the
  moments are :func:`~bertadam_optax.transforms.scale_by_adam_torch` without
  correction), so it stays outside the trust ratio, multiplies the weight
  decay term too, and ``eps`` is never corrected; the decay joins the update
  before the norms (masked-out leaves still get the trust ratio); the kernel
  receives ``b1``/``b2`` as float32, and so does this.

  Args:
    b1: decay of the first moment, in [0, 1).
    b2: decay of the second moment, in [0, 1).
    eps: added to ``sqrt(v)`` (to ``v`` with ``eps_inside_sqrt``), >= 0.
    eps_inside_sqrt: FusedLamb's ``eps_inside_sqrt`` (its ``eps_mode`` 0).
    bias_correction: scale the step by ``sqrt(1 - b2^t) / (1 - b1^t)``.
    weight_decay: ``lambda``, >= 0, added to the update inside the trust ratio.
    max_coeff: upper bound of the trust ratio, >= 0.
    min_coeff: lower bound of the trust ratio, >= 0.
    weight_decay_mask: which leaves decay (pytree of bools or a function of
      the params, as ``optax.add_decayed_weights``); ``None`` decays all.

  Returns:
    An ``optax.GradientTransformation`` (a chain: moments, decay, trust ratio,
    step size). It needs ``params`` in ``update``.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_fused_lamb(weight_decay=0.01)
    >>> w = {'w': jnp.array([3.0, 4.0])}
    >>> u, _ = tx.update({'w': jnp.array([1.0, 1.0])}, tx.init(w), w)
    >>> # u = 0.1 / sqrt(0.001) + 0.01 w, ratio = 5 / |u|, step sqrt(0.001) / 0.1
    >>> [round(float(x), 4) for x in u['w']]
    [1.1163, 1.1198]

  References:
    You et al., 2020, `Large Batch Optimization for Deep Learning: Training
    BERT in 76 minutes <https://arxiv.org/abs/1904.00962>`_; DeepSpeed
    ``deepspeed/ops/lamb/fused_lamb.py`` and
    ``deepspeed/ops/csrc/lamb/fused_lamb_cuda_kernel.cu``.
  """
  _validation.check_range("b1", b1, 0.0, 1.0, high_inclusive=False)
  _validation.check_range("b2", b2, 0.0, 1.0, high_inclusive=False)
  _validation.check_rate("weight_decay", weight_decay)
  for name, value in (
    ("eps", eps),
    ("max_coeff", max_coeff),
    ("min_coeff", min_coeff),
  ):
    _validation.check_non_negative(name, value)
  eps_inside_sqrt = _validation.check_bool("eps_inside_sqrt", eps_inside_sqrt)
  bias_correction = _validation.check_bool("bias_correction", bias_correction)
  mask = checked_mask(weight_decay_mask)
  b1, b2 = _kernel_float("b1", b1), _kernel_float("b2", b2)
  if _validation.is_number(weight_decay) and weight_decay == 0:
    decay = optax.identity()
  else:
    decay = optax.add_decayed_weights(weight_decay, mask)
  step_size = _lamb_step_size(b1, b2) if bias_correction else optax.identity()
  return optax.chain(
    scale_by_adam_torch(
      b1, b2, eps, bias_correction=False, eps_inside_sqrt=eps_inside_sqrt
    ),
    decay,
    scale_by_clamped_trust_ratio(min_coeff, max_coeff),
    step_size,
  )
