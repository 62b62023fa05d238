r"""Learning-rate stages driven by the loss: ``ReduceLROnPlateau``, ``GreedyLR``.

Both scale the updates by ``-lr`` and then read the loss passed to ``update``
as ``value=`` (optax's extra-args protocol), changing the rate of the next
update the way torch's ``scheduler.step(loss)`` does after
``optimizer.step()``. Their states hold a
:class:`~bertadam_optax.transforms.ScaleByLearningRateState`, so
:func:`bertadam_optax.get_lr` reads the next rate.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.transforms._learning_rate import ScaleByLearningRateState

__all__ = [
  "GreedyState",
  "ReduceLROnPlateauState",
  "greedy",
  "reduce_lr_on_plateau",
]


def _is_metric_better(current, best, mode, threshold_mode, threshold):
  if mode == "min":
    bound = (
      best * (1.0 - threshold)
      if threshold_mode == "rel"
      else (best - threshold)
    )
    return current < bound
  bound = (
    best * (1.0 + threshold) if threshold_mode == "rel" else (best + threshold)
  )
  return current > bound


def _check_metric_args(
  mode, factor, threshold, threshold_mode, patience, cooldown, min_lr, eps
):
  _validation.check_choice("mode", mode, ("min", "max"))
  _validation.check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
  _validation.check_number("factor", factor, 0.0, 1.0, high_inclusive=False)
  _validation.check_number("threshold", threshold, 0.0)
  _validation.check_int("patience", patience)
  _validation.check_int("cooldown", cooldown)
  if isinstance(min_lr, (list, tuple)):
    raise ValueError(
      f"min_lr={min_lr!r}: per-param-group lists are not "
      "supported; expected a single number."
    )
  _validation.check_number("min_lr", min_lr, 0.0)
  _validation.check_number("eps", eps, 0.0)


def _apply_lr(updates, lr):
  return jax.tree.map(lambda u: (-lr * u).astype(u.dtype), updates)


class ReduceLROnPlateauState(NamedTuple):
  """State of :func:`reduce_lr_on_plateau`."""

  best: chex.Array  # best loss so far (float32)
  num_bad_epochs: chex.Array  # int32
  cooldown_counter: chex.Array  # int32
  # ``learning_rate`` is the rate of the next update, read by ``get_lr``.
  scale: ScaleByLearningRateState


def reduce_lr_on_plateau(
  learning_rate: float,
  mode: str = "min",
  factor: float = 0.1,
  patience: int = 10,
  threshold: float = 1e-4,
  threshold_mode: str = "rel",
  cooldown: int = 0,
  min_lr: float = 0.0,
  eps: float = 1e-8,
) -> optax.GradientTransformationExtraArgs:
  r"""Torch's ``ReduceLROnPlateau`` as the learning-rate stage of a chain.

  Scales the updates by ``-lr``, then reads the loss (``value=``) as
  ``scheduler.step(loss)`` after ``optimizer.step()`` does: when the loss has
  not improved on the best (by ``threshold``, relative or absolute) for more
  than ``patience`` updates, outside a ``cooldown``,

  .. math::
    \eta \leftarrow \max(\eta\,\text{factor}, \eta_{\min})
    \quad \text{if the change exceeds eps.}

  Args:
    learning_rate: the starting learning rate.
    mode: ``"min"`` (a loss) or ``"max"``.
    factor: in [0, 1).
    patience: updates without improvement tolerated.
    threshold: improvement needed.
    threshold_mode: ``"rel"`` or ``"abs"``.
    cooldown: updates after a reduction during which nothing is counted.
    min_lr: lower bound.
    eps: smallest change applied.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes
    ``value=`` (the loss of the micro-batch, or last micro-batch, of this
    update). Its state holds the next learning rate for
    :func:`bertadam_optax.get_lr`.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = reduce_lr_on_plateau(1.0, factor=0.5, patience=0)
    >>> g = {'w': jnp.ones(1)}
    >>> state = tx.init(g)
    >>> for loss in (1.0, 2.0, 2.0):
    ...   _, state = tx.update(g, state, value=loss)
    >>> float(state.scale.learning_rate)  # halved after each worse loss
    0.25

  References:
    PyTorch, ``torch/optim/lr_scheduler.py``: ``ReduceLROnPlateau``;
    transformers ``get_reduce_on_plateau_schedule``.
  """
  _check_metric_args(
    mode, factor, threshold, threshold_mode, patience, cooldown, min_lr, eps
  )
  _validation.check_number(
    "learning_rate", learning_rate, 0.0, _validation.MAX_RATE
  )
  worse = math.inf if mode == "min" else -math.inf

  def init_fn(params):
    del params
    return ReduceLROnPlateauState(
      best=jnp.asarray(worse, jnp.float32),
      num_bad_epochs=jnp.zeros([], jnp.int32),
      cooldown_counter=jnp.zeros([], jnp.int32),
      scale=ScaleByLearningRateState(
        count=jnp.zeros([], jnp.int32),
        learning_rate=jnp.asarray(learning_rate, jnp.float32),
      ),
    )

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    lr = state.scale.learning_rate
    updates = _apply_lr(updates, lr)
    current = jnp.asarray(value, jnp.float32)
    better = _is_metric_better(
      current, state.best, mode, threshold_mode, threshold
    )
    best = jnp.where(better, current, state.best)
    bad = jnp.where(better, 0, state.num_bad_epochs + 1)
    cooling = state.cooldown_counter > 0
    counter = jnp.where(
      cooling, state.cooldown_counter - 1, state.cooldown_counter
    )
    bad = jnp.where(cooling, 0, bad)
    reduce = bad > patience
    reduced = jnp.maximum(lr * factor, min_lr)
    lr = jnp.where(reduce & (lr - reduced > eps), reduced, lr)
    counter = jnp.where(reduce, cooldown, counter)
    bad = jnp.where(reduce, 0, bad)
    return updates, ReduceLROnPlateauState(
      best=best,
      num_bad_epochs=bad,
      cooldown_counter=counter,
      scale=ScaleByLearningRateState(
        count=optax.safe_increment(state.scale.count), learning_rate=lr
      ),
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)


class GreedyState(NamedTuple):
  """State of :func:`greedy`."""

  best: chex.Array  # float32
  num_bad_epochs: chex.Array  # int32
  num_good_epochs: chex.Array  # int32
  cooldown_counter: chex.Array  # int32
  warmup_counter: chex.Array  # int32
  reset_start: chex.Array  # int32
  window: chex.Array  # the last ``window_size`` losses (smooth=True)
  window_count: chex.Array  # int32, losses in the window
  scale: ScaleByLearningRateState


def greedy(
  learning_rate: float,
  mode: str = "min",
  factor: float = 0.95,
  patience: int = 10,
  threshold: float = 1e-6,
  threshold_mode: str = "abs",
  cooldown: int = 0,
  warmup: int = 0,
  min_lr: float = 1e-3,
  max_lr: float = 1.0,
  eps: float = 1e-8,
  smooth: bool = False,
  window_size: int = 50,
  reset_start: int = 500,
) -> optax.GradientTransformationExtraArgs:
  r"""Transformers' ``GreedyLR`` as the learning-rate stage of a chain.

  Scales the updates by ``-lr``, then reads the loss (``value=``; with
  ``smooth`` the mean of the last ``window_size`` losses). More than
  ``patience`` improvements in a row divide the rate by ``factor`` (up to
  ``max_lr``) and start a ``warmup`` pause; more than ``patience`` updates
  without improvement multiply it by ``factor`` (down to ``min_lr``) and
  start a ``cooldown``. After ``reset_start`` reductions that find the rate
  at ``min_lr`` it returns to ``learning_rate`` and forgets the best loss.
  transformers' defaults, including ``min_lr = 1e-3`` (which exceeds
  typical learning rates: the first reduction then *raises* the rate to
  1e-3, as in transformers).

  Args:
    learning_rate: the starting learning rate.
    mode, factor, patience, threshold, threshold_mode, cooldown, warmup,
    min_lr, max_lr, eps, smooth, window_size, reset_start: as ``GreedyLR``.

  Returns:
    An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes
    ``value=``; its state holds the next learning rate for
    :func:`bertadam_optax.get_lr`.

  Examples:
    >>> import jax.numpy as jnp
    >>> tx = greedy(0.1, factor=0.5, patience=0, min_lr=0.01)
    >>> g = {'w': jnp.ones(1)}
    >>> state = tx.init(g)
    >>> for loss in (1.0, 0.5):
    ...   _, state = tx.update(g, state, value=loss)
    >>> round(float(state.scale.learning_rate), 6)  # improving: doubled twice
    0.4

  References:
    transformers, ``optimization.py``: ``GreedyLR``.
  """
  _check_metric_args(
    mode, factor, threshold, threshold_mode, patience, cooldown, min_lr, eps
  )
  _validation.check_number(
    "learning_rate", learning_rate, 0.0, _validation.MAX_RATE
  )
  _validation.check_number("max_lr", max_lr, 0.0)
  warmup = _validation.check_int("warmup", warmup)
  window_size = _validation.check_int("window_size", window_size, 1)
  reset_start = _validation.check_int("reset_start", reset_start)
  smooth = _validation.check_bool("smooth", smooth)
  worse = math.inf if mode == "min" else -math.inf
  size = window_size if smooth else 1

  def fresh(lr, count, window, window_count, reset):
    return GreedyState(
      best=jnp.asarray(worse, jnp.float32),
      num_bad_epochs=jnp.zeros([], jnp.int32),
      num_good_epochs=jnp.zeros([], jnp.int32),
      cooldown_counter=jnp.zeros([], jnp.int32),
      warmup_counter=jnp.zeros([], jnp.int32),
      reset_start=jnp.asarray(reset, jnp.int32),
      window=window,
      window_count=window_count,
      scale=ScaleByLearningRateState(count=count, learning_rate=lr),
    )

  def init_fn(params):
    del params
    return fresh(
      jnp.asarray(learning_rate, jnp.float32),
      jnp.zeros([], jnp.int32),
      jnp.zeros([size], jnp.float32),
      jnp.zeros([], jnp.int32),
      reset_start,
    )

  def update_fn(updates, state, params=None, *, value, **extra_args):
    del params, extra_args
    lr = state.scale.learning_rate
    updates = _apply_lr(updates, lr)
    current = jnp.asarray(value, jnp.float32)
    window, window_count = state.window, state.window_count
    if smooth:
      # A ring buffer: slot ``n % size`` holds the oldest of the window.
      window = window.at[window_count % size].set(current)
      window_count = window_count + 1
      current = jnp.sum(window) / jnp.minimum(window_count, size)
    cooling = state.cooldown_counter > 0
    warming = ~cooling & (state.warmup_counter > 0)
    active = ~cooling & ~warming
    better = _is_metric_better(
      current, state.best, mode, threshold_mode, threshold
    )
    best = jnp.where(active & better, current, state.best)
    good = jnp.where(active & better, state.num_good_epochs + 1, 0)
    bad = jnp.where(active & ~better, state.num_bad_epochs + 1, 0)
    increase = active & (good > patience)
    decrease = active & ~increase & (bad > patience)

    raised = jnp.minimum(lr / factor, max_lr)
    lowered = jnp.maximum(lr * factor, min_lr)
    new_lr = jnp.where(increase & (raised - lr > eps), raised, lr)
    new_lr = jnp.where(decrease & (lr - lowered > eps), lowered, new_lr)
    cooldown_counter = jnp.where(
      cooling, state.cooldown_counter - 1, jnp.where(decrease, cooldown, 0)
    )
    warmup_counter = jnp.where(
      cooling,
      state.warmup_counter,
      jnp.where(
        warming, state.warmup_counter - 1, jnp.where(increase, warmup, 0)
      ),
    )
    good = jnp.where(increase, 0, good)
    bad = jnp.where(decrease, 0, bad)
    reset = jnp.where(increase, reset_start, state.reset_start)
    at_min = decrease & ~(new_lr > min_lr)
    reset = jnp.where(at_min, reset - 1, reset)
    count = optax.safe_increment(state.scale.count)
    stepped = GreedyState(
      best=best,
      num_bad_epochs=bad,
      num_good_epochs=good,
      cooldown_counter=cooldown_counter,
      warmup_counter=warmup_counter,
      reset_start=reset,
      window=window,
      window_count=window_count,
      scale=ScaleByLearningRateState(count=count, learning_rate=new_lr),
    )
    restarted = fresh(
      jnp.asarray(learning_rate, jnp.float32),
      count,
      jnp.zeros_like(window),
      jnp.zeros_like(window_count),
      reset_start,
    )
    do_reset = at_min & (reset <= 0)
    return updates, jax.tree.map(
      lambda a, b: jnp.where(do_reset, a, b), restarted, stepped
    )

  return optax.GradientTransformationExtraArgs(init_fn, update_fn)
