"""Tests of bertadam_optax/transforms/_learning_rate.py."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bertadam_optax import transforms


def test_scale_by_learning_rate_state_holds_the_next_rate():
  schedule = lambda count: 0.1 * (count + 1.0)
  tx = transforms.scale_by_learning_rate(schedule)
  u = {"w": jnp.ones((2,))}
  state = tx.init(u)
  assert int(state.count) == 0
  np.testing.assert_allclose(state.learning_rate, 0.1, rtol=1e-7)
  step = jax.jit(tx.update)
  for k in range(4):
    out, state = step(u, state)
    # This update used the rate of count k; the state now holds count k + 1's.
    np.testing.assert_allclose(out["w"], -0.1 * (k + 1), rtol=1e-6)
    assert int(state.count) == k + 1
    np.testing.assert_allclose(state.learning_rate, 0.1 * (k + 2), rtol=1e-6)
    assert state.learning_rate.dtype == jnp.float32


def test_scale_by_learning_rate_scalar_and_sign():
  u = {"w": jnp.full((2,), 2.0), "b": jnp.asarray(1.0, jnp.bfloat16)}
  descent = transforms.scale_by_learning_rate(0.5)
  ascent = transforms.scale_by_learning_rate(0.5, flip_sign=False)
  out, state = descent.update(u, descent.init(u))
  np.testing.assert_array_equal(out["w"], [-1.0, -1.0])
  assert out["b"].dtype == jnp.bfloat16
  np.testing.assert_allclose(state.learning_rate, 0.5)
  out, _ = ascent.update(u, ascent.init(u))
  np.testing.assert_array_equal(out["w"], [1.0, 1.0])


def test_scale_by_learning_rate_does_not_retrace():
  tx = transforms.scale_by_learning_rate(
    optax.linear_schedule(1.0, 0.0, transition_steps=10)
  )

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(u, state):
    return tx.update(u, state)

  u = {"w": jnp.ones((2,))}
  state = tx.init(u)
  for k in range(5):
    out, state = step(u, state)
    np.testing.assert_allclose(out["w"], -(1.0 - k / 10), rtol=1e-6)
