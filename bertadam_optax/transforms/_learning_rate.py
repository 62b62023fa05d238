r"""A scheduled ``-lr`` whose state records the rate the next update applies."""

from __future__ import annotations

from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation

__all__ = ["ScaleByLearningRateState", "scale_by_learning_rate"]


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

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = scale_by_learning_rate(lambda count: 0.1 * (count + 1))
    >>> g = {'w': jnp.ones(1)}
    >>> u, state = tx.update(g, tx.init(g))
    >>> round(float(u['w'][0]), 6), round(float(state.learning_rate), 6)
    (-0.1, 0.2)

  References:
    optax ``scale_by_learning_rate``; PyTorch ``Optimizer.param_groups[i]['lr']``.
  """
  _validation.check_rate("learning_rate", learning_rate)
  flip_sign = _validation.check_bool("flip_sign", flip_sign)
  schedule = (
    learning_rate if callable(learning_rate) else (lambda count: learning_rate)
  )
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
    return updates, ScaleByLearningRateState(
      count=count, learning_rate=value_at(count)
    )

  return optax.GradientTransformation(init_fn, update_fn)
