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
