r"""Schedules made from another schedule: shifted in the step, or decayed.

Two things PyTorch runs do to a learning rate besides its schedule, kept here
(not in the config readers) so that every schedule of the package lives under
:mod:`bertadam_optax.schedules`:

* :func:`shift_schedule`: the schedule seen from another origin, as a run that
  restarts its schedule at a step (bing_bert's ``--rewarmup``) sees it.
* :func:`inverse_time_decay_schedule`: torch ``Adagrad``'s ``lr_decay``, the
  rate divided by ``1 + k * lr_decay`` at its ``k``-th update.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from bertadam_optax import _validation

__all__ = ["inverse_time_decay_schedule", "shift_schedule"]


def shift_schedule(schedule: optax.Schedule, steps: int) -> optax.Schedule:
  r"""``schedule`` started ``steps`` updates later: ``schedule(k - steps)``.

  .. math::
    \eta'(k) = \eta(k - s)

  Args:
    schedule: a ``count -> value`` schedule.
    steps: ``s``, an integer in the int32 range (negative: started earlier).

  Returns:
    The shifted schedule.

  Examples:
    >>> from bertadam_optax.schedules import shift_schedule
    >>> shifted = shift_schedule(lambda k: k * 2, 10)
    >>> int(shifted(15))
    10
  """
  steps = _validation.check_int(
    "steps", steps, -_validation.INT32_MAX, _validation.INT32_MAX
  )
  if not callable(schedule):
    raise ValueError(f"schedule={schedule!r} is not a schedule (a callable).")
  if steps == 0:
    return schedule
  return lambda count: schedule(count - steps)


def inverse_time_decay_schedule(
  schedule: optax.ScalarOrSchedule, lr_decay: float
) -> optax.Schedule:
  r"""The rate over ``1 + k * lr_decay``: torch ``Adagrad``'s ``lr_decay``.

  .. math::
    \eta'(k) = \frac{\eta(k)}{1 + k \, d}

  with ``k`` the number of updates applied before this one (torch divides its
  ``k``-th step's rate by ``1 + (k - 1) d``, counting from 1).

  Args:
    schedule: a scalar rate or a ``count -> value`` schedule.
    lr_decay: ``d >= 0``.

  Returns:
    The decayed schedule.

  Examples:
    >>> from bertadam_optax.schedules import inverse_time_decay_schedule
    >>> decayed = inverse_time_decay_schedule(0.1, 0.5)
    >>> print(f"{float(decayed(0)):.4f} {float(decayed(2)):.4f}")
    0.1000 0.0500

  References:
    PyTorch, ``torch/optim/adagrad.py`` (``clr = lr / (1 + (step - 1) *
    lr_decay)``).
  """
  _validation.check_rate("schedule", schedule)
  _validation.check_number("lr_decay", lr_decay, 0.0)
  base = schedule if callable(schedule) else (lambda count: schedule)

  def decayed(count):
    return base(count) / (1.0 + jnp.asarray(count, jnp.float32) * lr_decay)

  return decayed
