"""Tests of ``bertadam_optax.checkpoint``: resuming loses nothing.

The reference is the uninterrupted run itself: 20 steps straight through
against 10 steps, a checkpoint, a fresh initialisation (in this process and
in a new one) restored from it, and 10 more steps. Parameters, both moments,
the counts and ``get_lr`` must be bit-identical. Checkpoints written for
another optimizer configuration or model must be refused, naming the paths.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bertadam_optax import bert_weight_decay_mask
from bertadam_optax import bertadam
from bertadam_optax import get_lr
from tests.references import require

require("orbax.checkpoint")
# pylint: disable=g-import-not-at-top,wrong-import-position
from bertadam_optax.checkpoint import restore_checkpoint
from bertadam_optax.checkpoint import save_checkpoint

ROOT = pathlib.Path(__file__).resolve().parents[1]
STEPS, SAVE_AT = 20, 10

# README, 'Checkpointing' (verbatim).
README_CHECKPOINT = """
import jax
import jax.numpy as jnp
import optax

from bertadam_optax import bertadam, get_lr
from bertadam_optax.checkpoint import restore_checkpoint, save_checkpoint

tx = bertadam(1e-2, warmup=0.1, t_total=20)
params = {"dense": {"kernel": jnp.full((4, 2), 0.5), "bias": jnp.zeros(2)}}
opt_state = tx.init(params)


@jax.jit
def train_step(params, opt_state, x):
  grads = jax.grad(lambda p: jnp.sum((x @ p["dense"]["kernel"] + p["dense"]["bias"]) ** 2))(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


for step in range(10):
  params, opt_state = train_step(params, opt_state, jnp.ones((3, 4)))
save_checkpoint("checkpoints", 10, params, opt_state)

# Later, in a new process: initialise as usual, then restore into it.
fresh = {"dense": {"kernel": jnp.zeros((4, 2)), "bias": jnp.zeros(2)}}
params, opt_state = restore_checkpoint("checkpoints", 10, fresh, tx.init(fresh))
print(f"resumed after step 10; next learning rate {get_lr(opt_state):.2e}")
"""


def make_tx(**overrides):
  kwargs = dict(
    lr=1e-2, warmup=0.1, t_total=STEPS, weight_decay_mask=bert_weight_decay_mask
  )
  kwargs.update(overrides)
  return bertadam(**kwargs)


def init_params(seed):
  k1, k2 = jax.random.split(jax.random.key(seed))
  return {
    "dense_0": {"kernel": jax.random.normal(k1, (6, 8)), "bias": jnp.zeros(8)},
    "LayerNorm": {"scale": jnp.ones(8), "bias": jnp.zeros(8)},
    "dense_1": {"kernel": jax.random.normal(k2, (8, 3)), "bias": jnp.zeros(3)},
  }


def batch(step):
  rng = np.random.default_rng(step)
  return (
    rng.normal(size=(4, 6)).astype(np.float32),
    rng.normal(size=(4, 3)).astype(np.float32),
  )


def loss_fn(params, x, y):
  h = x @ params["dense_0"]["kernel"] + params["dense_0"]["bias"]
  h = (h - h.mean(-1, keepdims=True)) / (h.std(-1, keepdims=True) + 1e-5)
  h = jnp.tanh(h * params["LayerNorm"]["scale"] + params["LayerNorm"]["bias"])
  out = h @ params["dense_1"]["kernel"] + params["dense_1"]["bias"]
  return jnp.mean((out - y) ** 2)


TX = make_tx()


@jax.jit
def train_step(params, opt_state, x, y):
  grads = jax.grad(loss_fn)(params, x, y)
  updates, opt_state = TX.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def train(params, opt_state, start, stop):
  for step in range(start, stop):
    params, opt_state = train_step(params, opt_state, *batch(step))
  return params, opt_state


def resume(directory, seed):
  """A fresh run: new initialisation, then the checkpoint restored into it."""
  params_like = init_params(seed)
  return restore_checkpoint(
    directory, SAVE_AT, params_like, TX.init(params_like)
  )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
  directory = tmp_path_factory.mktemp("ckpt")
  params = init_params(0)
  params, opt_state = train(params, TX.init(params), 0, SAVE_AT)
  save_checkpoint(directory, SAVE_AT, params, opt_state)
  at_save = (params, opt_state)
  final = train(params, opt_state, SAVE_AT, STEPS)
  return directory, at_save, final


def assert_bit_identical(got, want):
  got_params, got_state = got
  want_params, want_state = want
  chex.assert_trees_all_equal_structs(got_state, want_state)
  chex.assert_trees_all_equal(got_params, want_params)
  chex.assert_trees_all_equal(got_state[1].mu, want_state[1].mu)
  chex.assert_trees_all_equal(got_state[1].nu, want_state[1].nu)
  chex.assert_trees_all_equal(got_state, want_state)
  chex.assert_trees_all_equal(get_lr(got_state), get_lr(want_state))


def test_restore_returns_exactly_what_was_saved(uninterrupted):
  directory, at_save, _ = uninterrupted
  restored = resume(directory, seed=1)
  assert_bit_identical(restored, at_save)
  assert int(restored[1][1].count) == SAVE_AT
  # The fresh initialisation differed, so the values did come from disk.
  assert not np.array_equal(
    init_params(1)["dense_0"]["kernel"], restored[0]["dense_0"]["kernel"]
  )


def test_resumed_run_is_bit_identical_to_the_uninterrupted_one(uninterrupted):
  directory, _, final = uninterrupted
  params, opt_state = resume(directory, seed=1)
  assert_bit_identical(train(params, opt_state, SAVE_AT, STEPS), final)


def test_latest_step_is_restored_by_default(uninterrupted):
  directory, at_save, _ = uninterrupted
  params_like = init_params(2)
  restored = restore_checkpoint(
    directory, None, params_like, TX.init(params_like)
  )
  assert_bit_identical(restored, at_save)


_RESUME_IN_NEW_PROCESS = """
import sys
from tests import test_checkpoint as t
params, opt_state = t.resume(sys.argv[1], seed=3)
params, opt_state = t.train(params, opt_state, t.SAVE_AT, t.STEPS)
t.save_checkpoint(sys.argv[2], t.STEPS, params, opt_state)
"""


def test_resumed_in_a_new_process_is_bit_identical(uninterrupted, tmp_path):
  directory, _, final = uninterrupted
  out = tmp_path / "resumed"
  env = dict(os.environ)
  env["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), env.get("PYTHONPATH")])
  )
  result = subprocess.run(
    [sys.executable, "-c", _RESUME_IN_NEW_PROCESS, str(directory), str(out)],
    cwd=ROOT,
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-4000:]
  params_like = init_params(4)
  restored = restore_checkpoint(out, STEPS, params_like, TX.init(params_like))
  assert_bit_identical(restored, final)


@pytest.mark.parametrize(
  "other, paths",
  [
    (
      make_tx(weight_decay=0.0),
      [
        "only in the checkpoint: 2.inner_state",
        "only in the target: 2 (empty)",
        "differs: stage 2 (checkpoint MaskedState, target EmptyState)",
      ],
    ),
    (
      optax.MultiSteps(make_tx(), 2),
      [
        "only in the checkpoint: 1.mu.dense_0",
        "only in the target: acc_grads.",
      ],
    ),
    (
      make_tx(mu_dtype=jnp.bfloat16),
      [
        "differs: 1.mu.dense_0.kernel (checkpoint float32[6, 8], "
        "target bfloat16[6, 8])"
      ],
    ),
  ],
)
def test_other_optimizer_configuration_is_refused(uninterrupted, other, paths):
  directory, _, _ = uninterrupted
  params_like = init_params(1)
  with pytest.raises(ValueError, match="different model or optimizer") as e:
    restore_checkpoint(directory, SAVE_AT, params_like, other.init(params_like))
  message = str(e.value)
  assert "opt_state:" in message and "params:" not in message
  for path in paths:
    assert path in message


def test_other_model_is_refused(uninterrupted):
  directory, _, _ = uninterrupted
  params_like = init_params(1)
  params_like["dense_1"]["kernel"] = jnp.zeros((8, 5))
  del params_like["LayerNorm"]
  with pytest.raises(ValueError) as e:
    restore_checkpoint(directory, SAVE_AT, params_like, TX.init(params_like))
  message = str(e.value)
  for path in [
    "differs: dense_1.kernel (checkpoint float32[8, 3], target float32[8, 5])",
    "only in the checkpoint: LayerNorm.scale",
    "differs: 1.mu.dense_1.kernel",
    "only in the checkpoint: 1.nu.LayerNorm.bias",
  ]:
    assert path in message


def test_missing_step_is_refused(uninterrupted, tmp_path):
  directory, _, _ = uninterrupted
  params_like = init_params(1)
  with pytest.raises(FileNotFoundError, match=r"saved steps: \[10\]"):
    restore_checkpoint(directory, 11, params_like, TX.init(params_like))
  (tmp_path / "empty").mkdir()
  with pytest.raises(FileNotFoundError, match=r"saved steps: \[\]"):
    restore_checkpoint(
      tmp_path / "empty", None, params_like, TX.init(params_like)
    )
  # A missing directory is an error, and the restore does not create it.
  with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
    restore_checkpoint(
      tmp_path / "missing", None, params_like, TX.init(params_like)
    )
  assert not (tmp_path / "missing").exists()


def test_nnx_model_and_optimizer_round_trip(tmp_path):
  nnx = require("flax.nnx")
  x = jnp.ones((2, 4))

  def trained(seed):
    model = nnx.Linear(4, 3, rngs=nnx.Rngs(seed))
    optimizer = nnx.Optimizer(model, make_tx(), wrt=nnx.Param)
    for _ in range(2):
      grads = nnx.grad(lambda m: jnp.sum(m(x) ** 2))(model)
      optimizer.update(model, grads)
    return model, optimizer

  model, optimizer = trained(0)
  save_checkpoint(
    tmp_path, 2, nnx.state(model, nnx.Param), nnx.state(optimizer)
  )
  fresh_model, fresh_optimizer = trained(1)
  params, opt_state = restore_checkpoint(
    tmp_path, 2, nnx.state(fresh_model, nnx.Param), nnx.state(fresh_optimizer)
  )
  nnx.update(fresh_model, params)
  nnx.update(fresh_optimizer, opt_state)
  chex.assert_trees_all_equal(nnx.state(fresh_model), nnx.state(model))
  chex.assert_trees_all_equal(
    nnx.as_pure(nnx.state(fresh_optimizer)), nnx.as_pure(nnx.state(optimizer))
  )
  assert float(get_lr(fresh_optimizer.opt_state)) == float(
    get_lr(optimizer.opt_state)
  )


def test_readme_snippet(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  namespace = {}
  exec(README_CHECKPOINT, namespace)  # pylint: disable=exec-used
  assert (tmp_path / "checkpoints" / "10").is_dir()
  opt_state = namespace["opt_state"]
  assert int(opt_state[1].count) == 10
  # warmup_linear at 10/20 of the run, after a 10% warmup: 1 - 0.5.
  np.testing.assert_allclose(float(get_lr(opt_state)), 1e-2 * 0.5, rtol=1e-6)
  assert not np.array_equal(
    namespace["params"]["dense"]["kernel"],
    namespace["fresh"]["dense"]["kernel"],
  )


def test_missing_orbax_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "orbax.checkpoint", None)
  params = init_params(0)
  with pytest.raises(ImportError, match=r"bertadam-optax\[checkpoint\]"):
    save_checkpoint(tmp_path, 0, params, TX.init(params))


def test_docstring_examples_run():
  import doctest

  from bertadam_optax import checkpoint

  result = doctest.testmod(checkpoint, optionflags=doctest.ELLIPSIS)
  assert result.attempted >= 10 and result.failed == 0, result


def test_hyperparameters_of_another_optimizer_are_refused(tmp_path):
  # Without a mask, weight_decay=0.01 and 0.02 have the same state: only the
  # recorded hyperparameters tell them apart.
  tx = bertadam(1e-2, warmup=0.1, t_total=STEPS)
  other = bertadam(1e-2, warmup=0.1, t_total=STEPS, weight_decay=0.02)
  params = init_params(0)
  save_checkpoint(tmp_path, 1, params, tx.init(params), optimizer=tx)
  chex.assert_trees_all_equal_structs(tx.init(params), other.init(params))
  with pytest.raises(
    ValueError,
    match=r"(?s)optimizer \(saved by.*differs: "
    r"\S*weight_decay \(checkpoint 0.01, target 0.02\)",
  ):
    restore_checkpoint(tmp_path, 1, params, other.init(params), optimizer=other)
  restored = restore_checkpoint(
    tmp_path, 1, init_params(1), tx.init(params), optimizer=tx
  )
  chex.assert_trees_all_equal(restored[0], params)
