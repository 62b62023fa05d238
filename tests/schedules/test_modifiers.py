"""Tests of bertadam_optax/schedules/modifiers.py."""

from __future__ import annotations

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms
from bertadam_optax.schedules import modifiers
from tests.references import require


def test_shift_schedule_restarts_the_count():
  base = lambda k: jnp.asarray(k, jnp.float32) * 0.5
  shifted = modifiers.shift_schedule(base, 7)
  steps = np.arange(7, 40)
  np.testing.assert_array_equal(
    jax.jit(jax.vmap(shifted))(steps), (steps - 7) * 0.5
  )
  assert modifiers.shift_schedule(base, 0) is base


@pytest.mark.parametrize("lr_decay", [0.0, 0.01, 0.5])
def test_inverse_time_decay_matches_torch_adagrad(lr_decay):
  torch = require("torch")
  w0 = np.linspace(-1.0, 1.0, 6).astype(np.float32)
  grads = [np.sin(np.arange(6) * (k + 1)).astype(np.float32) for k in range(8)]
  param = torch.nn.Parameter(torch.tensor(w0))
  opt = torch.optim.Adagrad([param], lr=0.1, lr_decay=lr_decay)
  for g in grads:
    param.grad = torch.tensor(g)
    opt.step()
  opt_jax = optax.chain(
    transforms.scale_by_adagrad_torch(0.0, 1e-10),
    transforms.scale_by_learning_rate(
      modifiers.inverse_time_decay_schedule(0.1, lr_decay)
    ),
  )
  params = jnp.asarray(w0)
  state = opt_jax.init(params)
  for g in grads:
    updates, state = opt_jax.update(jnp.asarray(g), state, params)
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params, param.detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize(
  "call, name",
  [
    (lambda: modifiers.shift_schedule(lambda k: k, 1.5), "steps=1.5"),
    (lambda: modifiers.shift_schedule(3.0, 1), "schedule=3.0"),
    (lambda: modifiers.inverse_time_decay_schedule(0.1, -1.0), "lr_decay=-1"),
    (
      lambda: modifiers.inverse_time_decay_schedule(1e30, 0.1),
      r"schedule=1e\+30",
    ),
  ],
)
def test_bad_arguments_are_refused(call, name):
  with pytest.raises(ValueError, match=name):
    call()


def test_docstring_examples_run():
  result = doctest.testmod(modifiers, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0
