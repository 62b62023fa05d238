"""Dtype rules shared by the transformations (a private module)."""

from __future__ import annotations

import math
from typing import Any

import chex
import jax.numpy as jnp

from bertadam_optax import _validation

__all__ = ["float32_or_wider", "one_minus_power"]


def float32_or_wider(dtype) -> jnp.dtype:
  """bfloat16/float16 widen to float32; float32 and float64 stay as they are."""
  return jnp.promote_types(dtype, jnp.float32)


def one_minus_power(b: Any, t: chex.Array) -> chex.Array:
  """``1 - b ** t`` for ``t >= 1``, accurate in float32 also for b near 1."""
  if not _validation.is_number(b):
    return 1.0 - b**t
  # float32's 1 - 0.999 ** t loses ~1e-5 relative to cancellation (0.999 is
  # not a float32); -expm1(t log b), with log b taken in float64, does not.
  log_b = math.log(b) if b > 0 else -math.inf
  return -jnp.expm1(t * log_b)
