"""bertadam on JAX's SPMD engine: an FSDP-sharded train step on 8 devices.

The pytest process has already initialised JAX with one CPU device, so the
sharded run happens in a subprocess started with
``--xla_force_host_platform_device_count=8``: it executes README's 'Sharded
and multi-host training' recipe as written, then the checks below, and prints
their measurements as JSON, on which the tests assert. The references are a
single-device run of the same step, the parameters' own shardings, and, for
the per-tensor clipping, a float64 NumPy evaluation over the whole tensor.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.references import require

require("flax")  # the recipe's model; the subprocess imports it
ROOT = pathlib.Path(__file__).resolve().parents[1]

# README, 'Sharded and multi-host training' (verbatim).
README_SHARDED = '''
import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from bertadam_optax import bertadam, bert_weight_decay_mask
from bertadam_optax.examples.tiny_bert import TinyBertConfig, TinyBertMLM, mlm_loss

# 8 devices: each matrix split over 'fsdp', the batch over all 8 devices.
mesh = jax.make_mesh((2, 4), ("data", "fsdp"), axis_types=(AxisType.Auto,) * 2)
replicated = NamedSharding(mesh, P())
batch_sharding = NamedSharding(mesh, P(("data", "fsdp")))


def fsdp_sharding(x):
  """Splits a matrix along its first axis that 'fsdp' divides; replicates vectors."""
  for axis, size in enumerate(x.shape):
    if x.ndim > 1 and size % mesh.shape["fsdp"] == 0:
      return NamedSharding(mesh, P(*[None] * axis, "fsdp"))
  return replicated


config = TinyBertConfig(vocab_size=64, hidden_size=32, num_layers=1,
                        num_heads=2, intermediate_size=64, max_len=16)
model = TinyBertMLM(config)


def init(key):
  return model.init(key, jnp.zeros((8, 16), jnp.int32))["params"]


param_sharding = jax.tree.map(fsdp_sharding, jax.eval_shape(init, jax.random.key(0)))
params = jax.jit(init, out_shardings=param_sharding)(jax.random.key(0))

tx = bertadam(1e-2, warmup=0.1, t_total=40, weight_decay_mask=bert_weight_decay_mask)
# Each moment takes the sharding of its parameter; the counts are replicated.
opt_sharding = optax.tree_map_params(
    tx, lambda _, sharding: sharding, jax.eval_shape(tx.init, params),
    param_sharding, transform_non_params=lambda _: replicated)
opt_state = jax.jit(tx.init, out_shardings=opt_sharding)(params)


def train_step(params, opt_state, batch):
  def loss_fn(params):
    logits = model.apply({"params": params}, batch["inputs"])
    return mlm_loss(logits, batch["targets"], batch["weights"])

  loss, grads = jax.value_and_grad(loss_fn)(params)
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state, loss


sharded_train_step = jax.jit(
    train_step,
    in_shardings=(param_sharding, opt_sharding, batch_sharding),
    out_shardings=(param_sharding, opt_sharding, replicated),
    donate_argnums=(0, 1))
'''

# Runs after the snippet, in its namespace; prints one JSON line.
_CHECKS = """
import json
import numpy as np
from bertadam_optax import clip_by_norm_per_tensor, path_to_name

STEPS = 5
report = {"devices": jax.device_count()}


def named(tree):
  return {path_to_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def layout(x):
  return {"shape": list(x.shape), "devices": len(x.sharding.device_set),
          "shard_shapes": sorted({tuple(s.data.shape) for s in x.addressable_shards})}


def same_sharding(tree, like):
  return {name: x.sharding.is_equivalent_to(named(like)[name].sharding, x.ndim)
          for name, x in named(tree).items()}


def make_batch(i):
  rng = np.random.default_rng(i)
  tokens = rng.integers(0, config.vocab_size, (8, 16)).astype(np.int32)
  masked = rng.random((8, 16)) < 0.15
  return {"inputs": np.where(masked, 0, tokens).astype(np.int32), "targets": tokens,
          "weights": masked.astype(np.float32)}


# Eagerly, as a user who never wrote a sharding for the state would.
eager_state = tx.init(params)
report["eager_init"] = {"mu": same_sharding(eager_state[1].mu, params),
                        "nu": same_sharding(eager_state[1].nu, params)}
report["opt_sharding"] = {
    "mu": {k: s == named(param_sharding)[k] for k, s in named(opt_sharding[1].mu).items()},
    "nu": {k: s == named(param_sharding)[k] for k, s in named(opt_sharding[1].nu).items()}}

# The optimizer step alone, with no output shardings imposed: what the SPMD
# partitioner does with bertadam's update when left to itself.
def optimizer_step(grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


compiled = jax.jit(optimizer_step).lower(params, opt_state, params).compile()
out_params, out_state = compiled(params, opt_state, params)
hlo = compiled.as_text()
report["optimizer_step"] = {
    "collectives": {op: hlo.count(op + "(") + hlo.count(op + "-start(")
                    for op in ("all-gather", "all-to-all", "collective-permute",
                               "all-reduce", "reduce-scatter")},
    "params": same_sharding(out_params, params),
    "mu": same_sharding(out_state[1].mu, params),
    "nu": same_sharding(out_state[1].nu, params)}

initial = jax.device_get(params)
losses = []
for i in range(STEPS):
  params, opt_state, loss = sharded_train_step(params, opt_state, make_batch(i))
  losses.append(float(loss))
report["after_steps"] = {
    "params": {k: layout(x) for k, x in named(params).items()},
    "mu": {k: layout(x) for k, x in named(opt_state[1].mu).items()},
    "nu": {k: layout(x) for k, x in named(opt_state[1].nu).items()},
    "mu_sharding": same_sharding(opt_state[1].mu, params),
    "nu_sharding": same_sharding(opt_state[1].nu, params)}

single = jax.devices()[0]
ref_params = jax.device_put(initial, single)
ref_state = tx.init(ref_params)
ref_step = jax.jit(train_step)
ref_losses = []
for i in range(STEPS):
  ref_params, ref_state, loss = ref_step(ref_params, ref_state, make_batch(i))
  ref_losses.append(float(loss))
report["single_device"] = {
    "losses": ref_losses, "sharded_losses": losses,
    "devices": sorted({len(x.sharding.device_set) for x in jax.tree.leaves(ref_params)}),
    "max_abs_diff": {k: float(np.max(np.abs(np.asarray(x) - np.asarray(named(ref_params)[k]))))
                     for k, x in named(params).items()},
    "max_abs_diff_nu": {k: float(np.max(np.abs(np.asarray(x) - np.asarray(named(ref_state[1].nu)[k]))))
                        for k, x in named(opt_state[1].nu).items()},
    "max_abs_moved": {k: float(np.max(np.abs(np.asarray(x) - named(initial)[k])))
                      for k, x in named(ref_params).items()}}

# One row per device, with norms from 1e-4 to 1e3: a per-shard norm would
# leave the small rows unclipped.
gradient = np.stack([(10.0 ** (i - 4)) * np.array([1.0, -2.0, 3.0, -4.0])
                     for i in range(8)]).astype(np.float32)
clip = clip_by_norm_per_tensor(1.0)
report["clip"] = {"input": gradient.tolist()}
for layout_name, spec in (("rows over 8 devices", P(("data", "fsdp"), None)),
                          ("rows over fsdp", P("fsdp", None)),
                          ("replicated", P())):
  g = jax.device_put(gradient, NamedSharding(mesh, spec))
  clipped, _ = jax.jit(clip.update)(g, clip.init(g))
  report["clip"][layout_name] = {
      "output": np.asarray(clipped).tolist(),
      "shards": len({str(s.index) for s in g.addressable_shards}),
      "same_sharding": clipped.sharding.is_equivalent_to(g.sharding, 2)}

try:
  import orbax.checkpoint
except ImportError:
  report["checkpoint"] = None
else:
  import tempfile
  from bertadam_optax.checkpoint import restore_checkpoint, save_checkpoint
  directory = tempfile.mkdtemp()
  save_checkpoint(directory, STEPS, params, opt_state)
  like_params = jax.jit(init, out_shardings=param_sharding)(jax.random.key(1))
  like_state = jax.jit(tx.init, out_shardings=opt_sharding)(like_params)
  got_params, got_state = restore_checkpoint(directory, STEPS, like_params, like_state)
  report["checkpoint"] = {
      "params": same_sharding(got_params, params),
      "opt_state": same_sharding(got_state, opt_state),
      "equal": all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(
          jax.tree.leaves((got_params, got_state)), jax.tree.leaves((params, opt_state))))}

print("REPORT " + json.dumps(report))
"""


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  env = dict(os.environ)
  # Both runs compile with the same cheap XLA:CPU settings (compile time
  # dominates on CI machines); SPMD partitioning is unaffected.
  env["XLA_FLAGS"] = (
    "--xla_force_host_platform_device_count=8 "
    "--xla_backend_optimization_level=0 "
    "--xla_llvm_disable_expensive_passes=true"
  )
  env["JAX_PLATFORMS"] = "cpu"
  env["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT), env.get("PYTHONPATH")])
  )
  result = subprocess.run(
    [sys.executable, "-c", README_SHARDED + _CHECKS],
    cwd=tmp_path_factory.mktemp("sharded"),
    env=env,
    capture_output=True,
    text=True,
    timeout=600,
  )
  assert result.returncode == 0, result.stderr[-6000:]
  line = next(l for l in result.stdout.splitlines() if l.startswith("REPORT "))
  return json.loads(line[len("REPORT ") :])


def _all_true(mapping):
  assert mapping, "nothing was compared"
  return [name for name, ok in mapping.items() if not ok]


def test_runs_on_eight_devices(report):
  assert report["devices"] == 8


@pytest.mark.parametrize("moment", ["mu", "nu"])
def test_moments_have_the_shardings_of_their_parameters(report, moment):
  assert _all_true(report["eager_init"][moment]) == []
  assert _all_true(report["opt_sharding"][moment]) == []
  assert _all_true(report["after_steps"][f"{moment}_sharding"]) == []
  assert report["after_steps"][moment] == report["after_steps"]["params"]


def test_large_matrices_are_split_and_nothing_is_gathered(report):
  layouts = report["after_steps"]["params"]
  for name, layout in layouts.items():
    assert layout["devices"] == 8, name
    assert len(layout["shard_shapes"]) == 1, name
    (shard_shape,) = layout["shard_shapes"]
    expected = list(layout["shape"])
    if len(expected) > 1:
      axis = next(i for i, n in enumerate(expected) if n % 4 == 0)
      expected[axis] //= 4
    assert list(shard_shape) == expected, name
  split = [n for n, l in layouts.items() if l["shard_shapes"][0] != l["shape"]]
  assert "word_embeddings.embedding" in split
  assert len(split) == sum(len(l["shape"]) > 1 for l in layouts.values())


def test_optimizer_step_gathers_nothing(report):
  step = report["optimizer_step"]
  for tree in ("params", "mu", "nu"):
    assert _all_true(step[tree]) == [], tree
  collectives = step["collectives"]
  assert collectives["all-gather"] == 0
  assert collectives["all-to-all"] == 0
  assert collectives["collective-permute"] == 0
  # The per-tensor norms of the sharded matrices: cross-device sums.
  assert collectives["all-reduce"] + collectives["reduce-scatter"] > 0


def test_sharded_run_equals_single_device_run(report):
  single = report["single_device"]
  assert single["devices"] == [1]
  np.testing.assert_allclose(
    single["sharded_losses"], single["losses"], rtol=1e-5
  )
  moved = single["max_abs_moved"]
  # Softmax ignores a constant added to every key, so the key bias's gradient
  # is 0 up to rounding, and BertAdam's m / (sqrt(v) + e) turns that rounding
  # into steps of up to ~lr: both runs barely move it, each its own way.
  noise_only = "layer_0.key.bias"
  assert moved[noise_only] < 1e-4
  assert single["max_abs_diff"][noise_only] < 1e-4
  for name, diff in single["max_abs_diff"].items():
    if name != noise_only:
      assert moved[name] > 1e-2, name
      assert diff <= 1e-4 * moved[name], name
  for name, diff in single["max_abs_diff_nu"].items():
    assert diff <= 1e-6, name


@pytest.mark.parametrize(
  "layout", ["rows over 8 devices", "rows over fsdp", "replicated"]
)
def test_per_tensor_clip_norm_is_the_whole_tensor_norm(report, layout):
  clip = report["clip"]
  g = np.asarray(clip["input"], np.float64)
  expected = g * min(1.0, 1.0 / (np.linalg.norm(g) + 1e-6))
  got = np.asarray(clip[layout]["output"])
  np.testing.assert_allclose(got, expected, rtol=1e-6, atol=0)
  assert clip[layout]["same_sharding"]
  assert (
    clip[layout]["shards"]
    == {"rows over 8 devices": 8, "rows over fsdp": 4, "replicated": 1}[layout]
  )
  if layout != "replicated":
    # Clipping each shard by its own norm would give a different answer.
    rows = np.split(g, clip[layout]["shards"])
    per_shard = np.concatenate(
      [r * min(1.0, 1.0 / (np.linalg.norm(r) + 1e-6)) for r in rows]
    )
    assert not np.allclose(per_shard, expected, rtol=1e-3)


def test_checkpoint_of_a_sharded_state_restores_onto_the_shardings(report):
  require("orbax.checkpoint")
  restored = report["checkpoint"]
  assert _all_true(restored["params"]) == []
  assert _all_true(restored["opt_state"]) == []
  assert restored["equal"]
