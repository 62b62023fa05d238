"""Tests of bertadam_optax/transforms/_bertadam.py: the moments against a float64
NumPy evaluation written here and against ``optax.scale_by_adam``."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms


def _grads(seed=0):
  """Leaves of very different norms, a scalar and an empty array."""
  rng = np.random.RandomState(seed)
  return {
    "big": (5.0 * rng.normal(size=(4, 5))).astype(np.float32),  # norm ~22
    "near": (0.2 * rng.normal(size=(3, 4))).astype(np.float32),  # norm ~0.7
    "small": (1e-3 * rng.normal(size=(7,))).astype(np.float32),
    "scalar": np.float32(-3.0),
    "empty": np.zeros((0, 2), np.float32),
  }


def _numpy_bertadam(grads, b1, b2, eps, bias_correction=False):
  """float64 NumPy: the moments and update of each step."""
  m = {k: np.zeros(np.shape(g)) for k, g in grads[0].items()}
  v = {k: np.zeros(np.shape(g)) for k, g in grads[0].items()}
  out = []
  for t, step in enumerate(grads, start=1):
    update = {}
    for k, g in step.items():
      g = np.asarray(g, np.float64)
      m[k] = b1 * m[k] + (1 - b1) * g
      v[k] = b2 * v[k] + (1 - b2) * g * g
      mh, vh = m[k], v[k]
      if bias_correction:
        mh, vh = mh / (1 - b1**t), vh / (1 - b2**t)
      update[k] = mh / (np.sqrt(vh) + eps)
    out.append((update, dict(m), dict(v)))
  return out


@pytest.mark.parametrize("bias_correction", [False, True])
@pytest.mark.parametrize("b1,b2,eps", [(0.9, 0.999, 1e-6), (0.5, 0.9, 1e-3)])
def test_scale_by_bertadam_matches_numpy(b1, b2, eps, bias_correction):
  grads = [_grads(seed) for seed in range(6)]
  tx = transforms.scale_by_bertadam(
    b1, b2, eps, bias_correction=bias_correction
  )
  state = tx.init(grads[0])
  step = jax.jit(tx.update)
  expected = _numpy_bertadam(grads, b1, b2, eps, bias_correction)
  for t, (g, (update, m, v)) in enumerate(zip(grads, expected), start=1):
    u, state = step(g, state)
    assert int(state.count) == t
    chex.assert_trees_all_close(u, update, rtol=1e-5, atol=1e-7)
    chex.assert_trees_all_close(state.mu, m, rtol=1e-5, atol=1e-9)
    chex.assert_trees_all_close(state.nu, v, rtol=1e-5, atol=1e-12)


def test_bias_correction_equals_optax_scale_by_adam():
  # Gradients far below eps make eps's placement visible: optax puts it
  # outside the square root of the *corrected* second moment, as we do.
  rng = np.random.RandomState(3)
  grads = [
    {"w": (1e-7 * rng.normal(size=(16,))).astype(np.float32)} for _ in range(5)
  ]
  ours = transforms.scale_by_bertadam(bias_correction=True)
  adam = optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-6)
  s1, s2 = ours.init(grads[0]), adam.init(grads[0])
  for t, g in enumerate(grads, start=1):
    u1, s1 = ours.update(g, s1)
    u2, s2 = adam.update(g, s2)
    # optax's float32 1 - 0.999 ** t is off by ~1e-5 relative; ours is not.
    chex.assert_trees_all_close(u1, u2, rtol=3e-5)
    # eps before the correction (torch.optim.Adam's step-size form) is far
    # off, so the comparison above can tell the placements apart.
    c1, c2 = 1 - 0.9**t, 1 - 0.999**t
    torch_form = (s1.mu["w"] / (np.sqrt(s1.nu["w"]) + 1e-6)) * np.sqrt(c2) / c1
    assert np.max(np.abs(torch_form - u2["w"]) / np.abs(u2["w"])) > 0.05


def test_without_bias_correction_differs_from_adam():
  g = {"w": np.ones((3,), np.float32)}
  u, _ = transforms.scale_by_bertadam().update(
    g, transforms.scale_by_bertadam().init(g)
  )
  # m = 0.1, v = 0.001: the first update is 0.1 / (sqrt(0.001) + 1e-6), not 1.
  np.testing.assert_allclose(u["w"], 0.1 / (np.sqrt(0.001) + 1e-6), rtol=1e-6)


def test_mu_dtype_bfloat16():
  grads = [_grads(seed) for seed in range(4)]
  tx = transforms.scale_by_bertadam(mu_dtype=jnp.bfloat16)
  state = tx.init(grads[0])
  assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(state.mu))
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(state.nu))
  for g in grads:
    previous_mu = state.mu
    u, state = tx.update(g, state)
    for k in g:
      # The update uses the first moment before it is rounded for storage.
      mu = 0.9 * np.asarray(previous_mu[k], np.float32) + 0.1 * g[k]
      expected = mu / (np.sqrt(np.asarray(state.nu[k])) + 1e-6)
      np.testing.assert_allclose(u[k], expected, rtol=1e-5, atol=1e-7)
      np.testing.assert_array_equal(
        state.mu[k], jnp.asarray(mu).astype(jnp.bfloat16)
      )
  assert all(m.dtype == jnp.bfloat16 for m in jax.tree.leaves(state.mu))


@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16])
def test_low_precision_params_get_float32_moments(dtype):
  params = {"w": jnp.ones((3,), dtype), "s": jnp.asarray(2.0, dtype)}
  tx = transforms.scale_by_bertadam()
  state = tx.init(params)
  for tree in (state.mu, state.nu):
    assert {x.dtype for x in jax.tree.leaves(tree)} == {jnp.dtype(jnp.float32)}
  u, state = tx.update(jax.tree.map(lambda p: p * 3, params), state)
  assert {x.dtype for x in jax.tree.leaves(u)} == {jnp.dtype(jnp.float32)}
  assert {x.dtype for x in jax.tree.leaves(state.nu)} == {
    jnp.dtype(jnp.float32)
  }


@pytest.mark.parametrize(
  "b1,b2,eps",
  [
    (1.0, 0.999, 1e-6),
    (-0.1, 0.999, 1e-6),
    (0.9, 1.0, 1e-6),
    (0.9, 0.999, -1.0),
  ],
)
def test_scale_by_bertadam_rejects_bad_hyperparameters(b1, b2, eps):
  with pytest.raises(ValueError, match="is out of range"):
    transforms.scale_by_bertadam(b1, b2, eps)


def _has_float64(fn, *args):
  jaxpr = jax.make_jaxpr(fn)(*args)
  return "f64" in str(jaxpr)


@pytest.mark.parametrize("x64", [False, True])
def test_no_float64_in_the_graph(x64):
  params = {
    "w": jnp.ones((3, 2), jnp.float32),
    "b": jnp.zeros((2,), jnp.bfloat16),
  }
  chain = optax.chain(
    transforms.clip_by_norm_per_tensor(1.0),
    transforms.clip_by_global_norm_torch(1.0),
    transforms.scale_by_bertadam(bias_correction=True),
    transforms.scale_by_learning_rate(
      lambda count: 1e-3 / (1.0 + jnp.asarray(count, jnp.float32))
    ),
  )
  with jax.enable_x64(x64):
    assert jnp.zeros(()).dtype == (jnp.float64 if x64 else jnp.float32)
    state = chain.init(params)
    assert not _has_float64(chain.update, params, state, params)
    # The check can fail: a float64 parameter does put f64 in the graph.
    if x64:
      wide = {"w": jnp.ones((3, 2), jnp.float64)}
      assert _has_float64(chain.update, wide, chain.init(wide), wide)
