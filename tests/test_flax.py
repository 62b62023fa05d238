"""bertadam in Flax training loops: Linen ``TrainState`` and ``nnx.Optimizer``.

Runs README's 'Use with Flax' snippets as written (each trains the tiny BERT
masked-LM on one fixed batch), checks that their loss falls, and then trains
the Linen and the NNX model from the same weights with the snippets' own
train steps: the NNX run must end with exactly the Linen run's parameters and
learning rate. Also covers :class:`TinyBertMLMNNX` itself: same parameter
tree, same function and same weight-decay mask as the Linen model.
"""

from __future__ import annotations

import chex
import jax
import numpy as np
import pytest

from bertadam_optax import bert_weight_decay_mask
from bertadam_optax import get_lr
from bertadam_optax import path_to_name
from tests.references import require

require("flax")
# pylint: disable=g-import-not-at-top,wrong-import-position
from flax import nnx
from flax.training import train_state

from bertadam_optax.examples import tiny_bert

# README, 'Use with Flax', Linen block (verbatim).
README_LINEN = """
import jax
import jax.numpy as jnp
from flax.training import train_state

from bertadam_optax import bertadam, bert_weight_decay_mask, get_lr
from bertadam_optax.examples.tiny_bert import TinyBertConfig, TinyBertMLM, mlm_loss

config = TinyBertConfig(vocab_size=64, hidden_size=32, num_layers=1,
                        num_heads=2, intermediate_size=64, max_len=16)
model = TinyBertMLM(config)
params = model.init(jax.random.key(0), jnp.zeros((8, 16), jnp.int32))["params"]
tx = bertadam(1e-2, warmup=0.1, t_total=40,
              weight_decay_mask=bert_weight_decay_mask)  # no decay: biases, LayerNorm
state = train_state.TrainState.create(apply_fn=model.apply, params=params, tx=tx)


@jax.jit
def train_step(state, batch):
  def loss_fn(params):
    logits = state.apply_fn({"params": params}, batch["inputs"])
    return mlm_loss(logits, batch["targets"], batch["weights"])

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads=grads), loss


tokens = jax.random.randint(jax.random.key(1), (8, 16), 0, config.vocab_size)
masked = jax.random.bernoulli(jax.random.key(2), 0.15, tokens.shape)
batch = {"inputs": jnp.where(masked, 0, tokens), "targets": tokens,
         "weights": masked.astype(jnp.float32)}
for step in range(40):
  state, loss = train_step(state, batch)
print(f"loss {loss:.3f}, next learning rate {get_lr(state.opt_state):.2e}")
"""

# README, 'Use with Flax', NNX block (verbatim).
README_NNX = """
import jax
import jax.numpy as jnp
from flax import nnx

from bertadam_optax import bertadam, bert_weight_decay_mask, get_lr
from bertadam_optax.examples.tiny_bert import TinyBertConfig, TinyBertMLMNNX, mlm_loss

config = TinyBertConfig(vocab_size=64, hidden_size=32, num_layers=1,
                        num_heads=2, intermediate_size=64, max_len=16)
model = TinyBertMLMNNX(config, rngs=nnx.Rngs(0))
tx = bertadam(1e-2, warmup=0.1, t_total=40,
              weight_decay_mask=bert_weight_decay_mask)
optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)


@nnx.jit
def train_step(model, optimizer, batch):
  def loss_fn(model):
    return mlm_loss(model(batch["inputs"]), batch["targets"], batch["weights"])

  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


tokens = jax.random.randint(jax.random.key(1), (8, 16), 0, config.vocab_size)
masked = jax.random.bernoulli(jax.random.key(2), 0.15, tokens.shape)
batch = {"inputs": jnp.where(masked, 0, tokens), "targets": tokens,
         "weights": masked.astype(jnp.float32)}
for step in range(40):
  loss = train_step(model, optimizer, batch)
print(f"loss {loss:.3f}, next learning rate {float(get_lr(optimizer.opt_state)):.2e}")
"""

_STEPS = 40


def _run(snippet):
  namespace = {}
  exec(snippet, namespace)  # pylint: disable=exec-used
  return namespace


@pytest.fixture(scope="module")
def linen():
  return _run(README_LINEN)


@pytest.fixture(scope="module")
def nnx_run():
  return _run(README_NNX)


def _initial_loss(apply, batch):
  return float(
    tiny_bert.mlm_loss(
      apply(batch["inputs"]), batch["targets"], batch["weights"]
    )
  )


def test_linen_train_state_loss_falls(linen):
  model, params, batch = linen["model"], linen["params"], linen["batch"]
  initial = _initial_loss(lambda x: model.apply({"params": params}, x), batch)
  assert int(linen["state"].step) == _STEPS
  assert float(linen["loss"]) < 0.5 * initial


def test_nnx_optimizer_loss_falls(nnx_run):
  initial_model = tiny_bert.TinyBertMLMNNX(nnx_run["config"], rngs=nnx.Rngs(0))
  initial = _initial_loss(initial_model, nnx_run["batch"])
  assert int(nnx_run["optimizer"].step[...]) == _STEPS
  assert float(nnx_run["loss"]) < 0.5 * initial


def test_nnx_and_linen_from_the_same_weights_train_identically(linen, nnx_run):
  config, params, batch = linen["config"], linen["params"], linen["batch"]
  state = train_state.TrainState.create(
    apply_fn=linen["model"].apply, params=params, tx=linen["tx"]
  )
  model = tiny_bert.tiny_bert_nnx_from_linen(params, config)
  optimizer = nnx.Optimizer(model, nnx_run["tx"], wrt=nnx.Param)
  for _ in range(_STEPS):
    state, linen_loss = linen["train_step"](state, batch)
    nnx_loss = nnx_run["train_step"](model, optimizer, batch)
    chex.assert_trees_all_equal(nnx_loss, linen_loss)
  chex.assert_trees_all_equal(
    nnx.to_pure_dict(nnx.state(model, nnx.Param)), state.params
  )
  chex.assert_trees_all_equal(
    get_lr(nnx.as_pure(optimizer.opt_state)), get_lr(state.opt_state)
  )
  # Straight from the NNX optimizer too: an array, not a Variable.
  assert isinstance(get_lr(optimizer.opt_state), jax.Array)
  chex.assert_trees_all_equal(
    get_lr(optimizer.opt_state), get_lr(state.opt_state)
  )
  moments = nnx.as_pure(optimizer.opt_state)[1]
  chex.assert_trees_all_equal(
    nnx.to_pure_dict(moments.mu), state.opt_state[1].mu
  )
  chex.assert_trees_all_equal(
    nnx.to_pure_dict(moments.nu), state.opt_state[1].nu
  )


def test_nnx_twin_has_the_linen_tree_and_function(linen):
  config, params, batch = linen["config"], linen["params"], linen["batch"]
  model = tiny_bert.tiny_bert_nnx_from_linen(params, config)
  chex.assert_trees_all_equal(
    nnx.to_pure_dict(nnx.state(model, nnx.Param)), params
  )
  fresh = tiny_bert.TinyBertMLMNNX(config, rngs=nnx.Rngs(3))
  chex.assert_trees_all_equal_shapes_and_dtypes(
    nnx.to_pure_dict(nnx.state(fresh, nnx.Param)), params
  )
  chex.assert_trees_all_equal(
    model(batch["inputs"]),
    linen["model"].apply({"params": params}, batch["inputs"]),
  )


def _decayed_names(mask):
  return sorted(
    path_to_name(path)
    for path, decayed in jax.tree_util.tree_leaves_with_path(mask)
    if decayed
  )


def test_nnx_mask_decays_what_the_linen_mask_decays(linen):
  model = tiny_bert.tiny_bert_nnx_from_linen(linen["params"], linen["config"])
  # nnx.Optimizer builds the mask on a State of Params at init and on plain
  # arrays at update; both must name the leaves as Linen does.
  linen_names = _decayed_names(bert_weight_decay_mask(linen["params"]))
  assert (
    _decayed_names(bert_weight_decay_mask(nnx.state(model, nnx.Param)))
    == linen_names
  )
  assert (
    _decayed_names(
      bert_weight_decay_mask(nnx.as_pure(nnx.state(model, nnx.Param)))
    )
    == linen_names
  )
  # The attention 'value' projection is a parameter, not NNX's Variable.value.
  assert "layer_0.value.kernel" in linen_names
  assert not any(name.endswith(("bias", "scale")) for name in linen_names)
  expected = sorted(
    path_to_name(path)
    for path, leaf in jax.tree_util.tree_leaves_with_path(linen["params"])
    if np.ndim(leaf) > 1
  )
  assert linen_names == expected
