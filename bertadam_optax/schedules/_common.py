"""Helpers shared by the schedule families.

The branch decisions of the PyTorch originals (``x < warmup`` with
``x = step / t_total``) are made in Python float64 on integer steps. Under
``jax.jit``, XLA:CPU rewrites ``step / t_total`` into ``step * (1 / t_total)``,
which is off by an ulp and flips the decision exactly at the warmup boundary
(``10 * float32(0.01) < 0.1``). So the decisions are made here, once, at
construction: the boundary becomes an integer step that the traced code
compares against, exact for every count below 2**24.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bertadam_optax import _validation

FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""The smallest normal float32: a warmup below it would divide by 0."""

FLOAT32_MAX = float(np.finfo(np.float32).max)


def first_step_at_or_above(fraction: float, total: float) -> int:
  """The smallest integer ``k >= 0`` with ``k / total >= fraction`` in float64.

  ``k / total`` is monotone in ``k`` (correctly rounded division), so the
  answer is found next to ``ceil(fraction * total)``.
  """
  if fraction <= 0:
    return 0
  k = max(0, math.ceil(fraction * total))
  while k > 0 and (k - 1) / total >= fraction:
    k -= 1
  while k / total < fraction:
    k += 1
  return k


def static_float(value: Any) -> Any:
  """A concrete number as a weakly typed Python float; tracers untouched.

  A NumPy float64 scalar (or 0-d array) would otherwise promote the schedule
  to float64 when ``jax_enable_x64`` is on; a Python float never does.
  """
  return float(value) if _validation.is_number(value) else value


def static_number(
  name: str,
  value: Any,
  low: float | None = None,
  high: float | None = None,
  **kwargs: Any,
) -> float:
  """A hyperparameter that fixes thresholds at construction, as a float.

  :func:`~bertadam_optax._validation.to_float`, refusing a tracer too: the
  value decides where the schedule's branches fall, before anything is traced.
  """
  if _validation.is_traced(value):
    raise ValueError(
      f"{name}={value!r} is traced; expected a concrete number "
      "(it fixes the schedule's thresholds at construction)."
    )
  return _validation.to_float(name, value, low, high, **kwargs)


def first_step_where(predicate: Callable[[int], bool], guess: float) -> int:
  """The smallest integer ``k >= 0`` with ``predicate(k)``, from ``guess``.

  ``predicate`` must be monotone in ``k`` (False, then True) and true within a
  few steps of ``guess``.
  """
  k = max(0, math.ceil(guess))
  while k > 0 and predicate(k - 1):
    k -= 1
  while not predicate(k):
    k += 1
  return k


def float32_inverse(value: float) -> float:
  """``1 / value`` held within float32 (0 for ``value <= 0``).

  A warmup of a few denormal steps has an inverse past float32's range, and
  ``0 * inf`` at step 0 would be NaN; only step 0 is ever in such a warmup.
  """
  if value <= 0:
    return 0.0
  return min(1.0 / value, FLOAT32_MAX)
