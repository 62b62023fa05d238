r"""The learning-rate schedules of ``transformers.get_scheduler``, in pure JAX.

Holds one factory per ``get_scheduler`` name, :func:`get_schedule`,
:func:`linear_warmup_cosine_decay` and ``ENTRIES``, their rows of the schedule
registry (families ``transformers`` and ``modern``).

Reproduces every ``LambdaLR``-based schedule of Hugging Face transformers 5.23
(``transformers/optimization.py``): at every step ``s`` the value equals
``learning_rate * lr_lambda(s)``, the learning rate that PyTorch's ``LambdaLR``
gives after ``s`` calls to ``scheduler.step()``, quirks included.
:func:`get_schedule` mirrors ``transformers.get_scheduler`` and dispatches to
one factory per name, named after the transformers function so that a search
for that name finds it:

=============================  ===================================================
``get_schedule`` name          factory (transformers function)
=============================  ===================================================
``linear``                     :func:`linear_schedule_with_warmup`
                               (``get_linear_schedule_with_warmup``)
``cosine``                     :func:`cosine_schedule_with_warmup`
                               (``get_cosine_schedule_with_warmup``)
``cosine_with_restarts``       :func:`cosine_with_hard_restarts_schedule_with_warmup`
                               (``get_cosine_with_hard_restarts_schedule_with_warmup``)
``polynomial``                 :func:`polynomial_decay_schedule_with_warmup`
                               (``get_polynomial_decay_schedule_with_warmup``)
``constant``                   :func:`constant_schedule` (``get_constant_schedule``)
``constant_with_warmup``       :func:`constant_schedule_with_warmup`
                               (``get_constant_schedule_with_warmup``)
``inverse_sqrt``               :func:`inverse_sqrt_schedule`
                               (``get_inverse_sqrt_schedule``)
``cosine_with_min_lr``         :func:`cosine_with_min_lr_schedule_with_warmup`
                               (``get_cosine_with_min_lr_schedule_with_warmup``)
``cosine_warmup_with_min_lr``  :func:`cosine_with_min_lr_schedule_with_warmup_lr_rate`
                               (``get_cosine_with_min_lr_schedule_with_warmup_lr_rate``)
``warmup_stable_decay``        :func:`wsd_schedule` (``get_wsd_schedule``)
=============================  ===================================================

``reduce_lr_on_plateau`` and ``greedy`` are driven by a metric, not by the step
count, so they are not schedules; :func:`get_schedule` refuses them.

The module also holds :func:`linear_warmup_cosine_decay`, the linear warmup and
floored cosine decay of LLM pretraining recipes, which holds its floor past the
end instead of rising again as transformers' cosine does.

Every schedule branches with ``jnp.where`` on the step count against integer
thresholds fixed at construction, which is exact for counts below ``2**24``,
and never produces a NaN in a branch it does not select, so gradients with
respect to the learning rate stay finite.
"""

from __future__ import annotations

import inspect
import math
import warnings
from typing import Any

import jax.numpy as jnp
import optax

from bertadam_optax import _validation
from bertadam_optax.schedules import _common
from bertadam_optax.schedules import _join
from bertadam_optax.schedules import _table

__all__ = [
  "TRANSFORMERS_SCHEDULES",
  "constant_schedule",
  "constant_schedule_with_warmup",
  "cosine_schedule_with_warmup",
  "cosine_with_hard_restarts_schedule_with_warmup",
  "cosine_with_min_lr_schedule_with_warmup",
  "cosine_with_min_lr_schedule_with_warmup_lr_rate",
  "get_schedule",
  "inverse_sqrt_schedule",
  "linear_schedule_with_warmup",
  "linear_warmup_cosine_decay",
  "polynomial_decay_schedule_with_warmup",
  "wsd_schedule",
]

_SHAPES = ("linear", "cosine", "1-sqrt")

_METRIC_DRIVEN = ("reduce_lr_on_plateau", "greedy")


def _check_learning_rate(learning_rate, name: str = "learning_rate"):
  return _common.static_float(_validation.check_number(name, learning_rate, 0))


def _check_steps(arg: str, value, schedule: str, low: int = 0) -> int:
  """A step count: an integer in ``[low, 2**31 - 1]`` (``None`` refused)."""
  if value is None:
    raise ValueError(
      f"{arg}=None: schedule {schedule!r} requires an integer {arg} >= {low}."
    )
  return _validation.check_int(arg, value, low)


def _check_warmup_within(
  num_warmup_steps: int,
  num_training_steps: int,
  schedule: str,
  strict: bool = False,
):
  over = (
    num_warmup_steps >= num_training_steps
    if strict
    else num_warmup_steps > num_training_steps
  )
  if over:
    bound = "<" if strict else "<="
    raise ValueError(
      f"num_warmup_steps={num_warmup_steps!r} is out of range; schedule "
      f"{schedule!r} expects 0 <= num_warmup_steps {bound} "
      f"num_training_steps={num_training_steps!r}."
    )


def _check_ratio(arg: str, value):
  return _common.static_float(_validation.check_number(arg, value, 0.0, 1.0))


def _floor(learning_rate, min_lr, min_lr_rate):
  """The absolute floor of the ``*_with_min_lr`` schedules.

  transformers turns ``min_lr`` into ``min_lr_rate = min_lr / lr``; keeping the
  floor absolute gives the same values without dividing by the learning rate
  (which may be 0 or a tracer).
  """
  if (min_lr is None) == (min_lr_rate is None):
    raise ValueError(
      f"min_lr={min_lr!r}, min_lr_rate={min_lr_rate!r}: exactly one of them "
      "must be set (min_lr in [0, learning_rate], min_lr_rate in [0, 1])."
    )
  if min_lr_rate is not None:
    return learning_rate * _check_ratio("min_lr_rate", min_lr_rate)
  high = learning_rate if _validation.is_number(learning_rate) else None
  return _common.static_float(
    _validation.check_number("min_lr", min_lr, 0.0, high)
  )


def _step(count):
  # float32 keeps the schedule out of float64 even with jax_enable_x64; whole
  # counts are exact in it up to 2**24.
  return jnp.asarray(count, jnp.float32)


def _clip(step, low, high):
  """``jnp.clip`` with float32 bounds (``None`` for no bound).

  Python numbers would enter ``jnp.clip`` as float64 or int64 arguments when
  ``jax_enable_x64`` is on.
  """
  return jnp.clip(
    step,
    None if low is None else jnp.float32(low),
    None if high is None else jnp.float32(high),
  )


def _ramp(step, num_warmup_steps: int):
  """Transformers' warmup ``step / max(1, num_warmup_steps)``."""
  return step / float(max(1, num_warmup_steps))


def _half_cosine(numerator, denominator):
  r"""``0.5 (1 + cos(pi (1 - numerator / denominator)))``.

  Computed as ``sin(pi/2 * numerator / denominator) ** 2``: the callers pass a
  numerator made of whole counts, exact in float32, so the value keeps its
  relative precision where the value approaches 0 (the end of a decay), which
  ``1 + cos(.)`` would cancel away.
  """
  return jnp.square(jnp.sin((0.5 * math.pi) * (numerator / denominator)))


def _cosine_wave(k, span: float, num_cycles: float):
  r"""``0.5 (1 + cos(2 pi num_cycles k / span))`` at ``k`` steps into the decay.

  Equal to ``_half_cosine(span - 2 num_cycles k, span)``; with the default
  ``num_cycles = 0.5`` the numerator is the exact count of remaining steps.
  The numerator is first reduced by whole periods (``2 span``): for whole or
  half ``num_cycles`` that is exact, and keeps the sine's argument small when
  the wave runs for many periods (past the end, or with many cycles).
  """
  numerator = span - (2.0 * num_cycles) * k
  period = 2.0 * span
  numerator = numerator - period * jnp.round(numerator / period)
  return _half_cosine(numerator, span)


def _check_warmup(num_warmup_steps, schedule: str) -> int:
  return _check_steps("num_warmup_steps", num_warmup_steps, schedule)


def _check_warmup_and_total(
  num_warmup_steps, num_training_steps, schedule: str, strict: bool = False
):
  warmup = _check_warmup(num_warmup_steps, schedule)
  total = _check_steps(
    "num_training_steps", num_training_steps, schedule, low=1
  )
  _check_warmup_within(warmup, total, schedule, strict=strict)
  return warmup, total


def constant_schedule(learning_rate: float) -> optax.Schedule:
  r"""A constant learning rate: :math:`\eta(s) = \eta_0`.

  In one line: ``lr``.

  Args:
    learning_rate: the learning rate ``eta_0`` (>= 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import constant_schedule
    >>> schedule = constant_schedule(1e-3)
    >>> [round(float(schedule(s)), 7) for s in (0, 1000)]
    [0.001, 0.001]

  References:
    transformers, ``optimization.py``: ``get_constant_schedule``.
  """
  learning_rate = _check_learning_rate(learning_rate)

  def schedule(count):
    return learning_rate * jnp.ones_like(_step(count))

  return schedule


def constant_schedule_with_warmup(
  learning_rate: float, num_warmup_steps: int
) -> optax.Schedule:
  r"""Linear warmup from 0, then constant.

  .. math::
    \eta(s) = \eta_0 \begin{cases} s / \max(1, w) & s < w \\
              1 & \text{otherwise} \end{cases}

  In one line: ``lr * (s/W if s < W else 1)``.

  Args:
    learning_rate: the learning rate ``eta_0`` reached after warmup (>= 0).
    num_warmup_steps: ``w`` (integer >= 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import constant_schedule_with_warmup
    >>> schedule = constant_schedule_with_warmup(1e-3, num_warmup_steps=10)
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 100)]
    [0.0, 0.0005, 0.001, 0.001]

  References:
    transformers, ``optimization.py``: ``get_constant_schedule_with_warmup``.
  """
  learning_rate = _check_learning_rate(learning_rate)
  warmup = _check_warmup(num_warmup_steps, "constant_with_warmup")

  def schedule(count):
    step = _step(count)
    return learning_rate * _join.warmup_then(
      step, warmup, _ramp(step, warmup), jnp.ones_like(step)
    )

  return schedule


def linear_schedule_with_warmup(
  learning_rate: float, num_warmup_steps: int, num_training_steps: int
) -> optax.Schedule:
  r"""Linear warmup from 0, then linear decay to 0 at ``num_training_steps``.

  .. math::
    \eta(s) = \eta_0 \begin{cases} s / \max(1, w) & s < w \\
              \max\!\left(0, \frac{T - s}{\max(1, T - w)}\right) &
              \text{otherwise} \end{cases}

  Past ``T`` the value stays at 0.

  In one line: ``lr * (s/W if s < W else max(0, (T - s)/(T - W)))``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    num_training_steps: ``T`` (integer > 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import linear_schedule_with_warmup
    >>> schedule = linear_schedule_with_warmup(1e-3, num_warmup_steps=100,
    ...                                        num_training_steps=1100)
    >>> [round(float(schedule(s)), 7) for s in (0, 50, 100, 600, 1100, 1500)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

  References:
    transformers, ``optimization.py``: ``get_linear_schedule_with_warmup``.
  """
  learning_rate = _check_learning_rate(learning_rate)
  warmup, total = _check_warmup_and_total(
    num_warmup_steps, num_training_steps, "linear"
  )
  span = float(max(1, total - warmup))

  def schedule(count):
    step = _step(count)
    decay = jnp.maximum((total - step) / span, jnp.float32(0))
    return learning_rate * _join.warmup_then(
      step, warmup, _ramp(step, warmup), decay
    )

  return schedule


def _check_num_cycles(num_cycles):
  return _common.static_float(
    _validation.check_number(
      "num_cycles", num_cycles, 0.0, None, low_inclusive=False
    )
  )


def cosine_schedule_with_warmup(
  learning_rate: float,
  num_warmup_steps: int,
  num_training_steps: int,
  num_cycles: float = 0.5,
) -> optax.Schedule:
  r"""Linear warmup from 0, then a cosine wave (by default, half a cosine to 0).

  .. math::
    \eta(s) = \eta_0 \begin{cases} s / \max(1, w) & s < w \\
              \tfrac12 \left(1 + \cos(2 \pi c\, p)\right) & \text{otherwise}
              \end{cases}
    \qquad p = \frac{s - w}{\max(1, T - w)}

  ``p`` is not clipped: past ``T`` the cosine continues and the learning rate
  rises again, as in transformers.

  In one line: ``lr * (s/W if s < W else 0.5 (1 + cos(pi (s - W)/(T - W))))``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    num_training_steps: ``T`` (integer > 0).
    num_cycles: ``c``, the number of cosine periods over the decay (> 0);
      0.5 decays to 0 exactly at ``T``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import cosine_schedule_with_warmup
    >>> schedule = cosine_schedule_with_warmup(1e-3, num_warmup_steps=10,
    ...                                        num_training_steps=110)
    >>> # p = 0.5 at step 60, 0.75 at 85; past T = 110 the cosine rises again.
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 60, 85, 110, 160)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0001464, 0.0, 0.0005]

  References:
    transformers, ``optimization.py``: ``get_cosine_schedule_with_warmup``.
  """
  return _cosine_with_floor(
    learning_rate,
    num_warmup_steps,
    num_training_steps,
    num_cycles,
    "cosine",
    min_lr=0.0,
    min_lr_rate=None,
  )


def cosine_with_min_lr_schedule_with_warmup(
  learning_rate: float,
  num_warmup_steps: int,
  num_training_steps: int,
  num_cycles: float = 0.5,
  min_lr: float | None = None,
  min_lr_rate: float | None = None,
) -> optax.Schedule:
  r"""Linear warmup from 0, then a cosine wave down to a floor ``min_lr``.

  .. math::
    \eta(s) = \begin{cases} \eta_0\, s / \max(1, w) & s < w \\
              \eta_{\min} + (\eta_0 - \eta_{\min})\,
              \tfrac12 \left(1 + \cos(2 \pi c\, p)\right) & \text{otherwise}
              \end{cases}
    \qquad p = \frac{s - w}{\max(1, T - w)}

  with ``eta_min = min_lr`` or ``min_lr_rate * eta_0``. As in
  :func:`cosine_schedule_with_warmup`, the cosine continues past ``T``.

  In one line: ``s/W lr if s < W else min_lr + (lr - min_lr) 0.5 (1 +
  cos(pi p)), p = (s - W)/(T - W)``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    num_training_steps: ``T`` (integer > 0).
    num_cycles: ``c`` (> 0).
    min_lr: the floor, in ``[0, learning_rate]``; exactly one of ``min_lr``
      and ``min_lr_rate`` must be given.
    min_lr_rate: the floor as a fraction of ``learning_rate``, in [0, 1].

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import (
    ...     cosine_with_min_lr_schedule_with_warmup)
    >>> schedule = cosine_with_min_lr_schedule_with_warmup(
    ...     1e-3, num_warmup_steps=10, num_training_steps=110, min_lr=1e-4)
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 60, 110)]
    [0.0, 0.0005, 0.001, 0.00055, 0.0001]

  References:
    transformers, ``optimization.py``:
    ``get_cosine_with_min_lr_schedule_with_warmup``.
  """
  return _cosine_with_floor(
    learning_rate,
    num_warmup_steps,
    num_training_steps,
    num_cycles,
    "cosine_with_min_lr",
    min_lr=min_lr,
    min_lr_rate=min_lr_rate,
  )


def _cosine_with_floor(
  learning_rate,
  num_warmup_steps,
  num_training_steps,
  num_cycles,
  name,
  min_lr,
  min_lr_rate,
):
  learning_rate = _check_learning_rate(learning_rate)
  warmup, total = _check_warmup_and_total(
    num_warmup_steps, num_training_steps, name
  )
  num_cycles = _check_num_cycles(num_cycles)
  floor = _floor(learning_rate, min_lr, min_lr_rate)
  span = float(max(1, total - warmup))

  def schedule(count):
    step = _step(count)
    wave = _cosine_wave(step - warmup, span, num_cycles)
    return _join.warmup_then(
      step,
      warmup,
      learning_rate * _ramp(step, warmup),
      floor + (learning_rate - floor) * wave,
    )

  return schedule


def cosine_with_min_lr_schedule_with_warmup_lr_rate(
  learning_rate: float,
  num_warmup_steps: int,
  num_training_steps: int,
  num_cycles: float = 0.5,
  min_lr: float | None = None,
  min_lr_rate: float | None = None,
  warmup_lr_rate: float | None = None,
) -> optax.Schedule:
  r"""Warmup that never starts at 0, then a cosine wave down to ``min_lr``.

  transformers' ``cosine_warmup_with_min_lr``: both phases are shifted by one
  step with respect to :func:`cosine_with_min_lr_schedule_with_warmup`, so
  the first step already trains and the last step of the decay reaches the
  floor.

  .. math::
    \eta(s) = \begin{cases} \eta_0\, (s + 1) / \max(1, w) &
              s < w,\ r_w \text{ unset} \\
              \eta_0 \left(r_w + (1 - r_w)\, s / \max(1, w - 1)\right) &
              s < w \\
              \eta_{\min} + (\eta_0 - \eta_{\min})\,
              \tfrac12 \left(1 + \cos(2 \pi c\, p)\right) & \text{otherwise}
              \end{cases}
    \qquad p = \frac{s - w + 1}{\max(1, T - w)}

  with ``r_w = warmup_lr_rate`` and ``eta_min = min_lr`` or
  ``min_lr_rate * eta_0``. The cosine continues past ``T``, as in
  transformers.

  In one line: ``as cosine_with_min_lr, both phases shifted one step
  (warmup never starts at 0)``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    num_training_steps: ``T`` (integer > 0).
    num_cycles: ``c`` (> 0).
    min_lr: the floor, in ``[0, learning_rate]``; exactly one of ``min_lr``
      and ``min_lr_rate`` must be given.
    min_lr_rate: the floor as a fraction of ``learning_rate``, in [0, 1].
    warmup_lr_rate: the warmup's starting fraction ``r_w`` of
      ``learning_rate``, in [0, 1]; ``None`` starts at ``1 / w``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import (
    ...     cosine_with_min_lr_schedule_with_warmup_lr_rate)
    >>> schedule = cosine_with_min_lr_schedule_with_warmup_lr_rate(
    ...     1e-3, num_warmup_steps=10, num_training_steps=110, min_lr=1e-4)
    >>> # Step 0 already trains at lr / w; the floor is reached at step 109.
    >>> [round(float(schedule(s)), 7) for s in (0, 9, 10, 59, 109)]
    [0.0001, 0.001, 0.0009998, 0.00055, 0.0001]

  References:
    transformers, ``optimization.py``:
    ``get_cosine_with_min_lr_schedule_with_warmup_lr_rate``.
  """
  name = "cosine_warmup_with_min_lr"
  learning_rate = _check_learning_rate(learning_rate)
  warmup, total = _check_warmup_and_total(
    num_warmup_steps, num_training_steps, name
  )
  num_cycles = _check_num_cycles(num_cycles)
  floor = _floor(learning_rate, min_lr, min_lr_rate)
  if warmup_lr_rate is not None:
    warmup_lr_rate = _check_ratio("warmup_lr_rate", warmup_lr_rate)
  span = float(max(1, total - warmup))

  def schedule(count):
    step = _step(count)
    if warmup_lr_rate is None:
      ramp = _ramp(step + 1.0, warmup)
    else:
      ramp = warmup_lr_rate + (1.0 - warmup_lr_rate) * _ramp(step, warmup - 1)
    wave = _cosine_wave(step - warmup + 1.0, span, num_cycles)
    return _join.warmup_then(
      step, warmup, learning_rate * ramp, floor + (learning_rate - floor) * wave
    )

  return schedule


def cosine_with_hard_restarts_schedule_with_warmup(
  learning_rate: float,
  num_warmup_steps: int,
  num_training_steps: int,
  num_cycles: float = 1,
) -> optax.Schedule:
  r"""Linear warmup, then ``num_cycles`` half cosines to 0, each restarting at 1.

  .. math::
    \eta(s) = \eta_0 \begin{cases} s / \max(1, w) & s < w \\
              \tfrac12 \left(1 + \cos(\pi \{c\, p\})\right) & p < 1 \\
              0 & \text{otherwise} \end{cases}
    \qquad p = \frac{s - w}{\max(1, T - w)}

  where ``{x}`` is the fractional part. Which cycle a step belongs to is
  decided at construction exactly as transformers decides it in float64:
  ``c * p`` can round to just below a whole number, and then the step ends the
  previous cycle (value near 0) instead of starting the next (value 1).

  In one line: ``lr * (s/W if s < W else 0.5 (1 + cos(pi frac(c p)))), p =
  (s - W)/(T - W), c = 1``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    num_training_steps: ``T`` (integer > 0).
    num_cycles: ``c``, the number of cosine cycles (> 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import (
    ...     cosine_with_hard_restarts_schedule_with_warmup)
    >>> schedule = cosine_with_hard_restarts_schedule_with_warmup(
    ...     1e-3, num_warmup_steps=10, num_training_steps=110, num_cycles=2)
    >>> # Two cycles of 50 steps: near 0 at step 59, back at the peak at 60.
    >>> [round(float(schedule(s)), 7) for s in (0, 10, 35, 59, 60, 85, 110)]
    [0.0, 0.001, 0.0005, 1e-06, 0.001, 0.0005, 0.0]

  References:
    transformers, ``optimization.py``:
    ``get_cosine_with_hard_restarts_schedule_with_warmup``.
  """
  learning_rate = _check_learning_rate(learning_rate)
  warmup, total = _check_warmup_and_total(
    num_warmup_steps, num_training_steps, "cosine_with_restarts"
  )
  num_cycles = _check_num_cycles(num_cycles)
  span = max(1, total - warmup)
  # The first step (counted from the end of warmup) of each later cycle, as
  # transformers' float64 ``num_cycles * (k / span)`` places it.
  starts = []
  for cycle in range(1, math.ceil(num_cycles)):
    start = _common.first_step_where(
      lambda k, c=cycle: float(num_cycles) * (k / span) >= c,
      math.ceil(cycle * span / num_cycles),
    )
    if start >= span:
      break
    starts.append(start)
  starts = jnp.asarray(starts, jnp.float32)
  span = float(span)

  def schedule(count):
    step = _step(count)
    k = step - warmup
    cycle = jnp.sum(k[..., None] >= starts, axis=-1, dtype=jnp.float32)
    # 1 - {c p} = ((cycle + 1) span - c k) / span, whole counts for whole c.
    wave = _half_cosine((cycle + 1.0) * span - num_cycles * k, span)
    value = jnp.where(k >= span, jnp.zeros_like(wave), wave)
    return learning_rate * _join.warmup_then(
      step, warmup, _ramp(step, warmup), value
    )

  return schedule


def polynomial_decay_schedule_with_warmup(
  learning_rate: float,
  num_warmup_steps: int,
  num_training_steps: int,
  lr_end: float = 1e-7,
  power: float = 1.0,
) -> optax.Schedule:
  r"""Linear warmup, then polynomial decay to the absolute ``lr_end``.

  .. math::
    \eta(s) = \begin{cases} \eta_0\, s / \max(1, w) & s < w \\
              \eta_{\text{end}} & s > T \\
              (\eta_0 - \eta_{\text{end}})
              \left(\frac{T - s}{T - w}\right)^{p} + \eta_{\text{end}} &
              \text{otherwise} \end{cases}

  ``lr_end`` is a learning rate, not a fraction: transformers divides it by
  the optimizer's initial learning rate and ``LambdaLR`` multiplies back, so
  the decay ends at ``lr_end`` whatever ``learning_rate`` is.

  In one line: ``s/W lr if s < W else (lr - min_lr) (1 - p)**power +
  min_lr, p = (s - W)/(T - W)``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (> ``lr_end``).
    num_warmup_steps: ``w`` (integer, ``0 <= w < T``; transformers divides by
      ``T - w``).
    num_training_steps: ``T`` (integer > 0).
    lr_end: the final learning rate, in ``[0, learning_rate)``.
    power: the exponent ``p`` (>= 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import (
    ...     polynomial_decay_schedule_with_warmup)
    >>> schedule = polynomial_decay_schedule_with_warmup(
    ...     1e-3, num_warmup_steps=10, num_training_steps=110, lr_end=1e-4,
    ...     power=2.0)
    >>> # Step 60: (1e-3 - 1e-4) * 0.5 ** 2 + 1e-4.
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 60, 110, 200)]
    [0.0, 0.0005, 0.001, 0.000325, 0.0001, 0.0001]

  References:
    transformers, ``optimization.py``:
    ``get_polynomial_decay_schedule_with_warmup``.
  """
  learning_rate = _check_learning_rate(learning_rate)
  warmup, total = _check_warmup_and_total(
    num_warmup_steps, num_training_steps, "polynomial", strict=True
  )
  high = learning_rate if _validation.is_number(learning_rate) else None
  lr_end = _common.static_float(
    _validation.check_number("lr_end", lr_end, 0.0, high, high_inclusive=False)
  )
  power = _common.static_float(_validation.check_number("power", power, 0.0))
  span = float(total - warmup)

  def schedule(count):
    step = _step(count)
    # Clipped so the unselected branches never see a negative base.
    remaining = (total - _clip(step, warmup, total)) / span
    decay = (learning_rate - lr_end) * remaining**power + lr_end
    return _join.warmup_then(
      step,
      warmup,
      learning_rate * _ramp(step, warmup),
      jnp.where(step > total, jnp.full_like(decay, lr_end), decay),
    )

  return schedule


def inverse_sqrt_schedule(
  learning_rate: float, num_warmup_steps: int, timescale: float | None = None
) -> optax.Schedule:
  r"""Linear warmup, then decay as the inverse square root of the step.

  .. math::
    \eta(s) = \eta_0 \begin{cases} s / \max(1, w) & s < w \\
              \sqrt{\tau / (s - w + \tau)} & \text{otherwise} \end{cases}

  In one line: ``lr * (s/W if s < W else sqrt(tau / (s - W + tau))), tau =
  W``.

  Args:
    learning_rate: the peak learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer >= 0).
    timescale: ``tau`` (> 0); ``None`` means ``w``, or 10000 if ``w == 0``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import inverse_sqrt_schedule
    >>> schedule = inverse_sqrt_schedule(1e-3, num_warmup_steps=100)
    >>> # timescale = 100: sqrt(100 / 400) = 1/2 at step 400, 1/3 at step 900.
    >>> [round(float(schedule(s)), 7) for s in (0, 50, 100, 400, 900)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0003333]

  References:
    transformers, ``optimization.py``: ``get_inverse_sqrt_schedule`` (after
    big_vision).
  """
  learning_rate = _check_learning_rate(learning_rate)
  warmup = _check_warmup(num_warmup_steps, "inverse_sqrt")
  if timescale is None:
    timescale = warmup or 10_000
  timescale = _common.static_number(
    "timescale", timescale, 0.0, None, low_inclusive=False
  )

  def schedule(count):
    step = _step(count)
    # Clipped so the unselected warmup branch never takes a negative root.
    decay = jnp.sqrt(
      timescale / (_clip(step, warmup, None) - warmup + timescale)
    )
    return learning_rate * _join.warmup_then(
      step, warmup, _ramp(step, warmup), decay
    )

  return schedule


def _wsd_rise(kind: str, done, span: float):
  """The warmup shape of :func:`wsd_schedule` at progress ``done / span``.

  ``1 - sqrt(1 - x)`` is written as ``x / (1 + sqrt(1 - x))``: no
  cancellation at the start of warmup, where it is smallest.
  """
  if kind == "linear":
    return done / span
  if kind == "cosine":
    return _half_cosine(done, span)
  return (done / span) / (1.0 + jnp.sqrt((span - done) / span))


def _wsd_fall(kind: str, done, span: float, num_cycles: float):
  """The decay shape of :func:`wsd_schedule` at progress ``done / span``.

  ``1 - sqrt(x)`` is written as ``(1 - x) / (1 + sqrt(x))``, with ``1 - x``
  from whole counts: no cancellation at the end of the decay.
  """
  if kind == "linear":
    return (span - done) / span
  if kind == "cosine":
    return _cosine_wave(done, span, num_cycles)
  return ((span - done) / span) / (1.0 + jnp.sqrt(done / span))


def wsd_schedule(
  learning_rate: float,
  num_warmup_steps: int,
  num_decay_steps: int,
  num_training_steps: int | None = None,
  num_stable_steps: int | None = None,
  warmup_type: str = "linear",
  decay_type: str = "cosine",
  min_lr_ratio: float = 0.0,
  num_cycles: float = 0.5,
) -> optax.Schedule:
  r"""Warmup-stable-decay: warmup from ``min_lr_ratio``, a plateau, a decay.

  With ``m = min_lr_ratio``, ``w``, ``S``, ``D`` the warmup, stable and decay
  lengths and ``g(x) = m + (1 - m) x``:

  .. math::
    \eta(s) = \eta_0 \begin{cases}
      g(f_{\text{warmup}}(s / \max(1, w))) & s < w \\
      1 & s < w + S \\
      g(f_{\text{decay}}((s - w - S) / \max(1, D))) & s < w + S + D \\
      m & \text{otherwise} \end{cases}

  Shapes: warmup ``linear`` ``x``, ``cosine`` ``(1 - cos(pi x)) / 2``,
  ``1-sqrt`` ``1 - sqrt(1 - x)``; decay ``linear`` ``1 - x``, ``cosine``
  ``(1 + cos(2 pi c x)) / 2``, ``1-sqrt`` ``1 - sqrt(x)``.

  In one line: ``lr * (s/W if s < W, then 1, then a cosine to min_lr over
  the last decay_steps of T)``.

  Args:
    learning_rate: the plateau learning rate ``eta_0`` (>= 0).
    num_warmup_steps: ``w`` (integer >= 0).
    num_decay_steps: ``D`` (integer >= 0).
    num_training_steps: the total; if ``num_stable_steps`` is None,
      ``S = num_training_steps - w - D`` (must be >= 0).
    num_stable_steps: ``S`` (integer >= 0); wins over ``num_training_steps``
      (with a warning when they disagree, as transformers warns).
    warmup_type: one of ``'linear'``, ``'cosine'``, ``'1-sqrt'``.
    decay_type: one of ``'linear'``, ``'cosine'``, ``'1-sqrt'``.
    min_lr_ratio: ``m``, start and end as a fraction of ``learning_rate``,
      in [0, 1].
    num_cycles: ``c`` of the cosine decay (> 0).

  Returns:
    A function ``count -> learning rate``, pure and jittable.

  Examples:
    >>> from bertadam_optax.schedules import wsd_schedule
    >>> schedule = wsd_schedule(1e-3, num_warmup_steps=10, num_decay_steps=20,
    ...                         num_training_steps=100, min_lr_ratio=0.1)
    >>> # Warmup over steps 0-9, plateau 10-79, cosine decay 80-99, then 1e-4.
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 79, 80, 90, 100, 150)]
    [0.0001, 0.00055, 0.001, 0.001, 0.001, 0.00055, 0.0001, 0.0001]

  References:
    transformers, ``optimization.py``: ``get_wsd_schedule``; Hu et al.,
    *MiniCPM* (2024), https://arxiv.org/abs/2404.06395.
  """
  name = "warmup_stable_decay"
  learning_rate = _check_learning_rate(learning_rate)
  warmup = _check_warmup(num_warmup_steps, name)
  decay = _check_steps("num_decay_steps", num_decay_steps, name)
  _validation.check_choice("warmup_type", warmup_type, _SHAPES)
  _validation.check_choice("decay_type", decay_type, _SHAPES)
  ratio = _check_ratio("min_lr_ratio", min_lr_ratio)
  num_cycles = _check_num_cycles(num_cycles)
  if num_stable_steps is None:
    if num_training_steps is None:
      raise ValueError(
        "num_training_steps=None, num_stable_steps=None: schedule "
        f"{name!r} requires one of them (integers >= 0)."
      )
    total = _check_steps("num_training_steps", num_training_steps, name)
    if total < warmup + decay:
      raise ValueError(
        f"num_training_steps={total!r} is out of range; schedule {name!r} "
        f"expects num_training_steps >= num_warmup_steps + num_decay_steps "
        f"= {warmup + decay} when num_stable_steps is None."
      )
    stable = total - warmup - decay
  else:
    stable = _check_steps("num_stable_steps", num_stable_steps, name)
    if (
      num_training_steps is not None
      and _check_steps("num_training_steps", num_training_steps, name)
      != warmup + stable + decay
    ):
      warnings.warn(
        f"num_training_steps={num_training_steps!r} and "
        f"num_stable_steps={stable!r} are both set and disagree; "
        "num_stable_steps is used, as in transformers.",
        stacklevel=2,
      )
  warmup_span = float(max(1, warmup))
  decay_span = float(max(1, decay))

  def schedule(count):
    step = _step(count)
    # Each phase sees its step clipped into its own range, so no shape ever
    # takes the square root of a negative number.
    rise = _wsd_rise(warmup_type, _clip(step, None, warmup), warmup_span)
    fall = _wsd_fall(
      decay_type,
      _clip(step - warmup - stable, 0, decay),
      decay_span,
      num_cycles,
    )
    factor = _join.join(
      step,
      (warmup, warmup + stable, warmup + stable + decay),
      (
        ratio + (1.0 - ratio) * rise,
        jnp.ones_like(step),
        ratio + (1.0 - ratio) * fall,
        jnp.full_like(step, ratio),
      ),
    )
    return learning_rate * factor

  return schedule


def linear_warmup_cosine_decay(
  peak_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> optax.Schedule:
  r"""Linear warmup from 0 to ``peak_lr``, then a half cosine down to ``min_lr``.

  .. math::
    \eta(s) = \begin{cases} \eta_{\max}\, s / w & s < w \\
      \eta_{\min} + (\eta_{\max} - \eta_{\min})\,
      \tfrac12 \left(1 + \cos(\pi p)\right) & w \le s \le T \\
      \eta_{\min} & s > T \end{cases}
    \qquad p = \frac{s - w}{\max(1, T - w)}

  equivalently ``peak_lr * (cos_part * (1 - min_lr / peak_lr) + min_lr /
  peak_lr)`` after warmup. Unlike transformers' cosine, the value holds at
  ``min_lr`` past ``total_steps`` instead of rising again. With
  ``warmup_steps == total_steps`` the value reaches ``peak_lr`` at
  ``total_steps`` and drops to ``min_lr`` after.

  In one line: ``s/W lr if s < W else min_lr + (lr - min_lr) 0.5 (1 +
  cos(pi p)), held at min_lr past T``.

  Args:
    peak_lr: ``eta_max`` (>= 0).
    warmup_steps: ``w`` (integer, ``0 <= w <= T``).
    total_steps: ``T`` (integer > 0).
    min_lr: ``eta_min``, in ``[0, peak_lr]``.

  Returns:
    A function ``count -> learning rate``, pure and jittable.


  Examples:
    >>> from bertadam_optax.schedules import linear_warmup_cosine_decay
    >>> schedule = linear_warmup_cosine_decay(3e-4, warmup_steps=100,
    ...                                       total_steps=1100, min_lr=3e-5)
    >>> [round(float(schedule(s)), 7) for s in (0, 50, 100, 600, 1100, 5000)]
    [0.0, 0.00015, 0.0003, 0.000165, 3e-05, 3e-05]

  References:
    Loshchilov & Hutter, *SGDR* (2017), https://arxiv.org/abs/1608.03983,
    with the linear warmup of Goyal et al. (2017),
    https://arxiv.org/abs/1706.02677.
  """
  name = "linear_warmup_cosine_decay"
  peak_lr = _check_learning_rate(peak_lr, "peak_lr")
  warmup = _check_steps("warmup_steps", warmup_steps, name)
  total = _check_steps("total_steps", total_steps, name, low=1)
  if warmup > total:
    raise ValueError(
      f"warmup_steps={warmup!r} is out of range; expected "
      f"0 <= warmup_steps <= total_steps={total!r}."
    )
  high = peak_lr if _validation.is_number(peak_lr) else None
  min_lr = _common.static_float(
    _validation.check_number("min_lr", min_lr, 0.0, high)
  )
  span = float(max(1, total - warmup))

  def schedule(count):
    step = _step(count)
    # 1 - progress = remaining / span from whole counts; with warmup_steps ==
    # total_steps, span is 1 and the single decay step is at the peak.
    remaining = span - (_clip(step, warmup, total) - warmup)
    decay = min_lr + (peak_lr - min_lr) * _half_cosine(remaining, span)
    return _join.warmup_then(
      step,
      warmup,
      peak_lr * _ramp(step, warmup),
      jnp.where(step > total, jnp.full_like(decay, min_lr), decay),
    )

  return schedule


# The factories' keywords that are uniform options of the registry.
_KEYWORDS = {
  "learning_rate": "lr",
  "peak_lr": "lr",
  "num_warmup_steps": "warmup",
  "warmup_steps": "warmup",
  "num_training_steps": "t_total",
  "total_steps": "t_total",
  "lr_end": "min_lr",
  "min_lr": "min_lr",
  "min_lr_ratio": "min_lr",
  "num_decay_steps": "decay_steps",
}


def _build(source: str):
  """``get_schedule(source, ...)`` from the registry's uniform options."""
  name = "transformers." + source

  def build(opts: _table.Options, extra: dict[str, Any]) -> optax.Schedule:
    steps = {"num_training_steps": opts.t_total}
    if "num_warmup_steps" in inspect.signature(_FACTORIES[source]).parameters:
      steps["num_warmup_steps"] = _table.warmup_steps(name, opts)
    if source == "polynomial" and opts.min_lr is not None:
      extra = {"lr_end": opts.min_lr, **extra}
    elif source in ("cosine_with_min_lr", "cosine_warmup_with_min_lr"):
      extra = {"min_lr": opts.min_lr, **extra}
    elif source == "warmup_stable_decay":
      extra = {"num_decay_steps": opts.decay_steps, **extra}
      if opts.min_lr is not None:
        extra = {"min_lr_ratio": _table.ratio(opts.min_lr, opts.lr), **extra}
    return get_schedule(source, opts.lr, **steps, **extra)

  return build


def _build_linear_warmup_cosine_decay(
  opts: _table.Options, extra: dict[str, Any]
) -> optax.Schedule:
  name = "modern.linear_warmup_cosine_decay"
  return linear_warmup_cosine_decay(
    opts.lr,
    _table.warmup_steps(name, opts),
    opts.t_total,
    **_table.drop_none(min_lr=opts.min_lr),
    **extra,
  )


def _transformers(source, factory, **kwargs) -> _table.ScheduleInfo:
  return _table.entry(
    "transformers",
    source,
    factory,
    _build(source),
    keywords=_KEYWORDS,
    **kwargs,
  )


ENTRIES: tuple[_table.ScheduleInfo, ...] = (
  _transformers("linear", linear_schedule_with_warmup),
  _transformers("cosine", cosine_schedule_with_warmup),
  _transformers(
    "cosine_with_restarts", cosine_with_hard_restarts_schedule_with_warmup
  ),
  _transformers("polynomial", polynomial_decay_schedule_with_warmup),
  _transformers("constant", constant_schedule),
  _transformers("constant_with_warmup", constant_schedule_with_warmup),
  _transformers("inverse_sqrt", inverse_sqrt_schedule),
  # min_lr or min_lr_rate: the uniform options have only min_lr.
  _transformers(
    "cosine_with_min_lr",
    cosine_with_min_lr_schedule_with_warmup,
    required=("min_lr",),
  ),
  _transformers(
    "cosine_warmup_with_min_lr",
    cosine_with_min_lr_schedule_with_warmup_lr_rate,
    required=("min_lr",),
  ),
  # num_training_steps or num_stable_steps: the uniform options have only
  # t_total.
  _transformers("warmup_stable_decay", wsd_schedule, required=("t_total",)),
  _table.entry(
    "modern",
    "linear_warmup_cosine_decay",
    linear_warmup_cosine_decay,
    _build_linear_warmup_cosine_decay,
    keywords=_KEYWORDS,
  ),
)
"""This module's rows of the schedule registry: ``transformers.<name>`` for
each :func:`get_schedule` name, ``modern.linear_warmup_cosine_decay``."""

_FACTORIES = {
  e.source: e.factory for e in ENTRIES if e.family == "transformers"
}

TRANSFORMERS_SCHEDULES = tuple(_FACTORIES)
"""The names :func:`get_schedule` accepts (``transformers.SchedulerType``
values, less the metric-driven ``reduce_lr_on_plateau`` and ``greedy``)."""

_COMMON_ARGS = ("learning_rate", "num_warmup_steps", "num_training_steps")


def get_schedule(
  name: str,
  learning_rate: float,
  num_warmup_steps: int | None = None,
  num_training_steps: int | None = None,
  **scheduler_specific_kwargs: Any,
) -> optax.Schedule:
  r"""The Optax schedule for a ``transformers.get_scheduler`` name.

  .. math::
    \eta(s) = \eta_0 \cdot \lambda_{\text{name}}(s)

  where ``lambda_name`` is the ``lr_lambda`` that transformers gives
  ``LambdaLR`` for ``name`` and the same arguments; see the factories listed
  in :data:`TRANSFORMERS_SCHEDULES` and the module docstring.

  As in transformers, arguments a schedule does not use are ignored:
  ``num_warmup_steps`` and ``num_training_steps`` for ``constant``,
  ``num_training_steps`` for ``constant_with_warmup`` and ``inverse_sqrt``.
  Unlike transformers, a scheduler-specific keyword the schedule does not take
  is an error for every name (transformers drops them silently for
  ``constant`` and ``constant_with_warmup``).

  Args:
    name: one of :data:`TRANSFORMERS_SCHEDULES` (a ``SchedulerType`` works
      too).
    learning_rate: the optimizer's learning rate ``eta_0`` (>= 0).
    num_warmup_steps: required by every name except ``constant``.
    num_training_steps: required by every name except ``constant``,
      ``constant_with_warmup``, ``inverse_sqrt`` and ``warmup_stable_decay``
      given ``num_stable_steps``.
    **scheduler_specific_kwargs: transformers' ``scheduler_specific_kwargs``
      (``num_cycles``, ``lr_end``, ``power``, ``timescale``, ``min_lr``,
      ``min_lr_rate``, ``warmup_lr_rate``, ``num_decay_steps``,
      ``num_stable_steps``, ``warmup_type``, ``decay_type``,
      ``min_lr_ratio``), as each factory takes them.

  Returns:
    A function ``count -> learning rate``, pure and jittable.


  Examples:
    >>> from bertadam_optax.schedules import get_schedule
    >>> schedule = get_schedule("linear", 1e-3, num_warmup_steps=10,
    ...                         num_training_steps=110)
    >>> [round(float(schedule(s)), 7) for s in (0, 5, 10, 60, 110, 200)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0, 0.0]

  References:
    transformers, ``optimization.py``: ``get_scheduler``.
  """
  name = getattr(name, "value", name)
  if name in _METRIC_DRIVEN:
    raise ValueError(
      f"name={name!r} is a metric-driven transformation, not a schedule: its "
      "learning rate depends on the losses seen, not only on the step; "
      f"expected one of {', '.join(repr(n) for n in TRANSFORMERS_SCHEDULES)}."
    )
  _validation.check_choice("name", name, TRANSFORMERS_SCHEDULES)
  factory = _FACTORIES[name]
  params = inspect.signature(factory).parameters
  specific = [p for p in params if p not in _COMMON_ARGS]
  for key in scheduler_specific_kwargs:
    if key not in specific:
      allowed = ", ".join(specific) if specific else "none"
      # transformers takes them as one dict; here they are plain keywords.
      hint = (
        " Pass them as keywords: get_schedule(name, ..., **kwargs)."
        if key == "scheduler_specific_kwargs"
        else ""
      )
      raise ValueError(
        f"{key}={scheduler_specific_kwargs[key]!r}: schedule {name!r} takes "
        f"no keyword {key!r}; its scheduler-specific keywords: "
        f"{allowed}.{hint}"
      )
  for key in specific:
    # A missing required keyword reaches the factory as None, which refuses
    # it with the allowed range.
    if params[key].default is inspect.Parameter.empty:
      scheduler_specific_kwargs.setdefault(key, None)
  steps = {
    "num_warmup_steps": num_warmup_steps,
    "num_training_steps": num_training_steps,
  }
  args = {key: value for key, value in steps.items() if key in params}
  return factory(learning_rate, **args, **scheduler_specific_kwargs)
