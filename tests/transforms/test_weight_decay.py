"""Tests for bertadam_optax/transforms/_weight_decay.py."""

from __future__ import annotations

import doctest

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import transforms
from bertadam_optax.schedules import megatron
from bertadam_optax.transforms import _weight_decay
from tests.references import require


def _params():
  return {
    "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3) / 7 - 0.3,
    "b": jnp.array([0.5, -0.25], jnp.float32),
  }


def test_constant_matches_optax_add_decayed_weights():
  params = _params()
  grads = jax.tree.map(lambda p: jnp.sin(p) + 1.0, params)
  mask = {"w": True, "b": False}
  ours = transforms.add_scheduled_decayed_weights(0.1, mask)
  theirs = optax.add_decayed_weights(0.1, mask)
  got, _ = ours.update(grads, ours.init(params), params)
  want, _ = theirs.update(grads, theirs.init(params), params)
  chex.assert_trees_all_equal(got, want)


def test_schedule_count_and_state():
  schedule = megatron.megatron_wd_schedule(0.0, 0.1, 10, "linear")
  decay = transforms.add_scheduled_decayed_weights(schedule)
  params = _params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  state = decay.init(params)
  step = jax.jit(chex.assert_max_traces(decay.update, n=1))
  chex.clear_trace_counter()
  for k in range(13):
    assert float(transforms.get_weight_decay(state)) == pytest.approx(
      float(schedule(k))
    )
    updates, state = step(zeros, state, params)
    # The update applies weight_decay(k), the value before the update.
    applied = float(schedule(k))
    chex.assert_trees_all_close(
      updates, jax.tree.map(lambda p, wd=applied: wd * p, params)
    )
  assert int(state.count) == 13
  assert state.weight_decay.dtype == jnp.float32


def test_adamw_chain_matches_torch_adamw_with_scheduled_lr_and_wd():
  torch = require("torch")
  lr = megatron.megatron_lr_schedule(1e-2, 1e-3, 3, 20, "cosine")
  wd = megatron.megatron_wd_schedule(0.01, 0.2, 20, "cosine")
  mask = {"w": True, "b": False}
  opt = optax.chain(
    optax.scale_by_adam(0.9, 0.95, 1e-8),
    transforms.add_scheduled_decayed_weights(wd, mask),
    transforms.scale_by_learning_rate(lr),
  )
  params = _params()
  state = opt.init(params)
  w = torch.nn.Parameter(torch.tensor(np.asarray(params["w"])))
  b = torch.nn.Parameter(torch.tensor(np.asarray(params["b"])))
  torch_opt = torch.optim.AdamW(
    [{"params": [w], "wd_mult": 1.0}, {"params": [b], "wd_mult": 0.0}],
    betas=(0.9, 0.95),
    eps=1e-8,
  )
  rng = np.random.default_rng(0)
  update = jax.jit(opt.update)
  for k in range(25):
    for group in torch_opt.param_groups:
      group["lr"] = float(lr(k))
      group["weight_decay"] = float(wd(k)) * group["wd_mult"]
    gw = rng.standard_normal((2, 3)).astype(np.float32)
    gb = rng.standard_normal(2).astype(np.float32)
    w.grad, b.grad = torch.tensor(gw), torch.tensor(gb)
    torch_opt.step()
    updates, state = update(
      {"w": jnp.asarray(gw), "b": jnp.asarray(gb)}, state, params
    )
    params = optax.apply_updates(params, updates)
  np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-5)
  np.testing.assert_allclose(params["b"], b.detach().numpy(), rtol=1e-5)


def test_mask_callable_prefix_and_traced_leaves():
  params = {
    "layer": {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2)},
    "norm": jnp.ones(2),
  }
  grads = jax.tree.map(jnp.zeros_like, params)
  prefix = {"layer": True, "norm": False}
  decay = transforms.add_scheduled_decayed_weights(0.5, prefix)
  updates, _ = decay.update(grads, decay.init(params), params)
  assert float(updates["layer"]["bias"][0]) == 0.5
  assert float(updates["norm"][0]) == 0.0
  by_rank = transforms.add_scheduled_decayed_weights(
    0.5, lambda p: jax.tree.map(lambda x: x.ndim > 1, p)
  )
  updates, _ = jax.jit(by_rank.update)(grads, by_rank.init(params), params)
  assert float(updates["layer"]["kernel"][0, 0]) == 0.5
  assert float(updates["layer"]["bias"][0]) == 0.0
  array_mask = {
    "layer": {"kernel": jnp.array(True), "bias": jnp.array(False)},
    "norm": jnp.array(True),
  }
  decay = transforms.add_scheduled_decayed_weights(0.5, array_mask)
  updates, _ = jax.jit(decay.update)(grads, decay.init(params), params)
  assert float(updates["layer"]["bias"][0]) == 0.0
  assert float(updates["norm"][0]) == 0.5


def test_bfloat16_params_keep_their_dtype():
  params = {"w": jnp.ones(3, jnp.bfloat16)}
  decay = transforms.add_scheduled_decayed_weights(0.1)
  updates, _ = decay.update(
    {"w": jnp.zeros(3, jnp.bfloat16)}, decay.init(params), params
  )
  assert updates["w"].dtype == jnp.bfloat16


@pytest.mark.parametrize(
  "value", [-0.1, "0.1", None, True, float("nan"), np.array([0.1, 0.2])]
)
def test_refuses_bad_weight_decay(value):
  with pytest.raises(ValueError, match="weight_decay"):
    transforms.add_scheduled_decayed_weights(value)


def test_refuses_bad_masks_at_init_and_missing_params():
  params = _params()
  with pytest.raises(ValueError, match="mask"):
    transforms.add_scheduled_decayed_weights(0.1, {"w": True}).init(params)
  with pytest.raises(ValueError, match="mask"):
    transforms.add_scheduled_decayed_weights(0.1, {"w": 1, "b": 0}).init(params)
  decay = transforms.add_scheduled_decayed_weights(0.1)
  with pytest.raises(ValueError, match="params"):
    decay.update(params, decay.init(params))


def test_get_weight_decay_walks_wrappers_and_refuses_without_stage():
  params = _params()
  inner = optax.chain(
    transforms.add_scheduled_decayed_weights(0.25),
    transforms.scale_by_learning_rate(1e-3),
  )
  state = optax.MultiSteps(inner, every_k_schedule=2).init(params)
  assert float(transforms.get_weight_decay(state)) == 0.25
  with pytest.raises(ValueError, match="weight decay"):
    transforms.get_weight_decay(optax.adam(1e-3).init(params))


def test_docstring_examples_run():
  result = doctest.testmod(_weight_decay, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0


def test_inject_hyperparams_weight_decay():
  params = _params()
  opt = optax.inject_hyperparams(
    transforms.add_scheduled_decayed_weights, static_args=("mask",)
  )(weight_decay=0.1)
  state = opt.init(params)
  state.hyperparams["weight_decay"] = jnp.asarray(0.3)
  zeros = jax.tree.map(jnp.zeros_like, params)
  updates, state = jax.jit(opt.update)(zeros, state, params)
  chex.assert_trees_all_close(updates, jax.tree.map(lambda p: 0.3 * p, params))
  assert float(transforms.get_weight_decay(state)) == pytest.approx(0.3)
