"""Tests of bertadam_optax/transforms/_clipping.py against ``torch.nn.utils.clip_grad_norm_``."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms
from tests.references import require


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


def _torch_clip(grads, max_norm, per_tensor):
  torch = require("torch")
  params = {
    k: torch.nn.Parameter(torch.zeros(np.shape(g))) for k, g in grads.items()
  }
  for k, p in params.items():
    p.grad = torch.tensor(np.asarray(grads[k]))
  if per_tensor:
    for p in params.values():
      torch.nn.utils.clip_grad_norm_(p, max_norm)
  else:
    torch.nn.utils.clip_grad_norm_(list(params.values()), max_norm)
  return {k: p.grad.numpy() for k, p in params.items()}


@pytest.mark.parametrize("max_norm", [0.5, 1.0, 5.0])
def test_clip_by_norm_per_tensor_matches_torch(max_norm):
  grads = _grads()
  tx = transforms.clip_by_norm_per_tensor(max_norm)
  clipped, _ = jax.jit(tx.update)(grads, tx.init(grads))
  chex.assert_trees_all_close(
    clipped, _torch_clip(grads, max_norm, True), rtol=1e-6, atol=0
  )
  # Clipping engaged on some tensors and not on others.
  norm = lambda g: float(np.linalg.norm(g))
  assert norm(clipped["big"]) < norm(grads["big"])
  np.testing.assert_array_equal(clipped["small"], grads["small"])


@pytest.mark.parametrize("max_norm", [0, -1, -0.5])
def test_clip_by_norm_per_tensor_is_identity_when_disabled(max_norm):
  grads = _grads()
  tx = transforms.clip_by_norm_per_tensor(max_norm)
  clipped, _ = tx.update(grads, tx.init(grads))
  chex.assert_trees_all_equal(clipped, grads)


@pytest.mark.parametrize("max_norm", [0.5, 30.0])
def test_clip_by_global_norm_torch_matches_torch(max_norm):
  grads = _grads()
  tx = transforms.clip_by_global_norm_torch(max_norm)
  clipped, _ = jax.jit(tx.update)(grads, tx.init(grads))
  chex.assert_trees_all_close(
    clipped, _torch_clip(grads, max_norm, False), rtol=1e-6, atol=0
  )


def test_clip_by_global_norm_torch_differs_from_optax_by_the_epsilon():
  # At the threshold torch's rule still scales by c / (c + 1e-6); optax's not.
  g = {"w": np.full((4,), 0.5, np.float32)}  # norm exactly 1
  ours, _ = transforms.clip_by_global_norm_torch(1.0).update(g, None)
  theirs, _ = optax.clip_by_global_norm(1.0).update(g, None)
  np.testing.assert_array_equal(theirs["w"], g["w"])
  np.testing.assert_allclose(ours["w"], 0.5 / (1.0 + 1e-6), rtol=1e-7)
  assert float(ours["w"][0]) < 0.5


@pytest.mark.parametrize("max_norm,clipped_norm", [(1.0, 1.0), (-1.0, None)])
def test_traced_max_norm(max_norm, clipped_norm):
  grads = {"w": np.full((4,), 2.0, np.float32)}

  @jax.jit
  def clip(max_norm):
    tx = transforms.clip_by_norm_per_tensor(max_norm)
    return tx.update(grads, tx.init(grads))[0]["w"]

  out = clip(jnp.float32(max_norm))
  if clipped_norm is None:  # <= 0 disables, also when traced
    np.testing.assert_array_equal(out, grads["w"])
  else:
    np.testing.assert_allclose(np.linalg.norm(out), clipped_norm, rtol=1e-5)


def test_clipping_keeps_bfloat16():
  grads = {"w": jnp.full((8,), 3.0, jnp.bfloat16)}
  for tx in (
    transforms.clip_by_norm_per_tensor(1.0),
    transforms.clip_by_global_norm_torch(1.0),
  ):
    out, _ = tx.update(grads, tx.init(grads))
    assert out["w"].dtype == jnp.bfloat16
    np.testing.assert_allclose(
      np.asarray(out["w"], np.float32), 1 / np.sqrt(8), rtol=1e-2
    )
