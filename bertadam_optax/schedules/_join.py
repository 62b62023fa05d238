"""The joins of schedule pieces: warmup, then decay, then a floor.

Every schedule of the package is pieces of the step joined at integer
boundaries fixed at construction (the end of warmup, of a plateau, of the
decay). :func:`join` writes that once: ``jnp.where`` on the step, so the
schedule traces once and selects each piece's value exactly as computed.
Unlike optax's ``join_schedules``, the pieces are values at the absolute
step, not schedules restarted at each boundary: the originals reproduced here
write their formulas in the absolute step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax.numpy as jnp

__all__ = ["join", "warmup_then"]


def join(step: Any, boundaries: Sequence[Any], pieces: Sequence[Any]) -> Any:
  """``pieces[i]`` where ``boundaries[i - 1] <= step < boundaries[i]``.

  Args:
    step: the step (an array; float32 in every schedule here).
    boundaries: increasing, one fewer than ``pieces``.
    pieces: the value of each piece, computed at ``step`` (both branches of a
      ``jnp.where`` are evaluated, so each must be finite everywhere).

  Returns:
    The joined value.
  """
  if len(pieces) != len(boundaries) + 1:
    raise ValueError(
      f"pieces={len(pieces)} values for boundaries="
      f"{len(boundaries)}; expected one more piece than "
      "boundaries."
    )
  value = pieces[-1]
  for boundary, piece in zip(reversed(boundaries), reversed(pieces[:-1])):
    value = jnp.where(step < boundary, piece, value)
  return value


def warmup_then(step: Any, warmup_end: Any, warmup: Any, after: Any) -> Any:
  """``warmup`` while ``step < warmup_end``, then ``after``."""
  return join(step, (warmup_end,), (warmup, after))
