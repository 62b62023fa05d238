r"""The gradient transformations BertAdam is chained from.

* :func:`clip_by_norm_per_tensor`: torch's ``clip_grad_norm_`` applied to each
  tensor on its own, as the original BertAdam does.
* :func:`clip_by_global_norm_torch`: the same rule over the whole tree
  (``clip_grad_norm_(model.parameters())``, DeepSpeed's ``gradient_clipping``).
* :func:`scale_by_bertadam`: Adam's moments without bias correction.
* :func:`scale_by_learning_rate`: the scheduled ``-lr`` whose state records the
  learning rate the *next* update applies, which is what
  :func:`bertadam_optax.get_lr` reads.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation

__all__ = [
    "ScaleByBertAdamState",
    "ScaleByLearningRateState",
    "clip_by_global_norm_torch",
    "clip_by_norm_per_tensor",
    "scale_by_bertadam",
    "scale_by_learning_rate",
]

# torch.nn.utils.clip_grad_norm_ adds this to the norm before dividing.
_TORCH_CLIP_EPS = 1e-6


def _float32_or_wider(dtype) -> jnp.dtype:
  """bfloat16/float16 widen to float32; float32 and float64 stay as they are."""
  return jnp.promote_types(dtype, jnp.float32)


def _sum_of_squares(g: chex.Array) -> chex.Array:
  g = g.astype(_float32_or_wider(g.dtype))
  return jnp.sum(g * g)


def _is_static_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def _torch_clip_coef(norm: chex.Array, max_norm: Any,
                     eps: float = _TORCH_CLIP_EPS) -> chex.Array:
  # Always multiply (by exactly 1 when not clipping), as torch does: a NaN or
  # Inf norm propagates into the gradient instead of being silently dropped.
  coef = jnp.minimum(max_norm / (norm + eps), 1.0)
  if _is_static_number(max_norm):
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
  if _is_static_number(max_norm) and max_norm <= 0:
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
  if _is_static_number(max_norm) and max_norm <= 0:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params
    leaves = jax.tree.leaves(updates)
    total = sum((_sum_of_squares(g) for g in leaves), jnp.float32(0))
    coef = _torch_clip_coef(jnp.sqrt(total), max_norm, eps)
    return jax.tree.map(lambda g: (g * coef).astype(g.dtype), updates), state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update_fn)


def _one_minus_power(b: Any, t: chex.Array) -> chex.Array:
  """``1 - b ** t`` for ``t >= 1``, accurate in float32 also for b near 1."""
  if not _is_static_number(b):
    return 1.0 - b ** t
  # float32's 1 - 0.999 ** t loses ~1e-5 relative to cancellation (0.999 is
  # not a float32); -expm1(t log b), with log b taken in float64, does not.
  log_b = math.log(b) if b > 0 else -math.inf
  return -jnp.expm1(t * log_b)


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
      return jnp.zeros_like(p, dtype or _float32_or_wider(p.dtype))

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
      correction1 = _one_minus_power(b1, t)
      correction2 = _one_minus_power(b2, t)

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


class ScaleByLearningRateState(NamedTuple):
  """State of :func:`scale_by_learning_rate`."""

  count: chex.Array  # int32 number of updates applied so far
  learning_rate: chex.Array  # the learning rate the next update applies


def scale_by_learning_rate(
    learning_rate: optax.ScalarOrSchedule,
    *,
    flip_sign: bool = True,
) -> optax.GradientTransformation:
  r"""Scales updates by ``-learning_rate(count)``, remembering the next rate.

  Like ``optax.scale_by_learning_rate``, but the state also carries the
  learning rate the *next* update will apply, ``learning_rate(count)``, so a
  training loop can log it (:func:`bertadam_optax.get_lr`) without knowing the
  schedule. ``count`` is the number of updates applied before this one, so the
  first update uses ``learning_rate(0)``.

  Args:
    learning_rate: a scalar or an ``optax.Schedule`` ``count -> lr``.
    flip_sign: multiply by ``-lr`` (gradient descent) rather than ``lr``.

  Returns:
    An ``optax.GradientTransformation`` with a
    :class:`ScaleByLearningRateState`.
  """
  schedule = learning_rate if callable(learning_rate) else (
      lambda count: learning_rate)
  sign = -1.0 if flip_sign else 1.0

  def value_at(count):
    return jnp.asarray(schedule(count), jnp.float32)

  def init_fn(params):
    del params
    count = jnp.zeros([], jnp.int32)
    return ScaleByLearningRateState(count=count, learning_rate=value_at(count))

  def update_fn(updates, state, params=None):
    del params
    # The rate for this update is recomputed rather than read from the state,
    # so that an ``optax.inject_hyperparams`` change of ``lr`` applies at once.
    step_size = sign * value_at(state.count)
    updates = jax.tree.map(lambda u: (step_size * u).astype(u.dtype), updates)
    count = optax.safe_increment(state.count)
    return updates, ScaleByLearningRateState(count=count,
                                             learning_rate=value_at(count))

  return optax.GradientTransformation(init_fn, update_fn)
