"""Tests of bertadam_optax/transforms/_adam.py: ``scale_by_adam_torch``.

Compared with ``torch.optim.Adam`` (bias-corrected, eps outside the root) and
with a float64 NumPy evaluation of the formula (eps inside the root, which no
torch optimizer offers on its own).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms
from tests.references import require

SHAPES = {"w": (4, 3), "b": (3,), "s": ()}
STEPS = 6


def _grads(k):
  rng = np.random.default_rng(k)
  return {
    n: (rng.standard_normal(s) * (0.1 + k)).astype(np.float32)
    for n, s in SHAPES.items()
  }


def _run(tx, lr=1e-2):
  params = {n: jnp.ones(s) for n, s in SHAPES.items()}
  state = tx.init(params)
  step = jax.jit(tx.update)
  for k in range(STEPS):
    u, state = step(jax.tree.map(jnp.asarray, _grads(k)), state, params)
    params = jax.tree.map(lambda p, x: p - lr * x, params, u)
  return params, state


@pytest.mark.parametrize("b1,b2,eps", [(0.9, 0.999, 1e-8), (0.8, 0.95, 1e-3)])
def test_bias_corrected_matches_torch_adam(b1, b2, eps):
  torch = require("torch")
  ours, state = _run(transforms.scale_by_adam_torch(b1, b2, eps))
  tparams = {
    n: torch.nn.Parameter(torch.ones(s, dtype=torch.float64))
    for n, s in SHAPES.items()
  }
  opt = torch.optim.Adam(
    list(tparams.values()), lr=1e-2, betas=(b1, b2), eps=eps
  )
  for k in range(STEPS):
    for n, g in _grads(k).items():
      tparams[n].grad = torch.tensor(np.asarray(g, np.float64))
    opt.step()
  for n in SHAPES:
    np.testing.assert_allclose(
      ours[n], tparams[n].detach().numpy(), rtol=2e-6, atol=1e-7, err_msg=n
    )
  assert int(state.count) == STEPS


@pytest.mark.parametrize("bias_correction", [False, True])
def test_eps_inside_sqrt_matches_numpy(bias_correction):
  b1, b2, eps = 0.9, 0.99, 1e-4
  tx = transforms.scale_by_adam_torch(
    b1, b2, eps, eps_inside_sqrt=True, bias_correction=bias_correction
  )
  state = tx.init({n: jnp.zeros(s) for n, s in SHAPES.items()})
  m = {n: np.zeros(s) for n, s in SHAPES.items()}
  v = {n: np.zeros(s) for n, s in SHAPES.items()}
  for k in range(STEPS):
    g = _grads(k)
    u, state = tx.update(jax.tree.map(jnp.asarray, g), state)
    t = k + 1
    for n in SHAPES:
      m[n] = b1 * m[n] + (1 - b1) * g[n]
      v[n] = b2 * v[n] + (1 - b2) * np.square(np.float64(g[n]))
      c1, c2 = ((1 - b1**t), (1 - b2**t)) if bias_correction else (1, 1)
      expected = (m[n] / c1) / np.sqrt(v[n] / c2 + eps)
      np.testing.assert_allclose(u[n], expected, rtol=2e-6, atol=1e-8)


def test_bertadam_is_the_uncorrected_specialisation():
  a = _run(transforms.scale_by_bertadam(0.9, 0.999, 1e-6))
  b = _run(
    transforms.scale_by_adam_torch(0.9, 0.999, 1e-6, bias_correction=False)
  )
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert transforms.ScaleByBertAdamState is transforms.ScaleByAdamTorchState


@pytest.mark.parametrize(
  "kwargs,name",
  [
    (dict(b1=np.float32(1.5)), "b1"),
    (dict(b2=np.array(-0.1)), "b2"),
    (dict(eps=np.float64("nan")), "eps"),
    (dict(eps=float("inf")), "eps"),
    (dict(b1="0.9"), "b1"),
    (dict(b1=True), "b1"),
    (dict(mu_dtype="int32"), "mu_dtype"),
    (dict(bias_correction="false"), "bias_correction"),
    (dict(eps_inside_sqrt=1), "eps_inside_sqrt"),
  ],
)
def test_rejects_bad_hyperparameters(kwargs, name):
  with pytest.raises(ValueError, match=name):
    transforms.scale_by_adam_torch(**kwargs)


def test_scale_by_bertadam_rejects_numpy_out_of_range():
  with pytest.raises(ValueError, match=r"b1=.*1\.5"):
    transforms.scale_by_bertadam(np.float32(1.5))
  with pytest.raises(ValueError, match="mu_dtype='int32'"):
    transforms.scale_by_bertadam(mu_dtype="int32")


def test_traced_betas_under_inject_hyperparams():
  tx = optax.inject_hyperparams(transforms.scale_by_adam_torch)(b1=0.9)
  params = {n: jnp.ones(s) for n, s in SHAPES.items()}
  state = tx.init(params)
  u, _ = jax.jit(tx.update)(jax.tree.map(jnp.asarray, _grads(0)), state, params)
  direct, _ = transforms.scale_by_adam_torch(0.9).update(
    jax.tree.map(jnp.asarray, _grads(0)),
    transforms.scale_by_adam_torch(0.9).init(params),
  )
  for n in SHAPES:
    np.testing.assert_allclose(u[n], direct[n], rtol=1e-5)
