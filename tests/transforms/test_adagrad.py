"""Tests of bertadam_optax/transforms/_adagrad.py against ``torch.optim.Adagrad``."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bertadam_optax import transforms
from tests.references import require


@pytest.mark.parametrize("init,eps", [(0.0, 1e-10), (0.1, 1e-3)])
def test_matches_torch_adagrad(init, eps):
  torch = require("torch")
  rng = np.random.default_rng(0)
  grads = [rng.standard_normal((5,)).astype(np.float32) for _ in range(5)]
  tx = transforms.scale_by_adagrad_torch(init, eps)
  params = jnp.ones(5)
  state = tx.init(params)
  tparam = torch.nn.Parameter(torch.ones(5, dtype=torch.float64))
  opt = torch.optim.Adagrad(
    [tparam], lr=0.1, initial_accumulator_value=init, eps=eps
  )
  for g in grads:
    u, state = tx.update(jnp.asarray(g), state)
    params = params - 0.1 * u
    tparam.grad = torch.tensor(np.float64(g))
    opt.step()
  np.testing.assert_allclose(params, tparam.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(initial_accumulator_value=np.float32(-1)), "initial_accumulator"),
    (dict(eps=np.array(float("nan"))), "eps"),
    (dict(eps="1e-10"), "eps"),
  ],
)
def test_rejects_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    transforms.scale_by_adagrad_torch(**kwargs)


def test_jit_does_not_retrace():
  tx = transforms.scale_by_adagrad_torch()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(g, state):
    return tx.update(g, state)

  state = tx.init(jnp.ones(3))
  for _ in range(3):
    _, state = step(jnp.ones(3), state)
