"""Tests of bertadam_optax/flatten.py: BertAdam on packed parameters.

The per-tensor clipped step is compared with pytorch-pretrained-bert's
``BertAdam`` itself; the global and unclipped ones, which the original does
not have, with the tree-wise :func:`bertadam_optax.bertadam`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import bertadam_optax as bo
from bertadam_optax import flatten
from tests.references import require

# Sizes around the 128-element block: smaller, equal, one over, several.
SHAPES = {"a": (3,), "b": (128,), "c": (129,), "d": (20, 13), "e": (1,)}
DECAY = {"a": True, "b": False, "c": True, "d": True, "e": False}


def _arrays(seed, scale):
  rng = np.random.default_rng(seed)
  return {
    k: (rng.standard_normal(s) * scale[k]).astype(np.float32)
    for k, s in SHAPES.items()
  }


# Gradients of norm well above and below the clipping norm of 1.
GRAD_SCALE = {"a": 3.0, "b": 0.01, "c": 1.0, "d": 0.05, "e": 2.0}
PARAM_SCALE = dict.fromkeys(SHAPES, 0.5)


def _grads(k):
  return _arrays(k + 1, GRAD_SCALE)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_per_tensor_matches_pytorch_pretrained_bert(steps):
  # A constant rate: the schedules are tested against the original on their
  # own; here the clipping, moments and decay mask on packed buffers are.
  torch = require("torch")
  optimization = require("pytorch_pretrained_bert.optimization")
  ours, state = _run_flat_with(_grads, "per_tensor", steps, t_total=-1)
  init = _arrays(0, PARAM_SCALE)
  tparams = {
    k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float64))
    for k, v in init.items()
  }
  groups = [
    {"params": [tparams[k] for k in SHAPES if DECAY[k]]},
    {
      "params": [tparams[k] for k in SHAPES if not DECAY[k]],
      "weight_decay": 0.0,
    },
  ]
  topt = optimization.BertAdam(groups, lr=1e-2, weight_decay=0.01)
  for k in range(steps):
    for name, g in _grads(k).items():
      tparams[name].grad = torch.tensor(g, dtype=torch.float64)
    topt.step()
  for name in SHAPES:
    np.testing.assert_allclose(
      np.asarray(ours[name]),
      tparams[name].detach().numpy(),
      rtol=1e-5,
      atol=1e-6,
      err_msg=name,
    )
  np.testing.assert_allclose(
    float(bo.get_lr(state)), topt.get_lr()[0], rtol=1e-6
  )


def _run_flat_with(grads_at, clip, steps, t_total=10):
  params = {k: jnp.asarray(v) for k, v in _arrays(0, PARAM_SCALE).items()}
  layout = flatten.layout_of(params, DECAY)
  flat = flatten.pack(layout, params)
  opt = flatten.flat_bertadam(
    layout, 1e-2, 0.2 if t_total > 0 else -1, t_total, clip=clip
  )
  state = opt.init(flat)
  step = jax.jit(opt.update)
  for k in range(steps):
    grads = {n: jnp.asarray(g) for n, g in grads_at(k).items()}
    updates, state = step(flatten.pack(layout, grads), state, flat)
    flat = optax.apply_updates(flat, updates)
  return flatten.unpack(layout, flat), state


@pytest.mark.parametrize("clip", ["per_tensor", "global", "none"])
def test_matches_tree_wise_bertadam(clip):
  ours, _ = _run_flat_with(_grads, clip, 4)
  params = {k: jnp.asarray(v) for k, v in _arrays(0, PARAM_SCALE).items()}
  opt = bo.bertadam(1e-2, 0.2, 10, clip=clip, weight_decay_mask=DECAY)
  state = opt.init(params)
  for k in range(4):
    grads = {n: jnp.asarray(g) for n, g in _grads(k).items()}
    updates, state = opt.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  for name in SHAPES:
    np.testing.assert_allclose(
      ours[name], params[name], rtol=1e-6, atol=1e-7, err_msg=name
    )


def test_pack_unpack_round_trip_and_zero_padding():
  tree = {k: jnp.asarray(v) for k, v in _arrays(3, GRAD_SCALE).items()}
  layout = flatten.layout_of(tree, DECAY)
  flat = flatten.pack(layout, tree)
  assert sorted(flat) == ["float32/decay", "float32/no_decay"]
  for buf in flat.values():
    assert buf.ndim == 2 and buf.shape[1] == 128
  # decay: 3 + 129 + 260 elements -> 1 + 2 + 3 blocks; no_decay: 128 + 1.
  assert flat["float32/decay"].shape[0] == 6
  assert flat["float32/no_decay"].shape[0] == 2
  total = sum(float(jnp.sum(jnp.abs(b))) for b in flat.values())
  np.testing.assert_allclose(
    total, sum(float(jnp.sum(jnp.abs(v))) for v in tree.values()), rtol=1e-6
  )
  jax.tree.map(
    np.testing.assert_array_equal, flatten.unpack(layout, flat), tree
  )


def test_weight_decay_mask_belongs_to_the_layout():
  layout = flatten.layout_of({"w": jnp.zeros(3)})
  with pytest.raises(ValueError, match="layout_of"):
    flatten.flat_bertadam(layout, 1e-3, weight_decay_mask={"w": True})


@pytest.mark.parametrize(
  "kwargs, name",
  [
    (dict(b1=1.0), "b1"),
    (dict(clip="per-tensor"), "clip"),
    (dict(e=-1.0), "e"),
  ],
)
def test_bad_hyperparameters_name_the_argument(kwargs, name):
  layout = flatten.layout_of({"w": jnp.zeros(3)})
  with pytest.raises(ValueError, match=name):
    flatten.flat_bertadam(layout, 1e-3, **kwargs)


def test_readme_snippet():
  # The README's code, verbatim.
  import jax
  import jax.numpy as jnp
  import optax

  from bertadam_optax import flatten

  params = {
    f"layer{i}": {"w": jnp.ones((64, 32)), "b": jnp.zeros(32)}
    for i in range(100)
  }
  mask = jax.tree.map(lambda p: p.ndim > 1, params)  # no decay on biases
  layout = flatten.layout_of(params, mask)
  flat = flatten.pack(layout, params)  # the parameters now live here
  opt = flatten.flat_bertadam(layout, 1e-4, warmup=0.1, t_total=1000)
  state = opt.init(flat)

  def loss_fn(flat, x):
    params = flatten.unpack(layout, flat)  # views, fused by XLA
    return sum(jnp.sum((x @ p["w"] + p["b"]) ** 2) for p in params.values())

  @jax.jit
  def train_step(flat, state, x):
    grads = jax.grad(loss_fn)(flat, x)
    updates, state = opt.update(grads, state, flat)
    return optax.apply_updates(flat, updates), state

  flat, state = train_step(flat, state, jnp.ones((8, 64)))
  # End of the README's code.
  assert set(flat) == {"float32/decay", "float32/no_decay"}
  # The second update of a 100-step warmup: lr * 1 / 100.
  np.testing.assert_allclose(float(bo.get_lr(state)), 1e-6, rtol=1e-6)


def test_traced_max_norm_of_zero_passes_gradients_through():
  # inject_hyperparams(max_grad_norm=0) is documented to disable clipping; a
  # copy of the clip coefficient without the traced guard zeroed every
  # gradient here.
  grads = {k: jnp.asarray(v) for k, v in _grads(0).items()}
  layout = flatten.layout_of(grads, DECAY)
  packed = flatten.pack(layout, grads)

  @jax.jit
  def clip(max_norm, g):
    tx = flatten.clip_by_norm_per_tensor_flat(layout, max_norm)
    return tx.update(g, tx.init(g))[0]

  jax.tree.map(np.testing.assert_array_equal, clip(0.0, packed), packed)
  jax.tree.map(np.testing.assert_array_equal, clip(-1.0, packed), packed)
  clipped = flatten.unpack(layout, clip(1.0, packed))
  # "a" has norm ~3*sqrt(3) > 1: clipped to norm 1 (torch's 1e-6 aside).
  np.testing.assert_allclose(np.linalg.norm(clipped["a"]), 1.0, rtol=1e-5)


def test_injected_max_grad_norm_of_zero_equals_no_clipping():
  params = {k: jnp.asarray(v) for k, v in _arrays(0, PARAM_SCALE).items()}
  layout = flatten.layout_of(params, DECAY)
  flat = flatten.pack(layout, params)
  injected = optax.inject_hyperparams(
    flatten.flat_bertadam, static_args=("layout", "warmup", "t_total")
  )(layout=layout, lr=1e-2, max_grad_norm=0.0)
  plain = flatten.flat_bertadam(layout, 1e-2, clip="none")
  grads = flatten.pack(
    layout, {k: jnp.asarray(v) for k, v in _grads(0).items()}
  )
  a, _ = jax.jit(injected.update)(grads, injected.init(flat), flat)
  b, _ = plain.update(grads, plain.init(flat), flat)
  # Injected b1, b2, e are float32 arrays, the plain ones Python floats: the
  # updates agree to float32 rounding, and no gradient is zeroed.
  jax.tree.map(
    lambda x, y: np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-9), a, b
  )
  assert all(float(jnp.max(jnp.abs(x))) > 0 for x in jax.tree.leaves(a))


@pytest.mark.parametrize(
  "kwargs, name",
  [
    (dict(lr=np.float32(-1e-4)), "lr"),
    (dict(max_grad_norm=float("nan")), "max_grad_norm"),
    (dict(t_total=100.5, warmup=0.1), "t_total"),
    (dict(mu_dtype="int32"), "mu_dtype"),
    (dict(weight_decay="0.01"), "weight_decay"),
  ],
)
def test_flat_bertadam_validates_like_bertadam(kwargs, name):
  layout = flatten.layout_of({"w": jnp.zeros(3)})
  kwargs.setdefault("lr", 1e-3)
  with pytest.raises(ValueError, match=name):
    flatten.flat_bertadam(layout, **kwargs)


def test_flat_bertadam_refuses_a_non_layout():
  with pytest.raises(ValueError, match="layout"):
    flatten.flat_bertadam({"w": jnp.zeros(3)}, 1e-3)


def test_docstring_examples_run():
  import doctest  # pylint: disable=import-outside-toplevel

  from bertadam_optax import flatten as module  # pylint: disable=import-outside-toplevel

  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0
  assert result.failed == 0
